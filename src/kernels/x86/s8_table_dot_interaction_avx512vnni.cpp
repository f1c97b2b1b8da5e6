// s8-table-dot-interaction-u8-avx512vnni: the pairs of a sample's INT8 vectors with vpdpbusd, one
// output pair per lane. The vectors are transposed once per sample into t[k / 4][j] (the 4 bytes
// of vector j at k), so that for row i one vpdpbusd adds 4 k of dot(i, j) for 16 columns j at a
// time: a row of t against a broadcast of row i's 4 bytes. Row i's lanes are then its pairs
// (i, 0..i-1) in output order, with no horizontal sums (rows below 16 leave lanes idle). vpdpbusd
// multiplies unsigned by signed bytes, so t holds q + 128 (q ^ 0x80), and 128 * sum(q_i) comes
// off row i.
#include <immintrin.h>

#include <algorithm>

#include "kernels/interaction.hpp"

namespace spruce::kernels::x86 {
namespace {
constexpr int kLanes = 16, kRows = 4, kChunks = 2;  // rows x column chunks of accumulators

inline __mmask16 first(int64_t n) { return __mmask16(n >= kLanes ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1); }

// The dense vector as s8_quantize_row quantizes it, into q[0..d) (zero past n).
float quantize_dense(const float* x, int64_t n, int64_t d, int8_t* q) {
  __m512 max_abs = _mm512_setzero_ps();
  __mmask16 bad = 0;
  for (int64_t k = 0; k < n; k += kLanes) {
    const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(first(n - k), x + k));
    bad |= _mm512_cmpge_epi32_mask(_mm512_castps_si512(a), _mm512_set1_epi32(0x7F800000));  // inf or NaN
    max_abs = _mm512_max_ps(max_abs, a);
  }
  const float scale = bad ? 0.f : _mm512_reduce_max_ps(max_abs) / 127.f;
  const __m512 s = _mm512_set1_ps(scale);
  for (int64_t k = 0; k < d; k += kLanes) {
    __m512i v = _mm512_setzero_si512();
    if (scale > 0.f && k < n) {
      const __m512 r = _mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(first(n - k), x + k), s),
                                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      v = _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, _mm512_set1_ps(-127.f)), _mm512_set1_ps(127.f)));
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q + k), _mm512_cvtepi32_epi8(v));
  }
  return scale;
}

// out[c] = column c of the 16 x 16 dwords in r[0..16) (r[c] lane l = r[l] lane c, before).
inline void transpose16x16_epi32(__m512i (&r)[16]) {
  __m512i t[16];
  for (int p = 0; p < 8; ++p)
    t[2 * p] = _mm512_unpacklo_epi32(r[2 * p], r[2 * p + 1]),
          t[2 * p + 1] = _mm512_unpackhi_epi32(r[2 * p], r[2 * p + 1]);
  for (int g = 0; g < 4; ++g) {
    r[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]),
          r[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
  }
  for (int h = 0; h < 2; ++h)
    for (int k = 0; k < 4; ++k) {
      t[8 * h + k] = _mm512_shuffle_i32x4(r[8 * h + k], r[8 * h + 4 + k], 0x88);
      t[8 * h + 4 + k] = _mm512_shuffle_i32x4(r[8 * h + k], r[8 * h + 4 + k], 0xDD);
    }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0xDD);
  }
}

// Rows i0 .. i0 + 3 (those below count) against column chunks c0 .. c0 + C - 1, 16 columns each:
// the vpdpbusd sums over all quads, less the row's bias, scaled and quantized into their pairs.
template <int C>
inline void row_group(const int8_t* a, int64_t d, const int32_t* t, int64_t v, int64_t quads, int64_t i0, int64_t count,
                      int64_t c0, const int32_t* bias, const float* sc, __m512 inv, __m512 zp, uint8_t* pairs) {
  __m512i acc[kRows][C];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
    for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_si512();
  const int32_t* ar[kRows];
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) ar[r] = reinterpret_cast<const int32_t*>(a + std::min(i0 + r, count - 1) * d);
  for (int64_t kq = 0; kq < quads; ++kq) {
    __m512i col[C];
#pragma GCC unroll 2
    for (int c = 0; c < C; ++c) col[c] = _mm512_load_si512(t + kq * v + (c0 + c) * kLanes);
#pragma GCC unroll 4
    for (int r = 0; r < kRows; ++r)
#pragma GCC unroll 2
      for (int c = 0; c < C; ++c) acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], col[c], _mm512_set1_epi32(ar[r][kq]));
  }
