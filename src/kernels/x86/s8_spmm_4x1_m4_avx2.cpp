// s8-spmm-4x1-m4-avx2: INT8 for m <= 4 (small batches) without AVX-512 VNNI, strips of 4 output
// channels, on the same packed weights as s8-spmm-4x1-avx2.
//
// With so few rows, vectorizing over m wastes most of the vector. Instead one vpmaddwd covers a
// whole group of a strip: its 4 rows x 4 weights, sign-extended to 16 int16, times row m's 4
// activations of the group repeated 4 times. xt is in the M8 layout ([k][4]: a dword of 4 m per
// input channel): the group's 4 dwords are loaded, one vpshufb transposes them to 4 m x 4 k, one
// vpmovzxbw widens them, and one vpermq per m repeats that m's 4 activations. The dword pairs of
// the products are summed when a panel of two strips (8 output channels) is finished: one
// vphaddd and one vpermq per m leave the 8 channels in order for the vector epilogue.
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx2.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// Activations of row m (0..3) repeated in all four qwords: 4 int16 of the group's 4 k.
inline __m256i row_of(__m256i x16, int m) {
  switch (m) {
    case 0: return _mm256_permute4x64_epi64(x16, 0x00);
    case 1: return _mm256_permute4x64_epi64(x16, 0x55);
    case 2: return _mm256_permute4x64_epi64(x16, 0xAA);
    default: return _mm256_permute4x64_epi64(x16, 0xFF);
  }
}

// Strip s's accumulators for M rows of X: out[m] dwords (r, half): row r's products of k0, k1
// (half 0) and k2, k3 (half 1).
template <int M>
inline void strip(const StripView& w, int64_t s, const int32_t* xt, __m256i* out) {
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  // Bytes [k0: m0..m3][k1][k2][k3] -> [m0: k0..k3][m1][m2][m3].
  const __m128i transpose = _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  __m256i acc[M];
  for (auto& v : acc) v = _mm256_setzero_si256();
  for (int64_t j = w.ptr[s]; j < w.ptr[s + 1]; j += 4) {
    const int32_t* k = w.k + j;
    const __m128i xd = _mm_setr_epi32(xt[k[0]], xt[k[1]], xt[k[2]], xt[k[3]]);
    const __m256i x16 = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(xd, transpose));
    const __m256i w16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wv + j * 4)));
    for (int m = 0; m < M; ++m) acc[m] = _mm256_add_epi32(acc[m], _mm256_madd_epi16(w16, row_of(x16, m)));
  }
  for (int m = 0; m < M; ++m) out[m] = acc[m];
}

template <int M>
void panels(const StripView& w, const SpmmArgs& a) {
  const int32_t* xt = static_cast<const int32_t*>(a.xt);  // one dword of 4 m per input channel
  for (int64_t s = a.s0; s < a.s1; s += 2) {
    __m256i acc[2][M];
    strip<M>(w, s, xt, acc[0]);
    if (s + 1 < a.s1)
      strip<M>(w, s + 1, xt, acc[1]);
    else
      for (auto& v : acc[1]) v = _mm256_setzero_si256();
    const int64_t n0 = s * 4, rows = std::min({int64_t(8), w.rows - n0, (a.s1 - s) * 4});
    const RowEpilogue8<true> finish(a, n0, rows);
    for (int m = 0; m < M; ++m) {
      // [A r0, A r1, B r0, B r1 | A r2, A r3, B r2, B r3] -> the 8 channels in order.
      const __m256i sums = _mm256_permute4x64_epi64(_mm256_hadd_epi32(acc[0][m], acc[1][m]), 0xD8);
      finish.store(_mm256_castsi256_ps(sums), a.m0 + m);
    }
  }
}

}  // namespace

void s8_spmm_4x1_m4_avx2(const StripView& w, const SpmmArgs& a) {
  with_rows_upto<4>(a.m1 - a.m0, [&](auto rows) { panels<decltype(rows)::value>(w, a); });
}

}  // namespace spruce::kernels::x86
