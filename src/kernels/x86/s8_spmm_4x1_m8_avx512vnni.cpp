// s8-spmm-4x1-m8-avx512vnni: INT8 for m <= 4 (small batches), strips of 4 output channels, where
// AVX512_VBMI is missing (Cascade Lake): with it, s8-spmm-4x1-w-m8 runs m <= 4 without gathers.
// (Named when it also ran m = 5..8: there its second slab of gathers made it slower than
// s8-spmm-4x1-avx512vnni on Zen 5, 10.9 against 6.1 us at 8x768x768, so the registry caps it at 4.)
//
// With so few rows, vectorizing over m wastes the vector. Instead each vpdpbusd covers 4 groups
// of a strip at once: lane (g, r) holds row r's 4 weights of group g, which is exactly 64
// contiguous bytes of the strip weights. xt is in the M8 layout ([k][4]: one dword per input
// channel, holding its 4 m), so one vpgatherdd fetches the 16 input channels of the 4 groups for
// 4 m, and one in-lane vpshufb per m picks byte m of each into the group's dword, repeated for
// the 4 rows. A panel of 4 strips (16 output channels) is finished together: one transpose-add
// of their accumulators per m sums the groups and leaves the 16 channels in order, for the
// vector epilogue.
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// Strip s's accumulators for M <= 4 rows of X: out[m] lane (g, r). xt rows are 4 bytes.
template <int M>
inline void strip(const StripView& w, int64_t s, const uint8_t* xt, const __m512i pick[4], __m512i* out) {
  static_assert(M >= 1 && M <= 4);
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  // Every loop over acc fully unrolled (pragmas): one that is not indexes the array at run time,
  // and GCC then keeps it in memory, loaded and stored around every vpdpbusd.
  __m512i acc[M];
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
  auto add = [&](__m512i idx, __m512i wq, __mmask16 km) {
    const __m512i xg = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), km, idx, xt, 4);
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[m] = _mm512_dpbusd_epi32(acc[m], _mm512_shuffle_epi8(xg, pick[m]), wq);
  };
  const int64_t j1 = w.ptr[s + 1];
  int64_t j = w.ptr[s];
  for (; j + 16 <= j1; j += 16)  // 4 groups x [4 rows][4 k] of weights
    add(_mm512_loadu_si512(w.k + j), _mm512_loadu_si512(wv + j * 4), __mmask16(0xFFFF));
  if (j < j1) {
    const __mmask16 km = __mmask16((1u << (j1 - j)) - 1);  // j1 - j: a multiple of 4
    add(_mm512_maskz_loadu_epi32(km, w.k + j), _mm512_maskz_loadu_epi32(km, wv + j * 4), km);
  }
#pragma GCC unroll 4
  for (int m = 0; m < M; ++m) out[m] = acc[m];
}

template <int M>
void panels(const StripView& w, const SpmmArgs& a) {
  const uint8_t* xt = static_cast<const uint8_t*>(a.xt);
  // For m (within a slab): in every dword, bytes m, 4+m, 8+m, 12+m of its 128-bit lane.
  __m512i pick[4];
  for (int m = 0; m < 4; ++m) {
    const __m128i p =
        _mm_setr_epi8(char(m), char(4 + m), char(8 + m), char(12 + m), char(m), char(4 + m), char(8 + m), char(12 + m),
                      char(m), char(4 + m), char(8 + m), char(12 + m), char(m), char(4 + m), char(8 + m), char(12 + m));
    pick[m] = _mm512_broadcast_i32x4(p);
  }
  finish_panels_of_4<M>(w, a, [&](int64_t s, __m512i* acc) { strip<M>(w, s, xt, pick, acc); });
}

}  // namespace

void s8_spmm_4x1_m8_avx512vnni(const StripView& w, const SpmmArgs& a) {
  with_rows_upto<4>(a.m1 - a.m0, [&](auto rows) { panels<decltype(rows)::value>(w, a); });
}

}  // namespace spruce::kernels::x86
