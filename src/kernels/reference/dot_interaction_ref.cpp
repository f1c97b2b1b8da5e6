// f32-dot-interaction-u8-ref: the scalar reference, spelling out the fixed summation order
// (kernels/kernel.hpp) that the vector kernels reproduce.
#include <cmath>

#include "kernels/interaction.hpp"

namespace spruce::kernels::ref {
namespace {
constexpr int kLanes = 16;

float dot(const float* a, const float* b, int64_t dim) {
  float s[kLanes] = {};
  for (int64_t k = 0; k < dim; ++k) s[k % kLanes] = std::fma(a[k], b[k], s[k % kLanes]);
  for (int half = kLanes / 2; half >= 1; half /= 2)
    for (int l = 0; l < half; ++l) s[l] += s[l + half];
  return s[0];
}
}  // namespace

void f32_dot_interaction_u8(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out) {
  quantize_u8(v[0], dim, q, out);
  uint8_t* pairs = out + dim;
  for (int64_t i = 1; i < count; ++i)
    for (int64_t j = 0; j < i; ++j) *pairs++ = q.quantize(dot(v[i], v[j], dim));
}

// s8-table-dot-interaction-u8-ref: the dense vector quantized like a table row, then exact
// integer dot products, each scaled by the product of its two vectors' scales.
void s8_table_dot_interaction_u8(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                 int64_t dim, const U8Quant& q, uint8_t* out, uint8_t* scratch) {
  quantize_u8(dense, dim, q, out);
  int8_t* qd = reinterpret_cast<int8_t*>(scratch);
  const float dense_scale = s8_quantize_row(dense, dim, qd);
  auto vec = [&](int64_t i) { return i == 0 ? qd : rows[i - 1]; };
  auto scale = [&](int64_t i) { return i == 0 ? dense_scale : scales[i - 1]; };
  uint8_t* pairs = out + dim;
  for (int64_t i = 1; i < count; ++i)
    for (int64_t j = 0; j < i; ++j) {
      int32_t dot = 0;
      for (int64_t k = 0; k < dim; ++k) dot += int32_t(vec(i)[k]) * int32_t(vec(j)[k]);
      *pairs++ = q.quantize(float(dot) * (scale(i) * scale(j)));
    }
}

}  // namespace spruce::kernels::ref
