#include "fashion_mnist/eval.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <ostream>

#include "fashion_mnist/data.hpp"
#include "fashion_mnist/models.hpp"
#include "fashion_mnist/trainer.hpp"
#include "spruce/error.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/model_file.hpp"
#include "spruce/torch/threads.hpp"

namespace spruce::fashion_mnist {
using namespace spruce::torch;

namespace {

// One batch over and over, after a warm-up, for at least `o.seconds` and 3 batches.
double images_per_second(Classifier& model, const ImageTensors& set, const EvalOptions& o) {
  const auto batch = set.images.narrow(0, 0, std::min(o.batch, set.size()));
  model.forward(batch);
  const auto start = std::chrono::steady_clock::now();
  double seconds = 0;
  int64_t batches = 0;
  while (seconds < o.seconds || batches < 3) {
    model.forward(batch);
    ++batches;
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return double(batch.size(0)) * double(batches) / seconds;
}

double sparsity_of(const std::vector<ConvertedLayer>& layers) {
  int64_t zeros = 0, total = 0;
  for (const auto& l : layers) {
    const int64_t n = l.in_features * l.out_features;
    zeros += int64_t(l.sparsity * double(n) + 0.5);
    total += n;
  }
  return total ? double(zeros) / double(total) : 0.0;
}

}  // namespace

void check_variant_label(const std::string& label, const std::vector<ConvertedLayer>& layers, const std::string& path) {
  if (label == "converted") return;  // saved without one
  if (label != to_string(Variant::F32Sparse) && label != to_string(Variant::Int8Sparse) &&
      label != to_string(Variant::Int8Dense))
    data_error(path + ": metadata 'variant' " + in_quotes(label, 60) +
               " is not fp32-sparse, int8-sparse or int8-dense; convert the model again");
  // An int8-sparse model keeps int8-dense layers where sparsity did not pay (all of them, at a low
  // sparsity); an int8-dense one has none sparse, and an fp32-sparse one none in INT8.
  for (const auto& layer : layers) {
    const bool fits =
        label == to_string(Variant::Int8Sparse) ? layer.variant.starts_with("int8") : layer.variant == label;
    if (!fits)
      data_error(path + ": metadata 'variant' says " + label + " but layer " + in_quotes(layer.name, 60) + " is " +
                 layer.variant + "; convert the model again");
  }
}

ConvertedClassifier convert_checkpoint(const EvalOptions& o, const std::string& checkpoint, Variant variant) {
  ConvertedClassifier c{make_model(o.model), {}};
  load_checkpoint(checkpoint, *c.model, nullptr, nullptr);
  c.model->eval();
  ::torch::NoGradGuard no_grad;
  ImageTensors calibration;
  if (variant != Variant::F32Sparse)
    calibration = load_fashion_mnist_tensors(o.data_dir, Split::Train, o.calibration_samples);
  ConvertOptions opt;
  opt.variant = variant;
  opt.threads = o.threads;
  opt.calibration = o.calibration;
  opt.percentile = o.percentile;
  if (variant != Variant::Int8Dense) opt.fallback = o.fallback;
  opt.tune_m = {o.batch};  // the operators choose sparse or oneDNN for the batch they will run
  c.layers = convert(*c.model, opt, [&] { c.model->forward(calibration.images); });
  return c;
}

std::vector<EvalRow> evaluate_variants(const EvalOptions& o, std::ostream& log) {
  if (o.threads < 1 || o.batch < 1) usage_error("--threads and --batch must be at least 1");
  set_threads(o.threads);
  ::torch::NoGradGuard no_grad;
  const ImageTensors test = load_fashion_mnist_tensors(o.data_dir, Split::Test);

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
  // Test accuracy and throughput of a ready model; one log line named `label`.
  auto score = [&](EvalRow& row, Classifier& model, const std::string& label) {
    row.accuracy = test_accuracy(model, test);
    row.test_images = test.size();
    row.correct = std::llround(row.accuracy * double(test.size()));
    row.images_per_second = images_per_second(model, test, o);
    log << label << ": accuracy " << row.accuracy << ", " << int64_t(row.images_per_second) << " images/s\n";
    rows.push_back(row);
  };
  for (const Plan& p : plans) {
    if (p.checkpoint->empty()) continue;
    EvalRow row;
    row.variant = p.name;
    std::shared_ptr<Classifier> model;
    if (p.convert) {
      auto c = convert_checkpoint(o, *p.checkpoint, p.variant);
      model = c.model;
      row.sparsity = sparsity_of(c.layers);
    } else {
      model = make_model(o.model);
      load_checkpoint(*p.checkpoint, *model, nullptr, nullptr);
      model->eval();
    }
    score(row, *model, p.name);
  }
  for (const auto& path : o.converted_files) {
    const SafetensorsFile file = read_safetensors(path);
    const auto meta = converted_model_metadata(file, path);
    const auto kind = meta.find("model");
    if (kind == meta.end())
      data_error(path + " has no 'model' metadata (mlp or cnn), which `spruce convert` writes; convert it again");
    if (kind->second != o.model)
      usage_error(path + " holds a " + in_quotes(kind->second, 40) + " model; give --model " +
                  in_quotes(kind->second, 40) + " (now --model " + o.model + ")");
    auto model = make_model(o.model);
    const auto start = std::chrono::steady_clock::now();
    const LoadedModel info = load_converted_model(file, path, *model, o.threads);
    const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    model->eval();
    EvalRow row{meta.count("variant") ? meta.at("variant") : "converted", path};
    check_variant_label(row.variant, info.layers, path);
    row.sparsity = sparsity_of(info.layers);
    score(row, *model,
          path + " (" + row.variant + ", loaded in " + std::to_string(std::llround(load_ms)) + " ms" +
              (info.repacked ? ", " + std::to_string(info.repacked) + " layer(s) repacked for this CPU" : "") + ")");
  }
  if (rows.empty())
    usage_error(
        "give --dense and/or --sparse (folders from `spruce train --save`), or --converted FILE from `spruce convert`");
  return rows;
}

}  // namespace spruce::fashion_mnist
