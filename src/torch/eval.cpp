#include "spruce/torch/eval.hpp"

#include <torch/torch.h>

#include <ostream>

#include "spruce/error.hpp"
#include "spruce/loadgen.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/data.hpp"
#include "spruce/torch/models.hpp"
#include "spruce/torch/threads.hpp"
#include "spruce/torch/trainer.hpp"

namespace spruce::torch {
namespace {

double images_per_second(Classifier& model, const ImageTensors& set, const EvalOptions& o) {
  const auto batch = set.images.narrow(0, 0, std::min(o.batch, set.size()));
  const BatchRunner run = [&](int64_t) { return time_call([&] { model.forward(batch); }); };
  return run_offline(run, {batch.size(0)}, o.seconds).qps;
}

}  // namespace

std::vector<EvalRow> evaluate_variants(const EvalOptions& o, std::ostream& log) {
  if (o.threads < 1 || o.batch < 1) usage_error("--threads and --batch must be at least 1");
  set_threads(o.threads);
  ::torch::NoGradGuard no_grad;
  const ImageTensors test = load_fashion_mnist_tensors(o.data_dir, Split::Test);
  const ImageTensors calibration = load_fashion_mnist_tensors(o.data_dir, Split::Train, o.calibration_samples);

  struct Plan {
    const char* name;
    const std::string* checkpoint;
    bool convert;
    Variant variant;
  };
  const Plan plans[] = {{"fp32-dense", &o.dense_checkpoint, false, Variant::F32Sparse},
                        {"int8-dense", &o.dense_checkpoint, true, Variant::Int8Dense},
                        {"fp32-sparse", &o.sparse_checkpoint, true, Variant::F32Sparse},
                        {"int8-sparse", &o.sparse_checkpoint, true, Variant::Int8Sparse}};
  std::vector<EvalRow> rows;
  for (const Plan& p : plans) {
    if (p.checkpoint->empty()) continue;
    auto model = make_model(o.model);
    load_checkpoint(*p.checkpoint, *model, nullptr, nullptr);
    model->eval();
    EvalRow row{p.name};
    if (p.convert) {
      ConvertOptions c;
      c.variant = p.variant;
      c.threads = o.threads;
      c.calibration = o.calibration;
      c.percentile = o.percentile;
      const auto layers = convert(*model, c, [&] { model->forward(calibration.images); });
      int64_t zeros = 0, total = 0;
      for (const auto& l : layers) {
        const int64_t n = l.in_features * l.out_features;
        zeros += int64_t(l.sparsity * double(n) + 0.5);
        total += n;
      }
      row.sparsity = total ? double(zeros) / double(total) : 0.0;
    }
    row.accuracy = test_accuracy(*model, test);
    row.images_per_second = images_per_second(*model, test, o);
    log << p.name << ": accuracy " << row.accuracy << ", " << int64_t(row.images_per_second) << " images/s\n";
    rows.push_back(row);
  }
  if (rows.empty()) usage_error("give --dense DIR/checkpoint.pt and/or --sparse DIR/checkpoint.pt from `spruce train --save`");
  return rows;
}

}  // namespace spruce::torch
