// Pruning with reconstruction (SparseGPT: Frantar & Alistarh 2023, "Massive Language Models Can
// Be Accurately Pruned in One-Shot"). A Linear layer's weight is pruned one block of input columns
// at a time, left to right. Each pruned weight's error moves onto the columns not yet visited,
// through the inverse of the Gram matrix of the layer's inputs, so that the layer's outputs on
// those inputs change as little as the mask allows. Within each block of columns the mask keeps
// the weights with the highest OBS saliency w^2 / [H^-1]_jj (Optimal Brain Surgeon), under the pattern.
#pragma once
#include <torch/types.h>

#include <cstdint>

#include "spruce/criteria.hpp"
#include "spruce/pattern.hpp"

namespace spruce::torch {

struct ReconstructionOptions {
  // Added to the Gram matrix's diagonal, as a share of its mean: keeps the inverse stable where
  // inputs are few or features correlated (SparseGPT's 1%).
  double damping = 0.01;
  // Input columns per block: the mask of a block is chosen after the blocks left of it have
  // moved their errors onto it. Rounded up to whole blocks of the pattern (or groups of M).
  int64_t block_columns = 128;
};

// Prunes `weight` [OC][IC] (float, updated in place: pruned weights become zero, kept ones take
// the compensation) to `pattern` at `ratio` (ignored for N:M, which fixes its own), given
// `gram` [IC][IC] = X^T X over the input rows seen (any float type; its scale does not matter).
// `previous_mask` (0/1 of the weight's shape, or undefined) marks weights that must stay pruned.
// Returns the new mask, float 0/1 of the weight's shape. Throws spruce::Error (usage) for a shape
// that does not match, (data) for a Gram matrix that is not finite.
::torch::Tensor prune_with_reconstruction(::torch::Tensor& weight, const ::torch::Tensor& gram, const Pattern& pattern,
                                          double ratio, Reduce reduce = Reduce::Mean,
                                          const ::torch::Tensor& previous_mask = {},
                                          const ReconstructionOptions& options = {});

}  // namespace spruce::torch
