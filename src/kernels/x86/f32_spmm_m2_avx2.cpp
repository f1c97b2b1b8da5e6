// f32-spmm-{8,4}x1-m2-avx2: FP32 for m <= 2 (batch 1 and 2) without AVX-512, on the strips of the
// 8x1 and 4x1 FP32 kernels.
//
// A vector over m would be 7/8 empty at m = 1. Instead one ymm holds 8 consecutive weights of a
// strip's list (one position x 8 rows, or two positions x 4 rows: the strip format stores a
// position's rows together) and multiplies them by each position's activation, repeated over its
// rows (one broadcast load, or two and one vinsertf128). With 4 rows, the two halves are summed
// when the strip is finished, and two strips make the 8 output channels of the vector epilogue.
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx2.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// Strip s's sums for M rows of X: out[m] lanes [0, H) (H = 4: the upper half is zero).
template <int H, int M>
inline void strip(const StripView& w, int64_t s, const float* xt, int64_t ld, __m256* out) {
  const float* wv = static_cast<const float*>(w.w);
  const int32_t* k = w.k;
  const int64_t j1 = w.ptr[s + 1];
  int64_t j = w.ptr[s];
  __m256 acc[M];
  for (auto& v : acc) v = _mm256_setzero_ps();
  if constexpr (H == 8) {
    for (; j < j1; ++j) {
      const __m256 wj = _mm256_loadu_ps(wv + j * 8);
      for (int m = 0; m < M; ++m) acc[m] = _mm256_fmadd_ps(wj, _mm256_broadcast_ss(xt + k[j] * ld + m), acc[m]);
    }
  } else {
    for (; j + 2 <= j1; j += 2) {
      const __m256 wj = _mm256_loadu_ps(wv + j * 4);
      for (int m = 0; m < M; ++m) {
        const __m256 x =
            _mm256_set_m128(_mm_broadcast_ss(xt + k[j + 1] * ld + m), _mm_broadcast_ss(xt + k[j] * ld + m));
        acc[m] = _mm256_fmadd_ps(wj, x, acc[m]);
      }
    }
    if (j < j1) {
      const __m256 wj = _mm256_set_m128(_mm_setzero_ps(), _mm_loadu_ps(wv + j * 4));  // upper half zero
      for (int m = 0; m < M; ++m) {
        const __m256 x = _mm256_set_m128(_mm_setzero_ps(), _mm_broadcast_ss(xt + k[j] * ld + m));
        acc[m] = _mm256_fmadd_ps(wj, x, acc[m]);
      }
    }
    for (int m = 0; m < M; ++m)
      acc[m] = _mm256_castps128_ps256(_mm_add_ps(_mm256_castps256_ps128(acc[m]), _mm256_extractf128_ps(acc[m], 1)));
  }
  for (int m = 0; m < M; ++m) out[m] = acc[m];
}

template <int H, int M>
void panels(const StripView& w, const SpmmArgs& a) {
  constexpr int P = 8 / H;  // strips per panel of 8 output channels
  const float* xt = static_cast<const float*>(a.xt);
  for (int64_t s = a.s0; s < a.s1; s += P) {
    __m256 acc[P][M];
    for (int t = 0; t < P; ++t) {
      if (s + t < a.s1)
        strip<H, M>(w, s + t, xt, a.ldxt, acc[t]);
      else
        for (auto& v : acc[t]) v = _mm256_setzero_ps();
    }
    const int64_t n0 = s * H, rows = std::min({int64_t(8), w.rows - n0, (a.s1 - s) * H});
    const RowEpilogue8<false> finish(a, n0, rows);
    for (int m = 0; m < M; ++m) {
      __m256 f = acc[0][m];
      if constexpr (P == 2) f = _mm256_insertf128_ps(f, _mm256_castps256_ps128(acc[1][m]), 1);
      finish.store(f, a.m0 + m);
    }
  }
}

}  // namespace

template <int H>
void f32_spmm_m2_avx2(const StripView& w, const SpmmArgs& a) {
  with_rows_upto<2>(a.m1 - a.m0, [&](auto rows) { panels<H, decltype(rows)::value>(w, a); });
}

template void f32_spmm_m2_avx2<4>(const StripView&, const SpmmArgs&);
template void f32_spmm_m2_avx2<8>(const StripView&, const SpmmArgs&);

}  // namespace spruce::kernels::x86
