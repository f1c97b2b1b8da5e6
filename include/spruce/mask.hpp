// Masks from scores under a pattern, at a target sparsity (fraction of zero weights).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "spruce/criteria.hpp"
#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"

namespace spruce {

enum class Scope { Local, Global };
Scope parse_scope(std::string_view text);  // "local", "global"
std::string to_string(Scope s);

// Local scope, block pattern: exactly round(ratio * blocks) lowest-scoring blocks are pruned.
// N:M pattern: the top N scores of every group of M input channels are kept (ratio is ignored;
// a partial tail group keeps min(N, its size)). Ties break toward the lower index, so the result
// is deterministic.
Mask local_mask(const Pattern& p, MatrixView<const float> scores, double ratio, Reduce reduce = Reduce::Mean);

// An N:M pattern on its way to 1 - N/M (gradual N:M): the share ratio / (1 - N/M) of the groups of
// M whose pruned scores sum lowest are pruned to N:M; the other groups stay dense. A ratio at or
// above 1 - N/M gives local_mask's full N:M. Groups already N:M (their pruned weights zero) cost
// least, so as the ratio grows the earlier groups stay pruned.
Mask gradual_nm_mask(const Pattern& p, MatrixView<const float> scores, double ratio);

// Expand a per-block keep grid (grid_rows x grid_cols) to a full element mask.
Mask expand_block_mask(const BlockGrid& grid, const Mask& block_keep);

struct GlobalTensor {
  Pattern pattern;
  MatrixView<const float> scores;  // element scores
};
struct GlobalLimits {
  double min_ratio = 0.0;   // min_sparsity_ratio_per_op
  double max_ratio = 0.98;  // max_sparsity_ratio_per_op
  bool operator==(const GlobalLimits&) const = default;
};
// Global scope: one threshold over the block scores of all tensors, so that the zeros over all
// tensors reach `ratio` of their weights, while each tensor's own sparsity stays within limits.
// N:M tensors keep their pattern's fixed ratio and take no part in the threshold.
std::vector<Mask> global_masks(const std::vector<GlobalTensor>& tensors, double ratio, GlobalLimits limits = {},
                               Reduce reduce = Reduce::Mean);

// Whether a matrix's zeros (or a mask's zeros) already follow the pattern: every block that holds
// a zero is all zero (block patterns), or every group of M has at most N nonzeros (N:M).
bool follows_pattern(const Pattern& p, MatrixView<const float> w);
bool follows_pattern(const Pattern& p, const Mask& mask);

// Keep = (w != 0): the mask that locks the existing zeros (pattern lock).
Mask mask_of_nonzeros(MatrixView<const float> w);

// w *= mask.
void apply_mask(MatrixView<float> w, const Mask& mask);

}  // namespace spruce
