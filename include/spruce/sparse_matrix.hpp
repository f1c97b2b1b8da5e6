// Packed sparse weights W[OC][IC] under a Pattern (DESIGN.md orientation and pattern meanings).
//
//   Block RxC (incl. 1x1, channelx1, 1xchannel): block-sparse rows (BSR).
//     block_ptr[i]..block_ptr[i+1] index the kept blocks of block-row i (R output channels);
//     block_col[b] is the block-column of block b; values hold R*C entries per block, row-major
//     within the block. Edge blocks that R or C does not divide are zero-padded to R*C.
//     A block is kept when any of its entries is nonzero, so every matrix packs exactly.
//   N:M (at most N nonzeros in every M consecutive input channels of one output channel):
//     values[(r * groups + g) * N + i] with index[...] = offset of that value inside group g
//     (0..M-1). Groups with fewer than N nonzeros are padded with zero values. A group with more
//     than N nonzeros does not fit the pattern: pack() throws spruce::Error.
//
// Invariants: unpack(pack(W, p)) == W exactly; size_bytes() is what the packed arrays occupy.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"

namespace spruce {

template <typename T>  // float or int8_t
class SparseMatrix {
 public:
  SparseMatrix() = default;
  static SparseMatrix pack(MatrixView<const T> dense, const Pattern& pattern);

  Matrix<T> unpack() const;
  void unpack_into(MatrixView<T> out) const;  // out must be rows() x cols()

  int64_t rows() const { return rows_; }  // OC
  int64_t cols() const { return cols_; }  // IC
  const Pattern& pattern() const { return pattern_; }
  int64_t block_rows() const { return br_; }  // R (1 for N:M)
  int64_t block_cols() const { return bc_; }  // C (M for N:M)

  // Bytes held by the packed arrays (values + indices + pointers).
  size_t size_bytes() const;
  // Dense bytes / packed bytes.
  double compression() const { return double(rows_ * cols_ * int64_t(sizeof(T))) / double(size_bytes()); }
  // Number of stored values (kept blocks x block size, or rows x groups x N), and of true nonzeros.
  int64_t stored() const { return int64_t(values_.size()); }
  int64_t nonzeros() const;

  // Raw arrays (read-only), as described above.
  const std::vector<int64_t>& block_ptr() const { return block_ptr_; }
  const std::vector<int32_t>& block_col() const { return block_col_; }
  const std::vector<T>& values() const { return values_; }
  const std::vector<uint8_t>& nm_index() const { return nm_index_; }

 private:
  int64_t rows_ = 0, cols_ = 0, br_ = 1, bc_ = 1;
  Pattern pattern_;
  std::vector<int64_t> block_ptr_;
  std::vector<int32_t> block_col_;
  std::vector<T> values_;
  std::vector<uint8_t> nm_index_;
};

extern template class SparseMatrix<float>;
extern template class SparseMatrix<int8_t>;

// Fraction of zeros in a dense matrix.
template <typename T>
double sparsity(MatrixView<const T> w);

}  // namespace spruce
