// s8-attention-avx512vnni: attention.hpp's INT8 contract with vpdpbusd (AVX512_VNNI), head_size %
// 16 == 0: 64 multiply-adds per instruction where the FP32 kernel does 16. Per (sequence, head),
// in scratch:
//  1. the max |q|, |k| and |v| of the head, hence the three 8-bit scales;
//  2. K in channel quads, transposed: kt[(cq * padded + j) * 4 + e] = k8[j][4 cq + e] (s8), keys
//     past `tokens` zero, their bias -inf; and 128 * sum_c k8[j][c] per key, to take back off;
//  3. V in key quads: vq[(jq * d + c) * 4 + e] = v8[4 jq + e][c], zero past the last key;
//  4. for 4 query rows at a time: q8 + 128 (u8), their scores against 32 keys per step (4 x 2
//     accumulators, one broadcast query quad and two key loads per channel quad), scaled and
//     biased; exp as the FP32 kernel; the weights rounded to u8 and summed;
//  5. out = (weights x V) * (sv / sum), one broadcast weight quad and up to 4 loads of V per key quad.
#include <immintrin.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>

#include "kernels/attention.hpp"
#include "store_avx512.hpp"

namespace spruce::kernels::x86 {
namespace {

constexpr int kQueryRows = 4;

struct Int8Scale {
  float to8 = 0.f, from8 = 0.f;
};

// attention.hpp's scale of one head's [tokens][head_size] block.
Int8Scale int8_scale(const float* x, int64_t ld, const AttentionTask& t) {
  __m512 amax = _mm512_setzero_ps();
  for (int64_t i = 0; i < t.tokens; ++i)
    for (int64_t c = 0; c < t.head_size; c += 16)
      amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_loadu_ps(x + i * ld + c)));
  const float m = _mm512_reduce_max_ps(amax);
  return {m > 1e-30f ? 127.f / m : 0.f, m / 127.f};
}

// 16 floats to int8 values in int32 lanes: clamp(nearbyint(x * to8), -127, 127).
inline __m512i to_int8(const float* x, float to8) {
  const __m512i r = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), _mm512_set1_ps(to8)));
  return _mm512_min_epi32(_mm512_max_epi32(r, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
}

struct Scratch {
  int8_t* kt;      // [head_size / 4][padded][4]
  int32_t* kcomp;  // [padded]: 128 * sum_c k8[j][c]
  float* kb;       // [padded]
  float* p;        // [kQueryRows][padded]: scores, then exp
  uint8_t* w;      // [kQueryRows][padded]: the weights
  int8_t* vq;      // [padded / 4][head_size][4]
  uint8_t* qu;     // [kQueryRows][head_size]: q8 + 128
};

void quantize_keys(const AttentionTask& t, float to8, int64_t padded, const Scratch& s) {
  const int64_t d = t.head_size;
  for (int64_t j = 0; j < padded; ++j) {
    __m512i sum = _mm512_setzero_si512();
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      const __m512i k8 = j < t.tokens ? to_int8(t.k + j * t.ld_k + c0, to8) : _mm512_setzero_si512();
      sum = _mm512_add_epi32(sum, k8);
      alignas(16) int32_t quads[4];  // channel quads c0 / 4 .. c0 / 4 + 3 of key j
      _mm_store_si128(reinterpret_cast<__m128i*>(quads), _mm512_cvtepi32_epi8(k8));
      for (int e = 0; e < 4; ++e) reinterpret_cast<int32_t*>(s.kt)[(c0 / 4 + e) * padded + j] = quads[e];
    }
    s.kcomp[j] = 128 * _mm512_reduce_add_epi32(sum);
  }
}

void quantize_values(const AttentionTask& t, float to8, int64_t padded, const Scratch& s) {
  const int64_t d = t.head_size;
  for (int64_t jq = 0; jq < padded / 4; ++jq)
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      __m128i b[4];  // keys 4 jq + e, channels c0..c0+15, as bytes
      for (int e = 0; e < 4; ++e) {
        const int64_t j = 4 * jq + e;
        b[e] = j < t.tokens ? _mm512_cvtepi32_epi8(to_int8(t.v + j * t.ld_v + c0, to8)) : _mm_setzero_si128();
      }
      const __m128i lo01 = _mm_unpacklo_epi8(b[0], b[1]), hi01 = _mm_unpackhi_epi8(b[0], b[1]);
      const __m128i lo23 = _mm_unpacklo_epi8(b[2], b[3]), hi23 = _mm_unpackhi_epi8(b[2], b[3]);
      int8_t* out = s.vq + (jq * d + c0) * 4;  // channel c's quad at out + 4 (c - c0)
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out), _mm_unpacklo_epi16(lo01, lo23));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 16), _mm_unpackhi_epi16(lo01, lo23));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 32), _mm_unpacklo_epi16(hi01, hi23));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 48), _mm_unpackhi_epi16(hi01, hi23));
    }
}

template <int R, int NV>
void weighted_values(const AttentionTask& t, int64_t i0, const Scratch& s, int64_t padded, const float* f, int64_t c0) {
  const int64_t d = t.head_size;
  // Fully unrolled, or GCC copies every accumulator in and out of another register per step.
  __m512i acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_setzero_si512();
  for (int64_t jq = 0; jq < padded / 4; ++jq) {
    __m512i vv[NV];
#pragma GCC unroll 4
    for (int n = 0; n < NV; ++n) vv[n] = _mm512_loadu_si512(s.vq + (jq * d + c0 + 16 * n) * 4);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const __m512i wq = _mm512_set1_epi32(reinterpret_cast<const int32_t*>(s.w + r * padded)[jq]);
#pragma GCC unroll 4
      for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_dpbusd_epi32(acc[r][n], wq, vv[n]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n)
      _mm512_storeu_ps(t.out + (i0 + r) * t.ld_out + c0 + 16 * n,
                       _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][n]), _mm512_set1_ps(f[r])));
}

