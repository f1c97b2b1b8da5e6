// Input-channel orders for N:M patterns (Pool & Yu, "Channel Permutations for N:M Sparsity",
// NeurIPS 2021). An N:M mask keeps the top N scores of every M consecutive input channels, so which
// channels share a group decides what it keeps. y = W x is unchanged when W's columns and x's
// channels are reordered alike; where x is another layer's output (through element-wise functions),
// reordering that layer's output rows costs nothing at run time.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"

namespace spruce {

struct ChannelOrder {
  std::vector<int64_t> order;  // order[j]: the original column placed at column j
  double kept_before = 0;      // score the N:M mask keeps in the original order
  double kept_after = 0;       // ... and in `order`
  double total = 0;            // all of the scores: what an unstructured mask at 0% would keep
  int passes = 0;              // search passes run
};

// The score an N:M mask keeps of `scores` [rows][cols] (non-negative) with the columns in `order`
// (a permutation of 0..cols-1). Throws spruce::Error (usage) unless p is N:M and cols % M == 0.
double nm_kept_score(const Pattern& p, MatrixView<const float> scores, std::span<const int64_t> order);

// A column order that keeps at least as much score under p as the original one. Columns move only
// within their segment of `segment` consecutive columns (e.g. one attention head's channels); a
// segment of cols lets any column go anywhere. Greedy local search: for every two groups of M in a
// segment, the best exchange of one column each, taken when it raises the kept score, in passes
// until one finds no gain or `max_passes` have run. Deterministic.
// Throws spruce::Error (usage) unless p is N:M, segment > 0 divides cols, M divides segment, and
// every score is finite and non-negative.
ChannelOrder search_nm_channel_order(const Pattern& p, MatrixView<const float> scores, int64_t segment,
                                     int max_passes = 20);

}  // namespace spruce
