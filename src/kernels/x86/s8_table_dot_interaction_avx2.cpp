// s8-table-dot-interaction-u8-avx2: the AVX-512 VNNI kernel's scheme on 8 lanes without VNNI.
// The vectors are widened to s16 and transposed into t[k / 2][j] (two s16 of vector j), and
// vpmaddwd adds 2 k of dot(i, j) for 8 columns j at a time: exact, as s16 x s16 pairs cannot
// overflow their int32 sum. Row i's lanes are its pairs (i, 0..i-1) in output order.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/interaction.hpp"

namespace spruce::kernels::x86 {
namespace {
constexpr int kLanes = 8, kRows = 4, kChunks = 2;

template <int C>
inline void accumulate(const int16_t* a, int64_t d, const int32_t* t, int64_t v, int64_t pairs, int64_t i0, int rows,
                       int64_t c0, __m256i (&acc)[kRows][kChunks]) {
  for (auto& r : acc)
    for (auto& x : r) x = _mm256_setzero_si256();
  const int32_t* ar[kRows];
  for (int r = 0; r < kRows; ++r)
    ar[r] = reinterpret_cast<const int32_t*>(a + std::min<int64_t>(i0 + r, i0 + rows - 1) * d);
  for (int64_t kp = 0; kp < pairs; ++kp) {
    __m256i col[C];
    for (int c = 0; c < C; ++c)
      col[c] = _mm256_load_si256(reinterpret_cast<const __m256i*>(t + kp * v + (c0 + c) * kLanes));
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r) {
      const __m256i ab = _mm256_set1_epi32(ar[r][kp]);
      for (int c = 0; c < C; ++c) acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(ab, col[c]));
    }
  }
}
}  // namespace

void s8_table_dot_interaction_u8_avx2(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                      int64_t dim, const U8Quant& q, uint8_t* out, uint8_t* scratch) {
  quantize_u8(dense, dim, q, out);
  if (count < 2) return;
  const int64_t d = (dim + 63) / 64 * 64, v = (count + 15) / 16 * 16, pairs = (dim + 1) / 2;
  uint8_t* base = scratch + (64 - reinterpret_cast<uintptr_t>(scratch) % 64) % 64;
  int8_t* qd = reinterpret_cast<int8_t*>(base);
  int16_t* a = reinterpret_cast<int16_t*>(base + d);       // [count][d]: the vectors in s16, 0 past dim
  int32_t* t = reinterpret_cast<int32_t*>(a + count * d);  // [d / 2][v]: s16 pairs of vector j
  float* sc = reinterpret_cast<float*>(t + (d / 2) * v);   // [v]: scale of vector j
  sc[0] = s8_quantize_row(dense, dim, qd);
  for (int64_t j = 1; j < count; ++j) sc[j] = scales[j - 1];
  for (int64_t j = count; j < v; ++j) sc[j] = 0.f;
  for (int64_t j = 0; j < count; ++j) {
    const int8_t* src = j == 0 ? qd : rows[j - 1];
    for (int64_t k = 0; k < d; k += 16) {
      alignas(16) int8_t part[16] = {};
      if (k < dim) std::memcpy(part, src + k, size_t(std::min<int64_t>(16, dim - k)));
      const __m128i b = _mm_load_si128(reinterpret_cast<const __m128i*>(part));
      _mm256_store_si256(reinterpret_cast<__m256i*>(a + j * d + k), _mm256_cvtepi8_epi16(b));
    }
  }
  for (int64_t kp = 0; kp < pairs; ++kp) {
    int32_t* tr = t + kp * v;
    for (int64_t j = 0; j < count; ++j) std::memcpy(tr + j, a + j * d + 2 * kp, 4);
    for (int64_t j = count; j < v; ++j) tr[j] = 0;
  }
  const __m256 inv = _mm256_set1_ps(1.f / q.scale), zp = _mm256_set1_ps(float(q.zero_point));
  __m256i acc[kRows][kChunks];
  for (int64_t i0 = 1; i0 < count; i0 += kRows) {
    const int rows_here = int(std::min<int64_t>(kRows, count - i0));
    const int64_t chunks = (i0 + rows_here - 2) / kLanes + 1;  // columns j < i0 + rows_here - 1
    for (int64_t c0 = 0; c0 < chunks; c0 += kChunks) {
      const int cn = int(std::min<int64_t>(kChunks, chunks - c0));
      if (cn == 2)
        accumulate<2>(a, d, t, v, pairs, i0, rows_here, c0, acc);
      else
        accumulate<1>(a, d, t, v, pairs, i0, rows_here, c0, acc);
      for (int r = 0; r < rows_here; ++r) {
        const int64_t i = i0 + r;
        const __m256 si = _mm256_set1_ps(sc[i]);
        for (int c = 0; c < cn; ++c) {
          const int64_t j0 = (c0 + c) * kLanes, n = std::min<int64_t>(kLanes, i - j0);
          if (n <= 0) continue;
          const __m256 x = _mm256_mul_ps(_mm256_cvtepi32_ps(acc[r][c]), _mm256_mul_ps(si, _mm256_load_ps(sc + j0)));
          const __m256 y = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(x, inv), zp), _mm256_setzero_ps()),
                                         _mm256_set1_ps(255.f));
          const __m256i w = _mm256_cvtps_epi32(y);  // 0..255: pack to bytes without saturation effects
          const __m128i w16 = _mm_packus_epi32(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
          alignas(16) uint8_t bytes[16];
          _mm_store_si128(reinterpret_cast<__m128i*>(bytes), _mm_packus_epi16(w16, w16));
          std::memcpy(out + dim + i * (i - 1) / 2 + j0, bytes, size_t(n));
        }
      }
    }
  }
}

}  // namespace spruce::kernels::x86
