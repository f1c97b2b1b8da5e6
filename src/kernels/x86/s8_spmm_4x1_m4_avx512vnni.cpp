// s8-spmm-4x1-m4-avx512vnni: INT8 for m <= 4 (small batches), strips of 4 output channels.
//
// With so few rows, vectorizing over m wastes the vector. Instead each vpdpbusd covers 4 groups
// of a strip at once: lane (g, r) holds row r's 4 weights of group g, which is exactly 64
// contiguous bytes of the strip weights. xt is in the M4 layout ([k][4], one dword per input channel
// holding its 4 m values), so one vpgatherdd fetches the 16 input channels of the 4 groups for all
// m, and one in-lane vpshufb per m picks byte m of each into the group's dword, repeated for the
// 4 rows. Lanes are summed over g at the end of the strip.
#include <immintrin.h>

#include <algorithm>

#include "../epilogue.hpp"
#include "../kernel.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {

void s8_spmm_4x1_m4_avx512vnni(const StripView& w, const SpmmArgs& a) {
  const uint8_t* xt = static_cast<const uint8_t*>(a.xt);
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  const int M = int(std::min<int64_t>(4, a.m1 - a.m0));
  // For m: in every dword, bytes m, 4+m, 8+m, 12+m of its 128-bit lane.
  __m512i pick[4];
  for (int m = 0; m < 4; ++m) {
    const __m128i p =
        _mm_setr_epi8(char(m), char(4 + m), char(8 + m), char(12 + m), char(m), char(4 + m), char(8 + m), char(12 + m),
                      char(m), char(4 + m), char(8 + m), char(12 + m), char(m), char(4 + m), char(8 + m), char(12 + m));
    pick[m] = _mm512_broadcast_i32x4(p);
  }
  for (int64_t s = a.s0; s < a.s1; ++s) {
    __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512()};
    const int64_t j0 = w.ptr[s], j1 = w.ptr[s + 1];
    for (int64_t j = j0; j < j1; j += 16) {
      const int64_t left = std::min<int64_t>(16, j1 - j);  // a multiple of 4
      const __mmask16 km = __mmask16((1u << left) - 1);
      const __m512i idx = _mm512_maskz_loadu_epi32(km, w.k + j);
      const __m512i xg = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), km, idx, xt, 4);
      const __m512i wq = _mm512_maskz_loadu_epi32(km, wv + j * 4);  // 4 groups x [4 rows][4 k]
      for (int m = 0; m < M; ++m) acc[m] = _mm512_dpbusd_epi32(acc[m], _mm512_shuffle_epi8(xg, pick[m]), wq);
    }
    const int64_t n0 = s * 4, rows = std::min<int64_t>(4, w.rows - n0);
    for (int m = 0; m < M; ++m) {
      const __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(acc[m]), _mm512_extracti64x4_epi64(acc[m], 1));
      const __m128i q = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
      alignas(16) int32_t out[4];
      _mm_store_si128(reinterpret_cast<__m128i*>(out), q);
      for (int r = 0; r < rows; ++r)
        store_out(dequantize(out[r], n0 + r, *a.ep), *a.ep, a.y, (a.m0 + m) * a.ldy + n0 + r);
    }
  }
}

}  // namespace spruce::kernels::x86
