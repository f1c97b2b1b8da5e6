// s8-spmm-4of8-avx512vnni: N:M patterns with at most 4 nonzeros in every aligned 8 input
// channels of a row (2:4, 1:4, 4:8), vectorized over 16 output channels instead of m.
//
// For one row m and one octet of input channels, the 8 activation bytes are broadcast to every
// lane; one vpshufb with the octet's precomputed selection (make_octets) gives each output channel's
// lane the 4 activations its 4 kept weights multiply, and one vpdpbusd does 16 channels x 8
// input channels (4 of them zero): twice the dense work per instruction. X is read row-major as
// given and the accumulators are already a row of Y: no transposes at all.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../epilogue.hpp"
#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

constexpr int kMaxRows = 8;  // m rows per tile: 8 accumulators

// acc[i] += panel (16 channels) x row m0 + i, over all octets.
template <int T>
inline void tile(const uint8_t* x, int64_t ld, const int8_t* w, const uint8_t* sel, int64_t q, __m512i out[T]) {
  __m512i acc[T];
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) acc[i] = _mm512_setzero_si512();
  const uint8_t* rows[T];
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) rows[i] = x + i * ld;
  for (int64_t o = 0; o < q; ++o) {
    const __m512i wv = _mm512_loadu_si512(w + o * 64), sv = _mm512_loadu_si512(sel + o * 64);
    __m512i xs[T];
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) {
      int64_t bytes;
      std::memcpy(&bytes, rows[i] + o * 8, 8);
      xs[i] = _mm512_shuffle_epi8(_mm512_set1_epi64(bytes), sv);
    }
#pragma GCC unroll 8
    for (int i = 0; i < T; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], xs[i], wv);
  }
#pragma GCC unroll 8
  for (int i = 0; i < T; ++i) out[i] = acc[i];
}

// Finishes one row of 16 channels (n0 + l, l < rows) for row m.
inline void finish_row(__m512i acc, int64_t n0, int64_t rows, int64_t m, const SpmmArgs& a) {
  const Epilogue& ep = *a.ep;
  const __mmask16 nm = __mmask16((1u << rows) - 1);
  const __m512i comp = _mm512_maskz_loadu_epi32(nm, ep.comp + n0);
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, comp)), _mm512_maskz_loadu_ps(nm, ep.scale + n0));
  if (ep.bias) f = _mm512_add_ps(f, _mm512_maskz_loadu_ps(nm, ep.bias + n0));
  f = activate(f, ep.act);
  const int64_t at = a.y_at(m, n0);
  if (ep.out == OutType::F32) {
    _mm512_mask_storeu_ps(static_cast<float*>(a.y) + at, nm, f);
    return;
  }
  const bool u8 = ep.out == OutType::U8;
  const __m512 v = _mm512_min_ps(
      _mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(f, _mm512_set1_ps(ep.y_inv_scale)), _mm512_set1_ps(ep.y_zero_point)),
                    _mm512_set1_ps(u8 ? 0.0f : -128.0f)),
      _mm512_set1_ps(u8 ? 255.0f : 127.0f));
  _mm_mask_storeu_epi8(static_cast<uint8_t*>(a.y) + at, nm, _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
}

template <int T>
void rows_upto(int64_t left, const StripView& w, const SpmmArgs& a, int64_t p, int64_t m0) {
  if constexpr (T > 1) {
    if (left < T) return rows_upto<T - 1>(left, w, a, p, m0);
  }
  const int64_t q = w.ptr[p + 1] - w.ptr[p];
  const int8_t* wp = static_cast<const int8_t*>(w.w) + w.ptr[p] * 64;
  __m512i acc[T];
  tile<T>(static_cast<const uint8_t*>(a.xt) + m0 * a.ldxt, a.ldxt, wp, w.sel + w.ptr[p] * 64, q, acc);
  const int64_t n0 = p * 16, rows = std::min<int64_t>(16, w.rows - n0);
  for (int i = 0; i < T; ++i) finish_row(acc[i], n0, rows, m0 + i, a);
}

}  // namespace

// Strip index = panel of 16 output channels.
void s8_spmm_4of8_avx512vnni(const StripView& w, const SpmmArgs& a) {
  for (int64_t p = a.s0; p < a.s1; ++p)
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += kMaxRows) rows_upto<kMaxRows>(a.m1 - m0, w, a, p, m0);
}

}  // namespace spruce::kernels::x86