#pragma GCC unroll 4
  for (int r = 0; r < kRows; ++r) {
    const int64_t i = i0 + r;
    if (i >= count) break;
    const __m512 si = _mm512_set1_ps(sc[i]);
    const __m512i bi = _mm512_set1_epi32(bias[i]);
#pragma GCC unroll 2
    for (int c = 0; c < C; ++c) {
      const int64_t j0 = (c0 + c) * kLanes;
      const __mmask16 m = first(i - j0);
      const __m512i dot = _mm512_sub_epi32(acc[r][c], bi);
      const __m512 x = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_mul_ps(si, _mm512_load_ps(sc + j0)));
      const __m512 y = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(x, inv), zp), _mm512_setzero_ps()),
                                     _mm512_set1_ps(255.f));
      _mm512_mask_cvtusepi32_storeu_epi8(pairs + i * (i - 1) / 2 + j0, m, _mm512_cvtps_epi32(y));
    }
  }
}
}  // namespace

void s8_table_dot_interaction_u8_avx512vnni(const float* dense, const int8_t* const* rows, const float* scales,
                                            int64_t count, int64_t dim, const U8Quant& q, uint8_t* out,
                                            uint8_t* scratch) {
  quantize_u8(dense, dim, q, out);
  if (count < 2) return;
  const int64_t d = (dim + 63) / 64 * 64, v = (count + 15) / 16 * 16, quads = (dim + 3) / 4;
  uint8_t* base = scratch + (64 - reinterpret_cast<uintptr_t>(scratch) % 64) % 64;
  int8_t* qd = reinterpret_cast<int8_t*>(base);
  int8_t* a = reinterpret_cast<int8_t*>(base + d);         // [count][d]: the vectors, 0 past dim
  int32_t* t = reinterpret_cast<int32_t*>(a + count * d);  // [d / 4][v]: quads of vector j, ^ 0x80
  float* sc = reinterpret_cast<float*>(t + (d / 4) * v);   // [v]: scale of vector j
  int32_t* bias = reinterpret_cast<int32_t*>(sc + v);      // [v]: 128 * sum of vector i
  sc[0] = quantize_dense(dense, dim, d, qd);
  for (int64_t j = 1; j < count; ++j) sc[j] = scales[j - 1];
  for (int64_t j = count; j < v; ++j) sc[j] = 0.f;
  const __m512i flip = _mm512_set1_epi8(char(0x80));
  for (int64_t j = 0; j < count; ++j) {
    const int8_t* src = j == 0 ? qd : rows[j - 1];
    for (int64_t k = 0; k < d; k += 64) {
      const __mmask64 m = dim - k >= 64 ? ~__mmask64(0) : dim > k ? (__mmask64(1) << (dim - k)) - 1 : 0;
      _mm512_store_si512(a + j * d + k, _mm512_maskz_loadu_epi8(m, src + k));
    }
  }
  // t from a, 16 vectors x 16 quads at a time (the vectors past count are zero, so 0x80 in t).
  for (int64_t j0 = 0; j0 < v; j0 += kLanes)
    for (int64_t k = 0; k < d; k += 64) {
      __m512i r[16];
      for (int l = 0; l < 16; ++l)
        r[l] =
            _mm512_xor_si512(j0 + l < count ? _mm512_load_si512(a + (j0 + l) * d + k) : _mm512_setzero_si512(), flip);
      transpose16x16_epi32(r);
      for (int q = 0; q < 16; ++q) _mm512_store_si512(t + (k / 4 + q) * v + j0, r[q]);
    }
  const __m512i ones = _mm512_set1_epi8(1);
  for (int64_t i = 1; i < count; ++i) {
    __m512i sum = _mm512_setzero_si512();
    for (int64_t k = 0; k < dim; k += 64) sum = _mm512_dpbusd_epi32(sum, ones, _mm512_load_si512(a + i * d + k));
    bias[i] = 128 * _mm512_reduce_add_epi32(sum);
  }
  const __m512 inv = _mm512_set1_ps(1.f / q.scale), zp = _mm512_set1_ps(float(q.zero_point));
  uint8_t* pairs = out + dim;
  for (int64_t i0 = 1; i0 < count; i0 += kRows) {
    const int64_t chunks = (std::min(i0 + kRows, count) - 2) / kLanes + 1;  // columns j < the group's last row
    for (int64_t c0 = 0; c0 < chunks; c0 += kChunks) {
      if (chunks - c0 >= 2)
        row_group<2>(a, d, t, v, quads, i0, count, c0, bias, sc, inv, zp, pairs);
      else
        row_group<1>(a, d, t, v, quads, i0, count, c0, bias, sc, inv, zp, pairs);
    }
  }
}

}  // namespace spruce::kernels::x86
