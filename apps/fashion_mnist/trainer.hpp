// `spruce train`'s loop: Fashion-MNIST, a model, Adam with a cosine learning rate, and the Pruner.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "common/progress.hpp"
#include "fashion_mnist/data.hpp"
#include "fashion_mnist/models.hpp"
#include "spruce/idx.hpp"
#include "spruce/recipe.hpp"
#include "spruce/torch/distributed.hpp"
#include "spruce/torch/pruner.hpp"

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

using apps::EpochLog;

struct TrainResult {
  double test_accuracy = 0;  // fraction
  double sparsity = 0;       // zeros over the pruned weights (over every Linear/Conv weight when dense)
  double seconds = 0;
  int64_t epochs = 0, steps = 0;
  std::vector<EpochLog> history;
  torch::SparsityReport report;
};

// The recipe `--pattern P --sparsity S` stands for: one global snip_momentum group over every
// layer but `dense_layers` (the model's head), growing with the exp decay from 10% to 60% of
// `total_steps` in 20 mask updates, then fine-tuning with the masks fixed.
Recipe recipe_for_flags(const TrainOptions& options, int64_t total_steps, const std::vector<std::string>& dense_layers);

// Fraction of `set` that `model` classifies right, in eval mode (the caller's mode is restored).
double test_accuracy(Classifier& model, const ImageTensors& set);

// Steps of one epoch of `examples` at `batch_size`.
int64_t steps_per_epoch(int64_t examples, int64_t batch_size);

// Checks what a run that resumes from `options.resume_from` can check without its optimizer and
// pruner: that the file is a checkpoint of this model, with epochs left to train. A launcher calls
// it once, before its ranks start; `train` checks the rest.
void check_resume(const TrainOptions& options);

TrainResult train(const TrainOptions& options, std::ostream& log);

}  // namespace spruce::fashion_mnist
