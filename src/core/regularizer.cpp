#include "spruce/regularizer.hpp"

#include <cmath>

#include "spruce/error.hpp"

namespace spruce {
namespace {
// Calls f(grid, i, j, norm) for every block of the pattern's grid.
template <typename F>
void for_each_block_norm(const Pattern& p, MatrixView<const float> w, F&& f) {
  BlockGrid g = block_grid(p, w.rows, w.cols);
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j) {
      double sq = 0.0;
      for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) sq += double(w(r, c)) * w(r, c);
      f(g, i, j, std::sqrt(sq));
    }
}
}  // namespace

double group_lasso_penalty(const Pattern& p, MatrixView<const float> w, double alpha) {
  double sum = 0.0;
  for_each_block_norm(p, w, [&](const BlockGrid&, int64_t, int64_t, double norm) { sum += norm; });
  return alpha * sum;
}

void add_group_lasso_grad(const Pattern& p, MatrixView<const float> w, double alpha, MatrixView<float> grad) {
  if (grad.rows != w.rows || grad.cols != w.cols)
    data_error("group lasso: the gradient's shape differs from the weight's");
  for_each_block_norm(p, w, [&](const BlockGrid& g, int64_t i, int64_t j, double norm) {
    if (norm == 0.0) return;
    const double scale = alpha / norm;
    for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
      for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) grad(r, c) += float(scale * w(r, c));
  });
}

}  // namespace spruce
