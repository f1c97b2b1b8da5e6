// Training and evaluating DLRM on the synthetic click data, with the Pruner's hooks.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>

#include "dlrm/dlrm.hpp"
#include "spruce/recipe.hpp"
#include "spruce/torch/pruner.hpp"

namespace spruce::dlrm {

struct ClickMetrics {
  double accuracy = 0;  // fraction of labels matched at a 0.5 threshold
  double auc = 0;       // ROC AUC
  double loss = 0;      // mean binary cross-entropy
};
ClickMetrics evaluate_clicks(DlrmImpl& model, const ClickData& data, int64_t batch = 4096);

struct DlrmTrainOptions {
  int64_t epochs = 1;
  int64_t batch_size = 512;
  double learning_rate = 1e-3;
  uint64_t seed = 0;
  std::optional<Recipe> recipe;  // none: dense training
  bool progress_bar = true;
};
struct DlrmTrainResult {
  ClickMetrics test;
  double sparsity = 0;  // over the pruned layers (0 for dense)
  double seconds = 0;
  int64_t steps = 0;
  std::optional<torch::SparsityReport> report;
};
// Trains `model` in place (Adam; with a recipe, the Pruner prunes on its schedule).
DlrmTrainResult train_dlrm(DlrmImpl& model, const ClickData& train, const ClickData& test,
                           const DlrmTrainOptions& options, std::ostream& log);

// The recipe the DLRM benchmark prunes with: `pattern` at `sparsity` over the bottom and top MLPs
// except the 13-wide first and the 1-wide last layer, growing over the first 60% of `total_steps`.
Recipe dlrm_recipe(const Pattern& pattern, double sparsity, int64_t total_steps);

}  // namespace spruce::dlrm
