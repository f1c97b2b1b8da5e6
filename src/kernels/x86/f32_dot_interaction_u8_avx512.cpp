// f32-dot-interaction-u8-avx512: 16 pairs at a time, one zmm accumulator each (lane l sums
// k = l, l + 16, ...), then a shuffle tree that reduces the 16 accumulators into one vector in
// the order kernels/interaction.hpp fixes, quantized and stored as 16 bytes.
#include <immintrin.h>

#include <algorithm>

#include "kernels/interaction.hpp"

namespace spruce::kernels::x86 {
namespace {
constexpr int kGroup = 16;

// The reduction below leaves accumulator b + 4e in lane 4b + e (a 4x4 transpose, its own
// inverse), so pair q of a group goes to accumulator slot_of(q) and comes out in lane q.
constexpr int slot_of(int q) { return q / 4 + 4 * (q % 4); }

// Lane q: the sum of the 16 lanes of acc[slot_of(q)], as s_l += s_{l+8}, s_{l+4}, s_{l+2}, s_{l+1}.
inline __m512 reduce16(const __m512* acc) {
  __m512 c[8], d[4], e[2];
  for (int p = 0; p < 8; ++p)  // lanes l + 8 onto l: 128-bit blocks {0,1} + {2,3}
    c[p] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * p], acc[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(acc[2 * p], acc[2 * p + 1], 0xEE));
  for (int p = 0; p < 4; ++p)  // l + 4 onto l: blocks {0,2} + {1,3}
    d[p] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * p], c[2 * p + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * p], c[2 * p + 1], 0xDD));
  for (int p = 0; p < 2; ++p)  // l + 2 onto l, inside each block
    e[p] = _mm512_add_ps(_mm512_shuffle_ps(d[2 * p], d[2 * p + 1], 0x44), _mm512_shuffle_ps(d[2 * p], d[2 * p + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xDD));  // l + 1 onto l
}

// quantize_u8's arithmetic; cvtps rounds half to even (the default MXCSR mode), as its 1.5 * 2^23 trick.
inline void store_u8(uint8_t* out, __mmask16 m, __m512 x, __m512 inv, __m512 zp) {
  const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(x, inv), zp), _mm512_setzero_ps()),
                                 _mm512_set1_ps(255.f));
  _mm512_mask_cvtusepi32_storeu_epi8(out, m, _mm512_cvtps_epi32(v));
}

inline __mmask16 first(int64_t n) { return __mmask16(n >= kGroup ? 0xFFFF : (1u << n) - 1); }
}  // namespace

void f32_dot_interaction_u8_avx512(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out) {
  const __m512 inv = _mm512_set1_ps(1.f / q.scale), zp = _mm512_set1_ps(float(q.zero_point));
  for (int64_t k = 0; k < dim; k += kGroup) {
    const __mmask16 m = first(dim - k);
    store_u8(out + k, m, _mm512_maskz_loadu_ps(m, v[0] + k), inv, zp);
  }
  const int64_t pairs = count * (count - 1) / 2, full = dim - dim % kGroup;
  const __mmask16 tail = first(dim % kGroup);
  int64_t i = 1, j = 0;  // the next pair, in tril order
  for (int64_t base = 0; base < pairs; base += kGroup) {
    const int64_t n = std::min<int64_t>(kGroup, pairs - base);
    const float *a[kGroup], *b[kGroup];
    for (int p = 0; p < kGroup; ++p) {
      const int s = slot_of(p);
      a[s] = b[s] = v[0];  // past the last pair: computed, never stored
      if (p < n) {
        a[s] = v[i], b[s] = v[j];
        if (++j == i) ++i, j = 0;
      }
    }
    __m512 acc[kGroup];
    for (int s = 0; s < kGroup; ++s) acc[s] = _mm512_setzero_ps();
    for (int64_t k = 0; k < full; k += kGroup)
      for (int s = 0; s < kGroup; ++s) acc[s] = _mm512_fmadd_ps(_mm512_loadu_ps(a[s] + k), _mm512_loadu_ps(b[s] + k), acc[s]);
    if (full < dim)
      for (int s = 0; s < kGroup; ++s)
        acc[s] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a[s] + full), _mm512_maskz_loadu_ps(tail, b[s] + full), acc[s]);
    store_u8(out + dim + base, first(n), reduce16(acc), inv, zp);
  }
}

}  // namespace spruce::kernels::x86
