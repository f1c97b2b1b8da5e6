// The lane-window kernels, s8-spmm-1x1-w-m32-avx512vnni and s8-spmm-1x4-w-m8-avx512vnni
// (LaneWindows format, kernel.hpp): INT8 for a few rows of X and blocks under 4 rows high, whose
// output channels share few input channels. Need AVX512_VBMI besides VNNI.
//
// A panel of 16 output channels, one per vector lane, walks windows of 64 input channels. Each
// lane has its own 4 input channels per chunk: one 64-byte load brings a window of a row of X, one
// vpermb gives every lane its 4 activations, and one vpdpbusd adds them times the lane's 4
// weights. The windows are the outer loop, so a window's row of X is loaded once for all of its
// chunks, whose selectors and weights stay in registers across the rows of X. A lane's sums are its
// channel's, in order: the vector epilogue stores them without a transpose. The rows of X go in
// blocks of up to 8, as many as keep their bytes in 26 KiB of L1 (they are reread for every panel;
// at k = 3072, Zen 4, m = 16 as 8 + 8 rows ran 51 us where 7 + 7 + 2 took 59-73).
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

constexpr int kMaxChunks = 4;  // of one window, held in registers at a time (8 of 32 zmm)

// Panel p's sums for M rows of X (x: the first, ldx bytes apart) into acc[m].
template <int M>
inline void panel(const StripView& w, int64_t p, const uint8_t* x, int64_t ldx, __m512i (&acc)[M]) {
  const int8_t* wv = static_cast<const int8_t*>(w.w);
#pragma GCC unroll 8
  for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
  // C chunks from c, all in the window at x + base.
  auto chunks = [&](auto count, int64_t c, int64_t base) __attribute__((always_inline)) {
    constexpr int C = decltype(count)::value;
    __m512i sel[C], wq[C];
#pragma GCC unroll 4
    for (int i = 0; i < C; ++i) {
      sel[i] = _mm512_loadu_si512(w.sel + (c + i) * 64);
      wq[i] = _mm512_loadu_si512(wv + (c + i) * 64);
    }
    // Opaque to the compiler: the rows' loads do not move out to a loop over windows, where GCC
    // kept all of them (2 per row) alive in stack spills.
    const uint8_t* xw = x + base;
    asm("" : "+r"(xw));
#pragma GCC unroll 8
    for (int m = 0; m < M; ++m) {
      const __m512i row = _mm512_loadu_si512(xw + m * ldx);
#pragma GCC unroll 4
      for (int i = 0; i < C; ++i) acc[m] = _mm512_dpbusd_epi32(acc[m], _mm512_permutexvar_epi8(sel[i], row), wq[i]);
    }
  };
  const int64_t c1 = w.ptr[p + 1];
  for (int64_t c = w.ptr[p]; c < c1;) {
    const int64_t base = w.k[c];
    int64_t end = c + 1;
    while (end < c1 && end - c < kMaxChunks && w.k[end] == base) ++end;
    switch (end - c) {
      case 4: chunks(std::integral_constant<int, 4>{}, c, base); break;
      case 3: chunks(std::integral_constant<int, 3>{}, c, base); break;
      case 2: chunks(std::integral_constant<int, 2>{}, c, base); break;
      default: chunks(std::integral_constant<int, 1>{}, c, base); break;
    }
    c = end;
  }
}

template <int M>
void panels(const StripView& w, const SpmmArgs& a, int64_t m0) {
  const uint8_t* x = static_cast<const uint8_t*>(a.xt) + m0 * a.ldxt;  // Layout::Windows
  for (int64_t p = a.s0; p < a.s1; ++p) {
    __m512i acc[M];
    panel<M>(w, p, x, a.ldxt, acc);
    const int64_t n0 = p * 16;
    const RowEpilogue<true> finish(a, n0, std::min<int64_t>(16, w.rows - n0));
    int m = 0;
    for (; m + 4 <= M; m += 4) {
      const __m512 f[4] = {_mm512_castsi512_ps(acc[m]), _mm512_castsi512_ps(acc[m + 1]),
                           _mm512_castsi512_ps(acc[m + 2]), _mm512_castsi512_ps(acc[m + 3])};
      finish.store4(f, m0 + m);
    }
    for (; m < M; ++m) finish.store(_mm512_castsi512_ps(acc[m]), m0 + m);
  }
}

}  // namespace

void s8_spmm_lane_windows_avx512vnni(const StripView& w, const SpmmArgs& a) {
  const int64_t block = std::clamp<int64_t>((26 << 10) / std::max<int64_t>(a.ldxt, 1), 1, 8);
  for (int64_t m0 = a.m0; m0 < a.m1; m0 += block)
    with_rows_upto<8>(std::min(block, a.m1 - m0), [&](auto rows) { panels<decltype(rows)::value>(w, a, m0); });
}

}  // namespace spruce::kernels::x86
