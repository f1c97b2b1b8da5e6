// The options of `spruce train` and `spruce eval` / `spruce convert`, without LibTorch: the
// command line parses them in both programs (tools/spruce), and only spruce-torch runs them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spruce/calibration.hpp"
#include "spruce/criteria.hpp"
#include "spruce/idx.hpp"
#include "spruce/pattern.hpp"
#include "spruce/recipe.hpp"
#include "spruce/spmm.hpp"

namespace spruce::torch {
class DataParallel;
}

namespace spruce::fashion_mnist {

struct TrainOptions {
  std::string model = "mlp";
  std::optional<Recipe> recipe;    // a recipe file's; or built from the flags below
  std::optional<Pattern> pattern;  // --pattern; none (and no recipe): dense training
  double sparsity = 0;             // --sparsity
  std::optional<Scope> scope;      // overrides of the flags' recipe, for experiments
  std::optional<Criterion> criterion;
  double group_lasso = 0;         // reg_coeff; 0 keeps group lasso off
  bool straight_through = false;  // PruningGroup::straight_through, and its decay
  double straight_through_decay = 0;
  bool gradual_nm = false;  // PruningGroup::gradual_nm: an N:M pattern follows the schedule
  int64_t epochs = 5;
  int64_t stop_after = 0;  // end this sitting after that epoch, its checkpoint saved (0: run to `epochs`)
  int64_t batch_size = 128;
  double learning_rate = 1e-3;
  uint64_t seed = 0;
  std::string data_dir = kFashionMnistDir;
  int64_t train_limit = 0, test_limit = 0;  // the first N examples only (0: all)
  std::string save_dir;                     // checkpoint, masks and safetensors export; empty: none
  std::string resume_from;                  // a checkpoint.pt to continue from
  std::string init_from;                    // a .safetensors to start from (e.g. `spruce prune`'s)
  bool lock_pattern = false;                // without masks, keep the loaded weights' zeros
  // Knowledge distillation: a trained model of the same architecture (a model.safetensors) whose
  // logits teach; loss = (1 - w) cross-entropy + w * T^2 KL(teacher/T || student/T).
  std::string teacher;
  double distill_weight = 0.5, distill_temperature = 4.0;
  bool progress_bar = true;  // redraw one line on a terminal; else one line per epoch
  std::string header;        // written to the log once every input has loaded: an error comes alone
  // Data-parallel: this process is one rank. Each global batch of `batch_size` is split between
  // the ranks, gradients are averaged, masks are checked identical, and only rank 0 writes files.
  ::spruce::torch::DataParallel* data_parallel = nullptr;
};

struct EvalOptions {
  std::string model = "mlp";
  std::string dense_checkpoint;   // a checkpoint.pt from `spruce train` without pruning
  std::string sparse_checkpoint;  // a checkpoint.pt from `spruce train --pattern ...`
  std::string data_dir = kFashionMnistDir;
  int threads = 2;
  int64_t batch = 1024;                // throughput batch size
  int64_t calibration_samples = 2048;  // from the training split
  CalibrationMethod calibration = CalibrationMethod::MinMax;
  double percentile = 99.99;
  Fallback fallback = Fallback::Auto;        // the sparse variants' (INT8 dense: Always)
  double seconds = 1.0;                      // timing per variant
  std::vector<std::string> converted_files;  // models saved by `spruce convert`, loaded as they are
};

}  // namespace spruce::fashion_mnist
