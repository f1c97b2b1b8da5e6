// f32-dot-interaction-u8-avx2: one pair at a time, the 16 lanes of the fixed summation order
// (kernels/kernel.hpp) held in two ymm accumulators (lanes 0-7 and 8-15), so CPUs without
// AVX-512 get the same bytes as every other kernel, far faster than the scalar reference.
#include <immintrin.h>

#include "kernels/interaction.hpp"

namespace spruce::kernels::x86 {
namespace {
// Lanes k .. k + 7 of x that lie below dim, zero elsewhere.
inline __m256 load8(const float* x, int64_t k, int64_t dim) {
  if (k + 8 <= dim) return _mm256_loadu_ps(x + k);
  if (k >= dim) return _mm256_setzero_ps();
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_maskload_ps(x + k, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(dim - k)), lane));
}

float dot(const float* a, const float* b, int64_t dim) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int64_t k = 0; k < dim; k += 16) {
    lo = _mm256_fmadd_ps(load8(a, k, dim), load8(b, k, dim), lo);
    hi = _mm256_fmadd_ps(load8(a, k + 8, dim), load8(b, k + 8, dim), hi);
  }
  const __m256 s8 = _mm256_add_ps(lo, hi);                                                 // l + 8 onto l
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));  // l + 4
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                                 // l + 2
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));                         // l + 1
}
}  // namespace

void f32_dot_interaction_u8_avx2(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out) {
  quantize_u8(v[0], dim, q, out);
  uint8_t* pairs = out + dim;
  for (int64_t i = 1; i < count; ++i)
    for (int64_t j = 0; j < i; ++j) *pairs++ = q.quantize(dot(v[i], v[j], dim));
}

}  // namespace spruce::kernels::x86
