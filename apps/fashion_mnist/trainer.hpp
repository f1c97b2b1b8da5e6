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
#include "fashion_mnist/options.hpp"
#include "spruce/idx.hpp"
#include "spruce/recipe.hpp"
#include "spruce/torch/distributed.hpp"
#include "spruce/torch/pruner.hpp"

namespace spruce::fashion_mnist {

using apps::EpochLog;

struct TrainResult {
  double test_accuracy = 0;  // fraction
  double sparsity = 0;       // zeros over the pruned weights (over every Linear/Conv weight when dense)
  double seconds = 0;
  int64_t epochs = 0, steps = 0;
  bool finished = true;  // false when `stop_after` ended the sitting first
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
// pruner: that the file is a checkpoint of this model, trained with these settings (teacher, batch
// size, learning rate, seed, examples), with epochs left to train. A launcher calls it once, before
// its ranks start; `train` checks the rest.
void check_resume(const TrainOptions& options);

TrainResult train(const TrainOptions& options, std::ostream& log);

}  // namespace spruce::fashion_mnist
