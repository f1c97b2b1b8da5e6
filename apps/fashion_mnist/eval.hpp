// `spruce eval`: a trained Fashion-MNIST classifier as FP32 dense, INT8 dense, FP32 sparse and
// INT8 sparse, with test accuracy and throughput for each, measured in one process.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "fashion_mnist/models.hpp"
#include "fashion_mnist/options.hpp"
#include "spruce/calibration.hpp"
#include "spruce/idx.hpp"
#include "spruce/torch/convert.hpp"

namespace spruce::fashion_mnist {

struct EvalRow {
  std::string variant;  // fp32-dense | int8-dense | fp32-sparse | int8-sparse
  std::string file;     // for a loaded converted-model file: its path (variant is the file's)
  double accuracy = 0;  // fraction of the test set
  int64_t correct = 0, test_images = 0;
  double images_per_second = 0;
  double sparsity = 0;  // of the converted layers' weights (0 for LibTorch eager)
};

// A `spruce train` checkpoint of options.model, converted to `variant` (INT8: calibrated on
// options.calibration_samples training images).
struct ConvertedClassifier {
  std::shared_ptr<Classifier> model;
  std::vector<torch::ConvertedLayer> layers;
};
ConvertedClassifier convert_checkpoint(const EvalOptions& options, const std::string& checkpoint,
                                       torch::Variant variant);

// The variant named in a converted file's metadata labels its row: it must be one `spruce convert`
// writes, and say FP32 or INT8 as `layers` do (an INT8 variant's layers may run dense). Throws
// spruce::Error (data) naming `path`; "converted" (no variant saved) passes.
void check_variant_label(const std::string& label, const std::vector<torch::ConvertedLayer>& layers,
                         const std::string& path);

// Variants whose checkpoint is not given are skipped; each converted file adds a row.
std::vector<EvalRow> evaluate_variants(const EvalOptions& options, std::ostream& log);

}  // namespace spruce::fashion_mnist
