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

// s8-table-dot-interaction-u8-ref: dequantize each row (float(q) * scale, one rounding), then the
// f32 reference.
void s8_table_dot_interaction_u8(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                 int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp) {
  vp[0] = dense;
  for (int64_t t = 0; t + 1 < count; ++t) {
    float* dst = scratch + t * dim;
    for (int64_t k = 0; k < dim; ++k) dst[k] = float(rows[t][k]) * scales[t];
    vp[t + 1] = dst;
  }
  f32_dot_interaction_u8(vp, count, dim, q, out);
}

}  // namespace spruce::kernels::ref
