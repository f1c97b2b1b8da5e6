#include "spruce/mask.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "spruce/error.hpp"

namespace spruce {

Scope parse_scope(std::string_view t) {
  if (t == "local") return Scope::Local;
  if (t == "global") return Scope::Global;
  usage_error("unknown pruning_scope '" + std::string(t) + "': valid are local, global");
}

std::string to_string(Scope s) { return s == Scope::Local ? "local" : "global"; }

namespace {

void check_ratio(double ratio) {
  if (!(ratio >= 0.0 && ratio <= 1.0))
    usage_error("sparsity " + std::to_string(ratio) + " is out of range: give a fraction of zeros in [0, 1], e.g. 0.9");
}

// Scores ordered for pruning: NaN counts as the lowest score, ties go to the lower index.
float key(float s) { return std::isnan(s) ? -INFINITY : s; }

// Indices of `scores` from the first to prune to the last.
std::vector<int64_t> prune_order(const std::vector<float>& scores) {
  std::vector<int64_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return key(scores[a]) < key(scores[b]); });
  return idx;
}

Mask nm_mask(const Pattern& p, MatrixView<const float> s) {
  Mask mask(s.rows, s.cols, 0);
  const int64_t m = p.m(), n = p.n();
  std::vector<int64_t> idx;
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c0 = 0; c0 < s.cols; c0 += m) {
      const int64_t len = std::min(m, s.cols - c0);
      idx.resize(size_t(len));
      std::iota(idx.begin(), idx.end(), c0);
      // Keep the top n; ties keep the lower index.
      std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return key(s(r, a)) > key(s(r, b)); });
      for (int64_t t = 0; t < std::min(n, len); ++t) mask(r, idx[size_t(t)]) = 1;
    }
  return mask;
}

}  // namespace

Mask expand_block_mask(const BlockGrid& g, const Mask& keep) {
  Mask mask(g.rows, g.cols, 0);
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j)
      if (keep(i, j))
        for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
          std::fill_n(&mask(r, g.col_begin(j)), g.col_end(j) - g.col_begin(j), uint8_t{1});
  return mask;
}

Mask gradual_nm_mask(const Pattern& p, MatrixView<const float> scores, double ratio) {
  if (!p.is_nm()) usage_error("gradual N:M needs an N:M pattern, not " + p.str());
  check_ratio(ratio);
  Mask full = nm_mask(p, scores);
  const double natural = p.natural_sparsity();
  if (ratio >= natural) return full;
  struct Group {
    int64_t row, col, len;
  };
  std::vector<Group> groups;  // those that lose weights under N:M
  std::vector<float> costs;   // the sum of the scores each would lose
  for (int64_t r = 0; r < scores.rows; ++r)
    for (int64_t c0 = 0; c0 < scores.cols; c0 += p.m()) {
      const int64_t len = std::min<int64_t>(p.m(), scores.cols - c0);
      if (len <= p.n()) continue;
      double cost = 0;
      for (int64_t c = c0; c < c0 + len; ++c)
        if (!full(r, c)) cost += key(scores(r, c));
      groups.push_back({r, c0, len});
      costs.push_back(static_cast<float>(cost));
    }
  const auto order = prune_order(costs);
  const auto prune = static_cast<size_t>(std::llround(ratio / natural * double(order.size())));
  Mask mask(scores.rows, scores.cols, 1);
  for (size_t t = 0; t < prune; ++t) {
    const Group& g = groups[size_t(order[t])];
    std::copy_n(&full(g.row, g.col), g.len, &mask(g.row, g.col));
  }
  return mask;
}

Mask local_mask(const Pattern& p, MatrixView<const float> scores, double ratio, Reduce reduce) {
  if (p.is_nm()) return nm_mask(p, scores);
  check_ratio(ratio);
  BlockGrid g = block_grid(p, scores.rows, scores.cols);
  MatrixF bs = block_scores(p, scores, reduce);
  const auto order = prune_order(bs.data);
  const auto prune = static_cast<size_t>(std::llround(ratio * double(order.size())));
  Mask keep(g.grid_rows(), g.grid_cols(), 1);
  for (size_t t = 0; t < prune; ++t) keep.data[size_t(order[t])] = 0;
  return expand_block_mask(g, keep);
}

