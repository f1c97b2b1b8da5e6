// The window kernels, s8-spmm-{4x1,4x4}-w-m{8,4}-avx512vnni (Windows): INT8 for a few rows of X
// and blocks 4 rows high, strips of 4 output channels, without gathers. Need AVX512_VBMI besides
// VNNI. (The registry says up to which m each runs; blocks under 4 rows high have the lane-window
// kernel, s8_spmm_lane_windows_avx512vnni.cpp.)
//
// The Windows format (kernel.hpp) cuts each strip's input channels into chunks of 16 that lie in
// one window of 128 input channels. A row of X stays a row (Layout::Windows), so a window is two
// 64-byte loads, and one vpermi2b picks the chunk's 16 activations out of them, each repeated for
// the 4 rows of the strip: lane (g, r) of a vpdpbusd is group g's 4 activations against row r's 4
// weights, which are the chunk's 64 weight bytes as stored. The gather the M8 kernel pays per 16
// input channels (about 13 cycles on Zen 5) becomes a shuffle of 16 selector bytes and a byte
// permute. A panel of 4 strips is finished together (one transpose-add per m, then the vector
// epilogue: finish_panels_of_4, shared with s8_spmm_4x1_m8_avx512vnni.cpp).
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// Strip s's accumulators for M rows of X: out[m] lane (g, r); a group's 4 rows share its 4
// selector bytes.
template <int M>
inline void strip(const StripView& w, int64_t s, const uint8_t* x, int64_t ldx, __m512i* out) {
  // In 128-bit lane g, every dword takes selector bytes 4g..4g+3 (group g's four positions).
  const __m512i spread =
      _mm512_setr_epi32(0x03020100, 0x03020100, 0x03020100, 0x03020100, 0x07060504, 0x07060504, 0x07060504, 0x07060504,
                        0x0B0A0908, 0x0B0A0908, 0x0B0A0908, 0x0B0A0908, 0x0F0E0D0C, 0x0F0E0D0C, 0x0F0E0D0C, 0x0F0E0D0C);
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  // With up to four rows of X, two sets of accumulators used in turn, so that a chunk need not
  // wait for the last one's vpdpbusd; every loop over them unrolled (an indexed array would live
  // in memory).
  constexpr int U = M <= 4 ? 2 : 1;
  __m512i acc[U][M];
#pragma GCC unroll 2
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) acc[u][m] = _mm512_setzero_si512();
  auto chunk = [&](int64_t c, __m512i(&a)[M]) {
    const __m512i sel = _mm512_shuffle_epi8(
        _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w.sel + c * 16))), spread);
    const __m512i wq = _mm512_loadu_si512(wv + c * 64);
    const uint8_t* xw = x + w.k[c];
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) {
      const __m512i lo = _mm512_loadu_si512(xw + m * ldx), hi = _mm512_loadu_si512(xw + m * ldx + 64);
      a[m] = _mm512_dpbusd_epi32(a[m], _mm512_permutex2var_epi8(lo, sel, hi), wq);
    }
  };
  const int64_t c1 = w.ptr[s + 1];
  int64_t c = w.ptr[s];
  for (; c + U <= c1; c += U)
#pragma GCC unroll 2
    for (int u = 0; u < U; ++u) chunk(c + u, acc[u]);
  if (c < c1) chunk(c, acc[0]);
#pragma GCC unroll 16
  for (int m = 0; m < M; ++m) out[m] = U == 2 ? _mm512_add_epi32(acc[0][m], acc[U - 1][m]) : acc[0][m];
}

template <int M>
void panels(const StripView& w, const SpmmArgs& a) {
  const uint8_t* x = static_cast<const uint8_t*>(a.xt) + a.m0 * a.ldxt;
  finish_panels_of_4<M>(w, a, [&](int64_t s, __m512i* acc) { strip<M>(w, s, x, a.ldxt, acc); });
}

}  // namespace

void s8_spmm_4x1_w_avx512vnni(const StripView& w, const SpmmArgs& a) {
  with_rows_upto<8>(a.m1 - a.m0, [&](auto rows) { panels<decltype(rows)::value>(w, a); });
}

}  // namespace spruce::kernels::x86
