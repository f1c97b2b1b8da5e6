// The dot-interaction microkernels (contract and registry entries: kernel.hpp; operator:
// spruce/interaction.hpp).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernel.hpp"

namespace spruce::kernels {

// Row-wise symmetric INT8 of n floats, the rule every S8 interaction kernel applies to the dense
// vector and quantize_embedding_rows to table rows: scale = max|x| / 127, q = clamp(nearbyint(x /
// scale), -127, 127); scale 0 and all zeros where the row is all zero, underflows or holds a value
// that is not finite. Returns the scale. (The max of |x| does not depend on the order it is taken
// in, so vector kernels get the same scale.)
inline float s8_quantize_row(const float* x, int64_t n, int8_t* q) {
  float max_abs = 0.f;
  bool finite = true;
  for (int64_t k = 0; k < n; ++k) max_abs = std::max(max_abs, std::abs(x[k])), finite = finite && std::isfinite(x[k]);
  const float scale = finite ? max_abs / 127.f : 0.f;
  for (int64_t k = 0; k < n; ++k)
    q[k] = scale > 0.f ? int8_t(std::clamp(std::nearbyint(x[k] / scale), -127.f, 127.f)) : int8_t(0);
  return scale;
}

namespace ref {
void f32_dot_interaction_u8(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void s8_table_dot_interaction_u8(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                 int64_t dim, const U8Quant& q, uint8_t* out, uint8_t* scratch);
}  // namespace ref
namespace x86 {
void f32_dot_interaction_u8_avx2(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void f32_dot_interaction_u8_avx512(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void s8_table_dot_interaction_u8_avx2(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                      int64_t dim, const U8Quant& q, uint8_t* out, uint8_t* scratch);
void s8_table_dot_interaction_u8_avx512vnni(const float* dense, const int8_t* const* rows, const float* scales,
                                            int64_t count, int64_t dim, const U8Quant& q, uint8_t* out,
                                            uint8_t* scratch);
}  // namespace x86

}  // namespace spruce::kernels
