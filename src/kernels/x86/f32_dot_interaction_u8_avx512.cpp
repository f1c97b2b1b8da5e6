// f32-dot-interaction-u8-avx512: the lower triangle in 4x4 tiles of (row i, column j) pairs, one
// zmm accumulator per pair (lane l sums k = l, l + 16, ...), so each 16 floats loaded feed 4
// FMAs; a shuffle tree then reduces a tile's 16 accumulators into one vector in the order
// kernels/kernel.hpp fixes. Diagonal tiles compute a few pairs that are thrown away.
#include <immintrin.h>

#include <algorithm>

#include "kernels/interaction.hpp"

namespace spruce::kernels::x86 {
namespace {
constexpr int kLanes = 16, kTile = 4;

// Lane 4 * (s % 4) + s / 4: the sum of the 16 lanes of acc[s], as s_l += s_{l+8}, s_{l+4}, s_{l+2}, s_{l+1}.
inline __m512 reduce16(const __m512* acc) {
  __m512 c[8], d[4], e[2];
  for (int p = 0; p < 8; ++p)  // lanes l + 8 onto l: 128-bit blocks {0,1} + {2,3}
    c[p] = _mm512_add_ps(_mm512_shuffle_f32x4(acc[2 * p], acc[2 * p + 1], 0x44),
                         _mm512_shuffle_f32x4(acc[2 * p], acc[2 * p + 1], 0xEE));
  for (int p = 0; p < 4; ++p)  // l + 4 onto l: blocks {0,2} + {1,3}
    d[p] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * p], c[2 * p + 1], 0x88),
                         _mm512_shuffle_f32x4(c[2 * p], c[2 * p + 1], 0xDD));
  for (int p = 0; p < 2; ++p)  // l + 2 onto l, inside each block
    e[p] =
        _mm512_add_ps(_mm512_shuffle_ps(d[2 * p], d[2 * p + 1], 0x44), _mm512_shuffle_ps(d[2 * p], d[2 * p + 1], 0xEE));
  return _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xDD));  // l + 1 onto l
}

// quantize_u8's arithmetic; cvtps rounds half to even (the default MXCSR mode), as its 1.5 * 2^23 trick.
inline void store_u8(uint8_t* out, __mmask16 m, __m512 x, __m512 inv, __m512 zp) {
  const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(x, inv), zp), _mm512_setzero_ps()),
                                 _mm512_set1_ps(255.f));
  _mm512_mask_cvtusepi32_storeu_epi8(out, m, _mm512_cvtps_epi32(v));
}

inline __mmask16 first(int64_t n) { return __mmask16(n >= kLanes ? 0xFFFF : (1u << n) - 1); }

// acc[4 * ii + jj] = the lane partial sums of dot(a[ii], b[jj]).
inline void tile(const float* const* a, const float* const* b, int64_t dim, __m512* acc) {
  for (int s = 0; s < kTile * kTile; ++s) acc[s] = _mm512_setzero_ps();
  for (int64_t k = 0; k < dim; k += kLanes) {
    const __mmask16 m = first(dim - k);
    __m512 x[kTile], y[kTile];
    for (int t = 0; t < kTile; ++t)
      x[t] = _mm512_maskz_loadu_ps(m, a[t] + k), y[t] = _mm512_maskz_loadu_ps(m, b[t] + k);
    for (int ii = 0; ii < kTile; ++ii)
      for (int jj = 0; jj < kTile; ++jj) acc[kTile * ii + jj] = _mm512_fmadd_ps(x[ii], y[jj], acc[kTile * ii + jj]);
  }
}
}  // namespace

void f32_dot_interaction_u8_avx512(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out) {
  const __m512 inv = _mm512_set1_ps(1.f / q.scale), zp = _mm512_set1_ps(float(q.zero_point));
  for (int64_t k = 0; k < dim; k += kLanes) {
    const __mmask16 m = first(dim - k);
    store_u8(out + k, m, _mm512_maskz_loadu_ps(m, v[0] + k), inv, zp);
  }
  const int64_t pairs = count * (count - 1) / 2;
  constexpr int64_t kMaxBuffered = 1024;  // pairs of up to 46 vectors per pass (DLRM: 27, 351 pairs)
  alignas(64) float dots[kMaxBuffered];
  // Rows i0 + 1 .. i0 + 4 (row i pairs with columns j < i) against columns j0 .. j0 + 3; rows past
  // the last vector, and pairs with j >= i, are computed on v[0] or in vain and never kept.
  for (int64_t i0 = 0; i0 + 1 < count; i0 += kTile) {
    const float* a[kTile];
    for (int t = 0; t < kTile; ++t) a[t] = i0 + 1 + t < count ? v[i0 + 1 + t] : v[0];
    for (int64_t j0 = 0; j0 <= i0; j0 += kTile) {
      const float* b[kTile];
      for (int t = 0; t < kTile; ++t) b[t] = j0 + t < count ? v[j0 + t] : v[0];
      __m512 acc[kTile * kTile];
      tile(a, b, dim, acc);
      alignas(64) float r[kLanes];
      _mm512_store_ps(r, reduce16(acc));
      for (int ii = 0; ii < kTile; ++ii) {
        const int64_t i = i0 + 1 + ii, row = i * (i - 1) / 2;
        for (int jj = 0; jj < kTile && j0 + jj < i && i < count; ++jj) {
          const int64_t p = row + j0 + jj;
          if (p >= kMaxBuffered) {  // beyond the buffer: quantize as we go
            store_u8(out + dim + p, 1, _mm512_set1_ps(r[kTile * jj + ii]), inv, zp);
            continue;
          }
          dots[p] = r[kTile * jj + ii];
        }
      }
    }
  }
  for (int64_t p = 0; p < std::min(pairs, kMaxBuffered); p += kLanes) {
    const __mmask16 m = first(std::min(pairs, kMaxBuffered) - p);
    store_u8(out + dim + p, m, _mm512_maskz_load_ps(m, dots + p), inv, zp);
  }
}

}  // namespace spruce::kernels::x86