template <int R>
void query_rows(const AttentionTask& t, int64_t i0, const Scratch& s, int64_t padded, float q_to8, float score,
                float v_from8) {
  const int64_t d = t.head_size, quads = d / 4;
  for (int r = 0; r < R; ++r)
    for (int64_t c0 = 0; c0 < d; c0 += 16) {
      const __m512i u = _mm512_add_epi32(to_int8(t.q + (i0 + r) * t.ld_q + c0, q_to8), _mm512_set1_epi32(128));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(s.qu + r * d + c0), _mm512_cvtepi32_epi8(u));
    }
  __m512 row_max[R];
  for (int r = 0; r < R; ++r) row_max[r] = _mm512_set1_ps(-FLT_MAX);
  const __m512 scale = _mm512_set1_ps(score);
  const int32_t* kt = reinterpret_cast<const int32_t*>(s.kt);
  const int32_t* qrow[R];
  for (int r = 0; r < R; ++r) qrow[r] = reinterpret_cast<const int32_t*>(s.qu + r * d);
  for (int64_t j0 = 0; j0 < padded; j0 += 32) {
    __m512i acc[R][2];
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      acc[r][0] = _mm512_setzero_si512();
      acc[r][1] = _mm512_setzero_si512();
    }
    const int32_t* kc = kt + j0;
    for (int64_t cq = 0; cq < quads; ++cq, kc += padded) {
      const __m512i k0 = _mm512_loadu_si512(kc), k1 = _mm512_loadu_si512(kc + 16);
#pragma GCC unroll 4
      for (int r = 0; r < R; ++r) {
        const __m512i qq = _mm512_set1_epi32(qrow[r][cq]);
        acc[r][0] = _mm512_dpbusd_epi32(acc[r][0], qq, k0);
        acc[r][1] = _mm512_dpbusd_epi32(acc[r][1], qq, k1);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < 2; ++h) {
        const __m512i dot = _mm512_sub_epi32(acc[r][h], _mm512_loadu_si512(s.kcomp + j0 + 16 * h));
        const __m512 v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), scale, _mm512_loadu_ps(s.kb + j0 + 16 * h));
        _mm512_storeu_ps(s.p + r * padded + j0 + 16 * h, v);
        row_max[r] = _mm512_max_ps(v, row_max[r]);
      }
  }
  float f[R];
  for (int r = 0; r < R; ++r) {
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(row_max[r]));
    __m512i sum = _mm512_setzero_si512();
    exp_row(s.p + r * padded, padded, mx, [&](int64_t j, __m512 e) {
      const __m512i wi = _mm512_cvtps_epi32(_mm512_mul_ps(e, _mm512_set1_ps(255.f)));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(s.w + r * padded + j), _mm512_cvtepi32_epi8(wi));
      sum = _mm512_add_epi32(sum, wi);
    });
    f[r] = v_from8 / float(_mm512_reduce_add_epi32(sum));
  }
  for (int64_t c0 = 0; c0 < d; c0 += 64) {
    switch (std::min<int64_t>(4, (d - c0) / 16)) {
      case 4: weighted_values<R, 4>(t, i0, s, padded, f, c0); break;
      case 3: weighted_values<R, 3>(t, i0, s, padded, f, c0); break;
      case 2: weighted_values<R, 2>(t, i0, s, padded, f, c0); break;
      default: weighted_values<R, 1>(t, i0, s, padded, f, c0); break;
    }
  }
}

}  // namespace

void s8_attention_avx512vnni(const AttentionTask& t) {
  const int64_t padded = attention_padded_keys(t.tokens), d = t.head_size;
  Scratch s;
  s.kt = reinterpret_cast<int8_t*>(t.scratch);
  s.kcomp = reinterpret_cast<int32_t*>(t.scratch + d * padded / 4);
  s.kb = t.scratch + d * padded / 4 + padded;
  s.p = s.kb + padded;
  s.w = reinterpret_cast<uint8_t*>(s.p + kQueryRows * padded);
  s.vq = reinterpret_cast<int8_t*>(s.p + kQueryRows * padded + kQueryRows * padded / 4);
  s.qu = reinterpret_cast<uint8_t*>(s.p + kQueryRows * padded + kQueryRows * padded / 4 + d * padded / 4);
  const Int8Scale q = int8_scale(t.q, t.ld_q, t), k = int8_scale(t.k, t.ld_k, t), v = int8_scale(t.v, t.ld_v, t);
  quantize_keys(t, k.to8, padded, s);
  quantize_values(t, v.to8, padded, s);
  for (int64_t j = 0; j < padded; ++j) s.kb[j] = j >= t.tokens ? -INFINITY : t.key_bias ? t.key_bias[j] : 0.f;
  const float score = (q.from8 * k.from8) * t.scale;
  int64_t i = 0;
  for (; i + kQueryRows <= t.tokens; i += kQueryRows) query_rows<kQueryRows>(t, i, s, padded, q.to8, score, v.from8);
  for (; i < t.tokens; ++i) query_rows<1>(t, i, s, padded, q.to8, score, v.from8);
}

}  // namespace spruce::kernels::x86
