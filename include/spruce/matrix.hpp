// Plain row-major matrices and views, used by the pruning core (no torch, no intrinsics).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace spruce {

// A row-major view: element (r, c) is data[r * ld + c]. Rows are output channels (W[OC][IC]).
template <typename T>
struct MatrixView {
  T* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t ld = 0;

  MatrixView() = default;
  MatrixView(T* d, int64_t r, int64_t c) : data(d), rows(r), cols(c), ld(c) {}
  MatrixView(T* d, int64_t r, int64_t c, int64_t stride) : data(d), rows(r), cols(c), ld(stride) {}
  template <typename U>
  MatrixView(const MatrixView<U>& o) : data(o.data), rows(o.rows), cols(o.cols), ld(o.ld) {}

  T& operator()(int64_t r, int64_t c) const { return data[r * ld + c]; }
  int64_t size() const { return rows * cols; }
};

// An owning row-major matrix.
template <typename T>
struct Matrix {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<T> data;

  Matrix() = default;
  Matrix(int64_t r, int64_t c, T fill = T{}) : rows(r), cols(c), data(static_cast<size_t>(r * c), fill) {}

  T& operator()(int64_t r, int64_t c) { return data[static_cast<size_t>(r * cols + c)]; }
  const T& operator()(int64_t r, int64_t c) const { return data[static_cast<size_t>(r * cols + c)]; }
  MatrixView<T> view() { return {data.data(), rows, cols}; }
  MatrixView<const T> view() const { return {data.data(), rows, cols}; }
  int64_t size() const { return rows * cols; }
};

using MatrixF = Matrix<float>;
// A mask holds 1 for a kept weight and 0 for a pruned one.
using Mask = Matrix<uint8_t>;

// The fraction of zeros in a mask.
double mask_sparsity(const Mask& mask);

// Shape of the 2-D view of a weight tensor: rank 2 is itself, rank 4 [OC][IC][KH][KW] is
// [OC][KH*KW*IC] (channels-last reduction order, as Intel Neural Compressor views conv weights).
struct MatrixShape {
  int64_t rows = 0;
  int64_t cols = 0;
};
MatrixShape matrix_shape(const std::vector<int64_t>& tensor_shape);

// Index in the original tensor's row-major storage of element (r, c) of its 2-D view.
// For rank 4 this undoes the channels-last permutation; for rank 2 it is r * cols + c.
class TensorMatrixMap {
 public:
  explicit TensorMatrixMap(const std::vector<int64_t>& tensor_shape);
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t offset(int64_t r, int64_t c) const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  int64_t ic_ = 1, khw_ = 1;  // rank 4 only: input channels, KH*KW
  bool conv_ = false;
};

// Gather a tensor's storage into its 2-D view, and scatter a view back.
MatrixF to_matrix(const float* tensor, const std::vector<int64_t>& tensor_shape);
void from_matrix(const MatrixF& m, float* tensor, const std::vector<int64_t>& tensor_shape);

}  // namespace spruce
