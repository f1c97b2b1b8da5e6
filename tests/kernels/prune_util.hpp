// Test helpers: random integer-valued matrices pruned to a pattern at a target sparsity.
// Integer values keep every FP32 sum exact, so FP32 is compared exactly too.
#pragma once
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"

namespace spruce::test {

// W[oc][ic] with values in [-lim, lim] \ {0}, then zeroed to `pattern` at about `sparsity`
// (block patterns: whole blocks; N:M: exactly M-N zeros in every full group). Empty rows appear
// naturally at high sparsity; `empty_row` forces row 0 to be empty as well.
template <typename T>
Matrix<T> pruned(int64_t oc, int64_t ic, const Pattern& p, double sparsity, std::mt19937& rng, int lim = 3,
                 bool empty_row = false) {
  Matrix<T> w(oc, ic);
  std::uniform_int_distribution<int> val(1, lim), sign(0, 1);
  for (auto& v : w.data) v = T(sign(rng) ? val(rng) : -val(rng));
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const BlockGrid g = block_grid(p, oc, ic);
  if (p.is_nm()) {
    for (int64_t r = 0; r < oc; ++r)
      for (int64_t j = 0; j < g.grid_cols(); ++j) {
        std::vector<int64_t> c(size_t(g.col_end(j) - g.col_begin(j)));
        std::iota(c.begin(), c.end(), g.col_begin(j));
        std::shuffle(c.begin(), c.end(), rng);
        for (size_t i = size_t(p.n()); i < c.size(); ++i) w(r, c[i]) = T(0);
      }
  } else {
    for (int64_t i = 0; i < g.grid_rows(); ++i)
      for (int64_t j = 0; j < g.grid_cols(); ++j)
        if (u(rng) < sparsity)
          for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
            for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) w(r, c) = T(0);
  }
  if (empty_row)
    for (int64_t c = 0; c < ic; ++c) w(0, c) = T(0);
  return w;
}

template <typename T>
std::vector<T> random_vec(size_t n, int lo, int hi, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}

}  // namespace spruce::test