std::vector<Mask> global_masks(const std::vector<GlobalTensor>& tensors, double ratio, GlobalLimits limits,
                               Reduce reduce) {
  check_ratio(ratio);
  if (!(limits.min_ratio >= 0 && limits.min_ratio <= limits.max_ratio && limits.max_ratio <= 1))
    usage_error("min_sparsity_ratio_per_op must be <= max_sparsity_ratio_per_op, both in [0, 1]");

  struct Entry {
    BlockGrid grid;
    MatrixF scores;
    Mask keep;
    int64_t elems = 0, zeros = 0;
  };
  std::vector<Entry> entries(tensors.size());
  std::vector<Mask> masks(tensors.size());
  struct Block {
    float score;
    size_t tensor;
    int64_t index;
  };
  std::vector<Block> blocks;
  int64_t total = 0, zeros = 0;
  for (size_t t = 0; t < tensors.size(); ++t) {
    const auto& in = tensors[t];
    if (in.pattern.is_nm()) {
      masks[t] = nm_mask(in.pattern, in.scores);
      continue;
    }
    Entry& e = entries[t];
    e.grid = block_grid(in.pattern, in.scores.rows, in.scores.cols);
    e.scores = block_scores(in.pattern, in.scores, reduce);
    e.keep = Mask(e.grid.grid_rows(), e.grid.grid_cols(), 1);
    e.elems = in.scores.size();
    total += e.elems;
    // The per-op minimum comes first, from each tensor's own lowest blocks.
    for (int64_t b : prune_order(e.scores.data)) {
      if (double(e.zeros) >= limits.min_ratio * double(e.elems) - 1e-9) break;
      e.keep.data[size_t(b)] = 0;
      e.zeros += e.grid.block_elems(b / e.grid.grid_cols(), b % e.grid.grid_cols());
    }
    zeros += e.zeros;
    for (int64_t b = 0; b < e.scores.size(); ++b) blocks.push_back({key(e.scores.data[size_t(b)]), t, b});
  }
  // One threshold: prune the globally lowest blocks until the total is reached, skipping a
  // tensor's blocks once it would pass the per-op maximum.
  std::stable_sort(blocks.begin(), blocks.end(), [](const Block& a, const Block& b) { return a.score < b.score; });
  const auto goal = static_cast<int64_t>(std::llround(ratio * double(total)));
  for (const Block& b : blocks) {
    if (zeros >= goal) break;
    Entry& e = entries[b.tensor];
    if (!e.keep.data[size_t(b.index)]) continue;
    const int64_t size = e.grid.block_elems(b.index / e.grid.grid_cols(), b.index % e.grid.grid_cols());
    if (double(e.zeros + size) > limits.max_ratio * double(e.elems) + 1e-9) continue;
    e.keep.data[size_t(b.index)] = 0;
    e.zeros += size;
    zeros += size;
  }
  for (size_t t = 0; t < tensors.size(); ++t)
    if (!tensors[t].pattern.is_nm()) masks[t] = expand_block_mask(entries[t].grid, entries[t].keep);
  return masks;
}

namespace {
template <typename IsZero>
bool follows(const Pattern& p, int64_t rows, int64_t cols, IsZero&& is_zero) {
  BlockGrid g = block_grid(p, rows, cols);
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j) {
      int64_t nz = 0;
      for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) nz += !is_zero(r, c);
      if (p.is_nm() ? nz > p.n() : (nz != 0 && nz != g.block_elems(i, j))) return false;
    }
  return true;
}
}  // namespace

bool follows_pattern(const Pattern& p, MatrixView<const float> w) {
  return follows(p, w.rows, w.cols, [&](int64_t r, int64_t c) { return w(r, c) == 0.f; });
}

bool follows_pattern(const Pattern& p, const Mask& mask) {
  return follows(p, mask.rows, mask.cols, [&](int64_t r, int64_t c) { return mask(r, c) == 0; });
}

Mask mask_of_nonzeros(MatrixView<const float> w) {
  Mask m(w.rows, w.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) m(r, c) = w(r, c) != 0.f;
  return m;
}

void apply_mask(MatrixView<float> w, const Mask& mask) {
  if (w.rows != mask.rows || w.cols != mask.cols) data_error("mask shape differs from the weight's shape");
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c)
      if (!mask(r, c)) w(r, c) = 0.f;
}

}  // namespace spruce
