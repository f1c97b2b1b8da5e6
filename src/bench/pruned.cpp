// The one pruned-weight generator of benchmarks and tests.
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <type_traits>

#include "spruce/bench.hpp"
#include "spruce/error.hpp"

namespace spruce::bench {

MatrixF pruned_weights(int64_t rows, int64_t cols, const Pattern& p, double sparsity, std::mt19937& rng,
                       const WeightOptions& o) {
  if (!(sparsity >= 0.0 && sparsity <= 1.0)) usage_error("pruned_weights: sparsity must be in [0, 1]");
  if (o.values == Values::Integers && o.lim < 1) usage_error("pruned_weights: lim must be at least 1");
  MatrixF w(rows, cols);
  if (o.values == Values::Integers) {
    std::uniform_int_distribution<int> val(1, o.lim), sign(0, 1);
    for (auto& v : w.data) v = float(sign(rng) ? val(rng) : -val(rng));
  } else {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (auto& v : w.data) v = d(rng);
  }
  const BlockGrid g = block_grid(p, rows, cols);
  if (p.is_nm()) {
    std::vector<int64_t> idx;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < g.grid_cols(); ++j) {
        idx.resize(size_t(g.col_end(j) - g.col_begin(j)));
        std::iota(idx.begin(), idx.end(), g.col_begin(j));
        std::shuffle(idx.begin(), idx.end(), rng);
        for (size_t i = size_t(p.n()); i < idx.size(); ++i) w(r, idx[i]) = 0.0f;
      }
  } else {
    std::vector<int64_t> blocks(size_t(g.blocks()));
    std::iota(blocks.begin(), blocks.end(), int64_t(0));
    std::shuffle(blocks.begin(), blocks.end(), rng);
    const auto zeroed = size_t(std::llround(sparsity * double(blocks.size())));
    for (size_t b = 0; b < zeroed; ++b) {
      const int64_t i = blocks[b] / g.grid_cols(), j = blocks[b] % g.grid_cols();
      for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) w(r, c) = 0.0f;
    }
  }
  if (o.empty_row && rows > 0) std::fill(w.data.begin(), w.data.begin() + cols, 0.0f);
  return w;
}

template <typename T>
Matrix<T> pruned_integers(int64_t rows, int64_t cols, const Pattern& p, double sparsity, std::mt19937& rng, int lim,
                          bool empty_row) {
  if (std::is_same_v<T, int8_t> && lim > 127) usage_error("pruned_integers: lim must be at most 127 for int8 weights");
  const MatrixF w = pruned_weights(rows, cols, p, sparsity, rng, {Values::Integers, lim, empty_row});
  Matrix<T> out(rows, cols);
  std::transform(w.data.begin(), w.data.end(), out.data.begin(), [](float v) { return T(v); });
  return out;
}

template Matrix<float> pruned_integers<float>(int64_t, int64_t, const Pattern&, double, std::mt19937&, int, bool);
template Matrix<int8_t> pruned_integers<int8_t>(int64_t, int64_t, const Pattern&, double, std::mt19937&, int, bool);

std::vector<float> uniform_vec(size_t n, float lo, float hi, std::mt19937& rng) {
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace spruce::bench
