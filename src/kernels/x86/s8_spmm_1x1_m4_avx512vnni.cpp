// s8-spmm-1x1-m4-avx512vnni: INT8 for m <= 4 on unstructured (1x1) and other narrow blocks that
// scatter nonzeros over a row's quads, where AVX512_VBMI is missing (s8-spmm-1x1-w-m32 otherwise).
//
// At 90% 1x1 a row touches a third of its quads, a quarter full, so gathering each row's quads
// (the row-lane kernel) would fetch four times the activations its weights use. Here a panel of
// 16 output channels walks every quad of input channels (QuadMasks format): one vpexpandd places
// the panel's nonzero weight dwords (a 16-bit row mask, compressed storage) in their rows' lanes,
// and one vpdpbusd per m adds the broadcast activation quad into 16 rows at once. Four panels go
// side by side and share each broadcast. No gather, no index list, and rows stay in order for the
// vector epilogue.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// Sums over every quad into out. Its own accumulators, copied out at the end: updated in place
// in the caller's array, GCC copied each one in and out of a scratch register, and to memory,
// around every vpdpbusd.
template <int P, int M>
inline void accumulate(const uint8_t* x, int64_t ldx, int64_t quads, const uint16_t* const* masks, const int32_t** wd,
                       __m512i (&out)[P][M]) {
  __m512i acc[P][M];
#pragma GCC unroll 4
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) acc[i][m] = _mm512_setzero_si512();
  for (int64_t q = 0; q < quads; ++q) {
    __m512i xb[M], wv[P];
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) {
      int32_t xq;
      std::memcpy(&xq, x + m * ldx + 4 * q, 4);
      xb[m] = _mm512_set1_epi32(xq);
    }
#pragma GCC unroll 4
    for (int i = 0; i < P; ++i) {
      const uint32_t rows = masks[i][q];
      wv[i] = _mm512_maskz_expandloadu_epi32(_cvtu32_mask16(rows), wd[i]);
      wd[i] += _mm_popcnt_u32(rows);
    }
#pragma GCC unroll 4
    for (int i = 0; i < P; ++i)
#pragma GCC unroll 4
      for (int m = 0; m < M; ++m) acc[i][m] = _mm512_dpbusd_epi32(acc[i][m], xb[m], wv[i]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < P; ++i)
#pragma GCC unroll 4
    for (int m = 0; m < M; ++m) out[i][m] = acc[i][m];
}

// P panels from `first`, M rows of X from a.m0.
template <int P, int M>
void panel_group(const StripView& w, const SpmmArgs& a, int64_t first) {
  const uint8_t* x = static_cast<const uint8_t*>(a.xt) + a.m0 * a.ldxt;  // Rows layout
  const int64_t quads = (w.cols + 3) / 4;
  const uint16_t* masks[P];
  const int32_t* wd[P];
  for (int i = 0; i < P; ++i) {
    masks[i] = reinterpret_cast<const uint16_t*>(w.sel) + (first + i) * quads;
    wd[i] = static_cast<const int32_t*>(w.w) + w.wptr[first + i];
  }
  __m512i acc[P][M];
  accumulate<P, M>(x, a.ldxt, quads, masks, wd, acc);
  for (int i = 0; i < P; ++i) {
    const int64_t n0 = (first + i) * 16, rows = std::min<int64_t>(16, w.rows - n0);
    const RowEpilogue<true> finish(a, n0, rows);
    for (int m = 0; m < M; ++m) finish.store(_mm512_castsi512_ps(acc[i][m]), a.m0 + m);
  }
}

template <int M>
void panels(const StripView& w, const SpmmArgs& a) {
  int64_t p = a.s0;
  for (; p + 4 <= a.s1; p += 4) panel_group<4, M>(w, a, p);
  switch (a.s1 - p) {
    case 3: return panel_group<3, M>(w, a, p);
    case 2: return panel_group<2, M>(w, a, p);
    case 1: return panel_group<1, M>(w, a, p);
    default: return;
  }
}

}  // namespace

void s8_spmm_1x1_m4_avx512vnni(const StripView& w, const SpmmArgs& a) {
  with_rows_upto<4>(a.m1 - a.m0, [&](auto rows) { panels<decltype(rows)::value>(w, a); });
}

}  // namespace spruce::kernels::x86
