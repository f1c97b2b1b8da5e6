#include "fashion_mnist/data.hpp"

#include <torch/data/dataloader_options.h>

namespace spruce::fashion_mnist {
namespace {
constexpr float kMean = 0.2860f, kStd = 0.3530f;  // Fashion-MNIST training-set pixel statistics
}

ImageTensors load_fashion_mnist_tensors(const std::string& dir, Split split, int64_t limit) {
  LabeledImages raw = load_fashion_mnist(dir, split);
  int64_t n = raw.images.shape[0];
  if (limit > 0 && limit < n) n = limit;
  auto pixels = ::torch::from_blob(raw.images.values.data(), {n, 1, 28, 28}, ::torch::kUInt8);
  auto labels = ::torch::from_blob(raw.labels.values.data(), {n}, ::torch::kUInt8);
  return {(pixels.to(::torch::kFloat32) / 255.0f - kMean) / kStd, labels.to(::torch::kInt64)};
}

::torch::data::Example<> ImageBatches::get_batch(c10::ArrayRef<size_t> indices) {
  std::vector<int64_t> rows(indices.begin(), indices.end());
  auto index = ::torch::tensor(rows, ::torch::kInt64);
  return {set_.images.index_select(0, index), set_.labels.index_select(0, index)};
}

std::unique_ptr<TrainLoader> make_train_loader(ImageTensors set, int64_t batch_size) {
  const auto n = size_t(set.size());
  return std::make_unique<TrainLoader>(ImageBatches(std::move(set)), ::torch::data::samplers::RandomSampler(n),
                                       ::torch::data::DataLoaderOptions(size_t(batch_size)).workers(0));
}

}  // namespace spruce::fashion_mnist
