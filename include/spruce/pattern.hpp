// Sparsity patterns: block-wise RxC (R output channels by C input channels) and N:M.
//
//   "4x1", "1x4", "2x1", "4x16", "1x1"   aligned blocks, kept or zeroed whole
//   "channelx1"                           a block spans every output channel: removes input channels
//   "1xchannel"                           a block spans every input channel: removes output channels
//   "2:4"                                 at most N nonzeros in every M consecutive input channels of
//                                         one output channel (NVIDIA's and PyTorch's meaning)
//
// Invariant: parse(p.str()) == p.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace spruce {

class Pattern {
 public:
  enum class Kind { Block, NM };
  static constexpr int kChannel = -1;  // a block dimension that spans the whole tensor dimension

  // Throws spruce::Error (usage) with an explanation of valid patterns.
  static Pattern parse(std::string_view text);
  static Pattern block(int rows, int cols);  // rows/cols >= 1, or kChannel
  static Pattern n_of_m(int n, int m);       // 0 < n < m

  Pattern() : Pattern(block(1, 1)) {}

  Kind kind() const { return kind_; }
  bool is_block() const { return kind_ == Kind::Block; }
  bool is_nm() const { return kind_ == Kind::NM; }
  bool is_unstructured() const { return is_block() && a_ == 1 && b_ == 1; }

  // Block patterns: nominal block size, kChannel for a spanning dimension.
  int rows() const { return a_; }
  int cols() const { return b_; }
  // Block size resolved against a matrix of oc x ic (kChannel becomes the full dimension).
  int64_t block_rows(int64_t oc) const { return a_ == kChannel ? oc : a_; }
  int64_t block_cols(int64_t ic) const { return b_ == kChannel ? ic : b_; }

  // N:M patterns.
  int n() const { return a_; }
  int m() const { return b_; }

  // Sparsity implied by the pattern itself (1 - N/M), or 0 for block patterns.
  double natural_sparsity() const { return is_nm() ? 1.0 - double(a_) / double(b_) : 0.0; }

  std::string str() const;
  bool operator==(const Pattern&) const = default;

  static const char* help();  // what a valid pattern looks like

 private:
  Pattern(Kind k, int a, int b) : kind_(k), a_(a), b_(b) {}
  Kind kind_;
  int a_, b_;
};

// The grid of blocks a block pattern lays over an oc x ic matrix; edge blocks may be partial.
struct BlockGrid {
  int64_t rows = 0, cols = 0;  // matrix size
  int64_t block_rows = 1, block_cols = 1;
  int64_t grid_rows() const { return (rows + block_rows - 1) / block_rows; }
  int64_t grid_cols() const { return (cols + block_cols - 1) / block_cols; }
  int64_t blocks() const { return grid_rows() * grid_cols(); }
  // Elements in block (i, j), smaller at the edges.
  int64_t block_elems(int64_t i, int64_t j) const;
  int64_t row_begin(int64_t i) const { return i * block_rows; }
  int64_t row_end(int64_t i) const;
  int64_t col_begin(int64_t j) const { return j * block_cols; }
  int64_t col_end(int64_t j) const;
};
// For N:M, the grid is 1 x M groups along input channels.
BlockGrid block_grid(const Pattern& p, int64_t oc, int64_t ic);
// Throws spruce::Error (usage) naming the tensor `name` (as the message should show it, quoted or
// described) when the block pattern `p` lays a single block over its oc x ic matrix: local scope
// would zero all of it or none of it, and global scope, within its per-layer maximum, never prunes
// it. An N:M pattern fails where a row is narrower than M. `leave_out` says how to leave the tensor
// out of pruning, where the caller has a way; the message offers it beside a smaller pattern.
void require_blocks_fit(const Pattern& p, int64_t oc, int64_t ic, const std::string& name,
                        const std::string& leave_out = "");

}  // namespace spruce
