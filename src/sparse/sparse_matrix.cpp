#include "spruce/sparse_matrix.hpp"

#include <algorithm>
#include <string>

#include "spruce/error.hpp"

namespace spruce {

template <typename T>
SparseMatrix<T> SparseMatrix<T>::pack(MatrixView<const T> w, const Pattern& p) {
  if (w.rows < 0 || w.cols < 0 || (w.rows * w.cols > 0 && !w.data) || w.ld < w.cols)
    usage_error("pack: invalid dense matrix view (" + std::to_string(w.rows) + "x" + std::to_string(w.cols) +
                ", ld " + std::to_string(w.ld) + ")");
  SparseMatrix s;
  s.rows_ = w.rows;
  s.cols_ = w.cols;
  s.pattern_ = p;
  const BlockGrid g = block_grid(p, w.rows, w.cols);
  s.br_ = g.block_rows;
  s.bc_ = g.block_cols;
  if (p.is_nm()) {
    const int n = p.n();
    const int64_t groups = g.grid_cols();
    s.values_.assign(size_t(w.rows * groups * n), T(0));
    s.nm_index_.assign(s.values_.size(), 0);
    for (int64_t r = 0; r < w.rows; ++r)
      for (int64_t gi = 0; gi < groups; ++gi) {
        const size_t base = size_t((r * groups + gi) * n);
        int used = 0;
        for (int64_t c = g.col_begin(gi); c < g.col_end(gi); ++c) {
          if (w(r, c) == T(0)) continue;
          if (used == n)
            data_error("pack: weights do not fit pattern " + p.str() + " (at most " + std::to_string(n) +
                       " nonzeros in every " + std::to_string(p.m()) + " consecutive input channels): row " +
                       std::to_string(r) + ", columns " + std::to_string(g.col_begin(gi)) + ".." +
                       std::to_string(g.col_end(gi) - 1));
          s.values_[base + used] = w(r, c);
          s.nm_index_[base + used] = uint8_t(c - g.col_begin(gi));
          ++used;
        }
      }
    if (p.m() > 256) usage_error("pack: N:M patterns with M > 256 are not supported");
    return s;
  }
  s.block_ptr_.assign(size_t(g.grid_rows() + 1), 0);
  for (int64_t i = 0; i < g.grid_rows(); ++i) {
    for (int64_t j = 0; j < g.grid_cols(); ++j) {
      bool keep = false;
      for (int64_t r = g.row_begin(i); r < g.row_end(i) && !keep; ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c)
          if (w(r, c) != T(0)) { keep = true; break; }
      if (!keep) continue;
      s.block_col_.push_back(int32_t(j));
      const size_t base = s.values_.size();
      s.values_.resize(base + size_t(s.br_ * s.bc_), T(0));
      for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c)
          s.values_[base + size_t((r - g.row_begin(i)) * s.bc_ + (c - g.col_begin(j)))] = w(r, c);
    }
    s.block_ptr_[size_t(i + 1)] = int64_t(s.block_col_.size());
  }
  return s;
}

template <typename T>
void SparseMatrix<T>::unpack_into(MatrixView<T> out) const {
  if (out.rows != rows_ || out.cols != cols_)
    usage_error("unpack: output is " + std::to_string(out.rows) + "x" + std::to_string(out.cols) + ", expected " +
                std::to_string(rows_) + "x" + std::to_string(cols_));
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t c = 0; c < cols_; ++c) out(r, c) = T(0);
  if (pattern_.is_nm()) {
    const int n = pattern_.n();
    const int64_t groups = (cols_ + bc_ - 1) / bc_;
    for (int64_t r = 0; r < rows_; ++r)
      for (int64_t gi = 0; gi < groups; ++gi)
        for (int i = 0; i < n; ++i) {
          const size_t at = size_t((r * groups + gi) * n + i);
          if (values_[at] != T(0)) out(r, gi * bc_ + nm_index_[at]) = values_[at];
        }
    return;
  }
  for (size_t i = 0; i + 1 < block_ptr_.size(); ++i)
    for (int64_t b = block_ptr_[i]; b < block_ptr_[i + 1]; ++b) {
      const int64_t r0 = int64_t(i) * br_, c0 = int64_t(block_col_[size_t(b)]) * bc_;
      for (int64_t r = r0; r < std::min(rows_, r0 + br_); ++r)
        for (int64_t c = c0; c < std::min(cols_, c0 + bc_); ++c)
          out(r, c) = values_[size_t(b * br_ * bc_ + (r - r0) * bc_ + (c - c0))];
    }
}

template <typename T>
Matrix<T> SparseMatrix<T>::unpack() const {
  Matrix<T> m(rows_, cols_);
  unpack_into(m.view());
  return m;
}

template <typename T>
size_t SparseMatrix<T>::size_bytes() const {
  return values_.size() * sizeof(T) + nm_index_.size() + block_col_.size() * sizeof(int32_t) +
         block_ptr_.size() * sizeof(int64_t);
}

template <typename T>
int64_t SparseMatrix<T>::nonzeros() const {
  int64_t n = 0;
  for (T v : values_) n += (v != T(0));
  return n;
}

template <typename T>
double sparsity(MatrixView<const T> w) {
  if (w.rows * w.cols == 0) return 0.0;
  int64_t zeros = 0;
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) zeros += (w(r, c) == T(0));
  return double(zeros) / double(w.rows * w.cols);
}

template class SparseMatrix<float>;
template class SparseMatrix<int8_t>;
template double sparsity(MatrixView<const float>);
template double sparsity(MatrixView<const int8_t>);

}  // namespace spruce
