#include "spruce/matrix.hpp"

#include <string>

#include "spruce/error.hpp"

namespace spruce {

double mask_sparsity(const Mask& mask) {
  if (mask.data.empty()) return 0.0;
  int64_t zeros = 0;
  for (uint8_t k : mask.data) zeros += (k == 0);
  return double(zeros) / double(mask.data.size());
}

MatrixShape matrix_shape(const std::vector<int64_t>& s) {
  if (s.size() == 2) return {s[0], s[1]};
  if (s.size() == 4) return {s[0], s[1] * s[2] * s[3]};
  data_error("a weight must have rank 2 ([OC][IC]) or 4 ([OC][IC][KH][KW]), not rank " + std::to_string(s.size()));
}

TensorMatrixMap::TensorMatrixMap(const std::vector<int64_t>& s) {
  auto ms = matrix_shape(s);
  rows_ = ms.rows;
  cols_ = ms.cols;
  if (s.size() == 4) {
    conv_ = true;
    ic_ = s[1];
    khw_ = s[2] * s[3];
  }
}

int64_t TensorMatrixMap::offset(int64_t r, int64_t c) const {
  if (!conv_) return r * cols_ + c;
  // View column c = (kh * KW + kw) * IC + ic; storage is [oc][ic][kh][kw].
  int64_t ic = c % ic_, khw = c / ic_;
  return (r * ic_ + ic) * khw_ + khw;
}

MatrixF to_matrix(const float* tensor, const std::vector<int64_t>& shape) {
  TensorMatrixMap map(shape);
  MatrixF m(map.rows(), map.cols());
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) m(r, c) = tensor[map.offset(r, c)];
  return m;
}

void from_matrix(const MatrixF& m, float* tensor, const std::vector<int64_t>& shape) {
  TensorMatrixMap map(shape);
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) tensor[map.offset(r, c)] = m(r, c);
}

}  // namespace spruce
