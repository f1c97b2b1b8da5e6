// Pruning during training in LibTorch: the seed's flow as hooks, in Intel Neural Compressor's order.
//
//   spruce::torch::Pruner pruner(*model, recipe);
//   pruner.on_train_begin();
//   for (step ...) {
//     pruner.on_step_begin(step);             // masks grow on the schedule; weights are pruned
//     loss = ...; optimizer.zero_grad(); loss.backward();
//     pruner.on_before_optimizer_step();      // scores accumulate; gradients masked; group lasso
//     optimizer.step();
//     pruner.on_after_optimizer_step();       // masks re-applied
//   }
//   std::cout << format_report(pruner.on_train_end());  // before the last evaluation
//
// The Pruner holds the layers' weight tensors (sharing their storage) and one mask per layer, kept
// in the weight's own layout. Scores, masks, schedules and group lasso come from the pruning core,
// over the 2-D view of each weight (DESIGN.md: conv [OC][IC][KH][KW] is viewed as [OC][KH*KW*IC]).
// A straight-through group (PruningGroup::straight_through) also keeps the pruned weights' values
// until its last mask update: the forward sees them masked, the optimizer steps them all.
#pragma once
#include <torch/nn/module.h>
#include <torch/serialize/archive.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spruce/criteria.hpp"
#include "spruce/recipe.hpp"

namespace spruce::torch {

// A layer's inputs since the last mask update, for the criteria that need them. Wanda: per input
// feature (a Linear's column, a conv's channel) the sum of squares over every row (token, pixel)
// seen. SparseGPT: the Gram matrix X^T X of a Linear's input rows, gathered only in the forwards
// just before an update (`collecting`, set by the Pruner), since it costs a matrix product each.
struct InputStatistics {
  bool gram_wanted = false;     // SparseGPT's statistics rather than wanda's
  bool collecting = true;       // whether forwards are counted now
  ::torch::Tensor sum_squares;  // float64 [features]; undefined before the first input
  ::torch::Tensor gram;         // float64 [features][features]; undefined before the first input
  double rows = 0;
  bool live = true;  // false once the Pruner is gone: the model's observer then does nothing
  void add(const ::torch::Tensor& input);
  void reset() { sum_squares = gram = ::torch::Tensor(), rows = 0; }
};

struct PrunedLayer {
  std::string name;        // qualified module name, e.g. "features.0"
  std::string op_type;     // "Linear" or "Conv"
  size_t group = 0;        // index into the recipe's groups
  ::torch::Tensor weight;  // the module's parameter (same storage)
  ::torch::Tensor mask;    // float 0/1 in the weight's layout; undefined while dense
  // Straight-through groups, until their last mask update: the weights as trained, pruned ones
  // included; `weight` holds them masked, for the forward. Undefined otherwise.
  ::torch::Tensor dense;
  ScoreAccumulator scores{Criterion::Magnitude};
  std::shared_ptr<InputStatistics> inputs;  // set for a criterion that needs_inputs (wanda, sparsegpt)
};

struct LayerReport {
  std::string name, op_type, pattern;
  std::vector<int64_t> shape;
  int64_t zeros = 0, elements = 0;
  double target = 0.0;  // the schedule's target in force at the current step
  double sparsity() const { return elements ? double(zeros) / double(elements) : 0.0; }
};
struct SparsityReport {
  int64_t step = 0;
  std::vector<LayerReport> layers;
  int64_t zeros() const;
  int64_t elements() const;
  double sparsity() const;  // zeros over all pruned weights
};
// A table with one row per layer and a total, for the terminal.
std::string format_report(const SparsityReport& report);

class Pruner {
 public:
  // Finds the Linear and Conv2d layers that the recipe's groups select (Recipe::group_for).
  // Throws spruce::Error (usage) when no layer matches, listing the model's layers. For the wanda
  // and sparsegpt criteria, the layers must live in a LayerHost (layer_stack.hpp), whose observer
  // shows the Pruner each training forward's inputs (forwards with gradients on; evaluation is not
  // seen). Sparsegpt prunes Linear layers, each to its own target (scope local): at each mask
  // update it also rewrites the kept weights to make up for the pruned ones
  // (spruce/torch/reconstruction.hpp), from the inputs of the last kGramSteps training forwards.
  static constexpr int64_t kGramSteps = 8;
  Pruner(::torch::nn::Module& module, Recipe recipe);
  ~Pruner();
  Pruner(const Pruner&) = delete;
  Pruner& operator=(const Pruner&) = delete;

  void on_train_begin();
  void on_step_begin(int64_t step);
  void on_before_optimizer_step();
  void on_after_optimizer_step();
  // After the last optimizer step: an update still waiting for its first gradient or inputs (a run
  // shorter than its criterion's warm-up) is taken now, from what the steps saw. Idempotent.
  void finish_updates();
  SparsityReport on_train_end() {
    finish_updates();
    return report();
  }

  SparsityReport report() const;
  double sparsity() const { return report().sparsity(); }
  int64_t step() const { return step_; }
  const Recipe& recipe() const { return recipe_; }
  const std::vector<PrunedLayer>& layers() const { return layers_; }
  // How many times the masks have been recomputed; a change means new masks.
  int64_t mask_updates() const { return mask_updates_; }
  // FNV-1a over every mask's bits, in layer order: equal on ranks whose masks are equal.
  uint64_t mask_checksum() const;

  // Data-parallel wanda: `sum_over_ranks` adds a vector element-wise over the ranks, so that every
  // rank scores with the inputs of all ranks and the masks stay identical.
  void set_input_reducer(std::function<void(std::vector<double>&)> sum_over_ranks) {
    sum_over_ranks_ = std::move(sum_over_ranks);
  }

  // Pattern lock: each layer's existing zeros become its mask, and stay zero from now on.
  void lock_existing_zeros();
  // Zeroes every weight its layer's current mask prunes (as each optimizer step ends), e.g. after
  // the weights were replaced by an average of their training trajectory.
  void apply_masks();
  // Checkpoint state: the step, every mask, the accumulated scores, and straight-through weights.
  void save(::torch::serialize::OutputArchive& archive) const;
  // Throws spruce::Error (data) when the archive lacks a mask or a mask's shape differs.
  void load(::torch::serialize::InputArchive& archive);

 private:
  void update_masks(size_t group, int64_t step);
  void start_collecting(int64_t step);
  // Sets a layer's mask and masks its weight; a straight-through layer keeps its values in `dense`
  // unless this is its group's last update.
  void set_mask(PrunedLayer& layer, ::torch::Tensor mask, bool last_update);
  void observe_inputs(::torch::nn::Module& module);
  // The members' input RMS per GEMM column (reduced over the ranks), or nothing before any input.
  std::optional<std::vector<std::vector<float>>> input_rms(const std::vector<PrunedLayer*>& members);
  // The members' input Gram matrices (reduced over the ranks), or nothing before any input.
  std::optional<std::vector<::torch::Tensor>> input_grams(const std::vector<PrunedLayer*>& members);

  Recipe recipe_;
  std::vector<PrunedLayer> layers_;
  std::vector<bool> pending_;    // a group whose update waits for its first gradient scores
  std::vector<double> reached_;  // the highest ratio each group has pruned to: masks never go below it
  int64_t step_ = -1;
  int64_t mask_updates_ = 0;
  std::function<void(std::vector<double>&)> sum_over_ranks_;
};

}  // namespace spruce::torch
