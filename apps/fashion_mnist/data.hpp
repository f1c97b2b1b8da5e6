// Fashion-MNIST as tensors, and a shuffling, batching torch data loader over them.
#pragma once
#include <torch/data/dataloader.h>
#include <torch/data/datasets/base.h>
#include <torch/data/example.h>
#include <torch/data/samplers/random.h>

#include <cstdint>
#include <memory>
#include <string>

#include "spruce/idx.hpp"

namespace spruce::fashion_mnist {

struct ImageTensors {
  ::torch::Tensor images;  // float [N][1][28][28], normalized with Fashion-MNIST's mean and std
  ::torch::Tensor labels;  // int64 [N]
  int64_t size() const { return labels.size(0); }
};

// The first `limit` examples of a split (0: all). Throws spruce::Error (data) naming the package
// dataset-fashion-mnist when the files are missing.
ImageTensors load_fashion_mnist_tensors(const std::string& dir, Split split, int64_t limit = 0);

// Random batches by index: the dataset behind the training loader.
class ImageBatches : public ::torch::data::datasets::BatchDataset<ImageBatches, ::torch::data::Example<>> {
 public:
  explicit ImageBatches(ImageTensors set) : set_(std::move(set)) {}
  ::torch::data::Example<> get_batch(c10::ArrayRef<size_t> indices) override;
  c10::optional<size_t> size() const override { return size_t(set_.size()); }

 private:
  ImageTensors set_;
};

using TrainLoader = ::torch::data::StatelessDataLoader<ImageBatches, ::torch::data::samplers::RandomSampler>;
// Shuffles every epoch from torch's global generator, so torch::manual_seed fixes the order.
std::unique_ptr<TrainLoader> make_train_loader(ImageTensors set, int64_t batch_size);

}  // namespace spruce::fashion_mnist
