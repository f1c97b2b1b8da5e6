// One-shot pruning of the weights in a safetensors checkpoint, under a recipe.
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "spruce/recipe.hpp"
#include "spruce/safetensors.hpp"

namespace spruce {

struct CheckpointPruneOptions {
  Recipe recipe;                      // groups pick tensors by name; rank 2 is "Linear", rank 4 "Conv"
  std::optional<Scope> scope;         // overrides every group's pruning_scope
  std::string include;                // regex: only tensors whose names match (empty: all)
  std::string exclude;                // regex: never tensors whose names match (empty: none)
  std::string source = "checkpoint";  // the file, as errors name it
};

struct TensorPruneReport {
  std::string name;
  std::vector<int64_t> shape;
  DType dtype = DType::F32;
  bool pruned = false;
  std::string pattern;    // the group's pattern, when pruned
  double target = 0.0;    // the group's target, when pruned
  double sparsity = 0.0;  // zeros after pruning (before, for tensors left alone)
  std::string reason;     // why a tensor was left alone
  std::string note;       // what a pruned tensor's pattern could not reach (an N:M tail group)
};

// Prunes every F32/F16/BF16 tensor of rank 2 or 4 that a recipe group takes, by magnitude, to the
// group's final target. Kept weights stay bit-identical and other tensors byte-identical. A NaN or
// Inf in a tensor to prune throws spruce::Error (data).
std::vector<TensorPruneReport> prune_checkpoint(SafetensorsFile& file, const CheckpointPruneOptions& options);

// Whether a tensor is a weight spruce prunes: F32/F16/BF16, rank 2 (Linear) or 4 (Conv), not
// empty. not_a_weight says why not ("" for a weight), in the words of TensorPruneReport::reason.
std::string not_a_weight(const Tensor& t);
inline bool is_weight(const Tensor& t) { return not_a_weight(t).empty(); }

// Fraction of zero elements in a tensor (floats compare to 0, -0 included; other dtypes by bytes).
double tensor_sparsity(const Tensor& t);

}  // namespace spruce
