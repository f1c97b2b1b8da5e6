// bf16-attention-avx512: attention.hpp's BF16 contract with vdpbf16ps (AVX512_BF16), head_size %
// 32 == 0: two multiply-adds per lane and instruction where the FP32 kernel does one. Per
// (sequence, head), in scratch:
//  1. K as BF16 channel pairs, transposed: kt[p * padded + j] is the dword (k[j][2p], k[j][2p+1]),
//     16 keys x 16 pairs per block through registers; keys past `tokens` are zero, their bias -inf;
//  2. V as BF16 key pairs: vp[p * d + c] is the dword (v[2p][c], v[2p+1][c]), zero past the last key;
//  3. for 4 query rows at a time: their BF16 channel pairs, their scores against 32 keys per step
//     (4 x 2 accumulators, one broadcast query pair and two key loads per channel pair), scaled
//     and biased; exp as the FP32 kernel (exp_row, store_avx512.hpp); the weights rounded to BF16;
//  4. out = (weights x V) / sum, one broadcast weight pair and up to 4 loads of V per key pair.
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

// 32 floats to 32 BF16 in their order: dword i holds elements 2i (low half) and 2i + 1.
inline __m512i bf16_pairs(__m512 first16, __m512 next16) {
  return reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(next16, first16));
}
inline __m512 dot_pairs(__m512 acc, __m512i a, __m512i b) {
  return _mm512_dpbf16_ps(acc, reinterpret_cast<__m512bh>(a), reinterpret_cast<__m512bh>(b));
}

void keys_to_pairs(const AttentionTask& t, int64_t padded, uint32_t* kt) {
  for (int64_t j0 = 0; j0 < padded; j0 += 16) {
    const int64_t keys = std::clamp<int64_t>(t.tokens - j0, 0, 16);
    for (int64_t c0 = 0; c0 < t.head_size; c0 += 32) {
      __m512 r[16];
      for (int i = 0; i < 16; ++i) {
        const float* k = t.k + (j0 + i) * t.ld_k + c0;
        r[i] = i < keys ? _mm512_castsi512_ps(bf16_pairs(_mm512_loadu_ps(k), _mm512_loadu_ps(k + 16)))
                        : _mm512_setzero_ps();
      }
      transpose16x16(r);  // r[p]: channel pair c0 / 2 + p of keys j0..j0+15
      for (int p = 0; p < 16; ++p) _mm512_storeu_ps(reinterpret_cast<float*>(kt + (c0 / 2 + p) * padded + j0), r[p]);
    }
  }
}

void values_to_pairs(const AttentionTask& t, uint32_t* vp) {
  alignas(64) static constexpr uint16_t kInterleave[32] = {0,  16, 1,  17, 2,  18, 3,  19, 4,  20, 5,
                                                           21, 6,  22, 7,  23, 8,  24, 9,  25, 10, 26,
                                                           11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
  const __m512i interleave = _mm512_load_si512(kInterleave);
  for (int64_t p = 0; 2 * p < t.tokens; ++p) {
    const float* v = t.v + 2 * p * t.ld_v;
    const bool last_alone = 2 * p + 1 == t.tokens;
    for (int64_t c0 = 0; c0 < t.head_size; c0 += 16) {
      const __m512 even = _mm512_loadu_ps(v + c0);
      const __m512 odd = last_alone ? _mm512_setzero_ps() : _mm512_loadu_ps(v + t.ld_v + c0);
      _mm512_storeu_si512(vp + p * t.head_size + c0, _mm512_permutexvar_epi16(interleave, bf16_pairs(even, odd)));
    }
  }
}

template <int R, int NV>
void weighted_values(const AttentionTask& t, int64_t i0, const uint16_t* w, int64_t padded, const uint32_t* vp,
                     const float* inv, int64_t c0) {
  __m512 acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n) acc[r][n] = _mm512_setzero_ps();
  const int64_t pairs = (t.tokens + 1) / 2;
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i vv[NV];
    for (int n = 0; n < NV; ++n) vv[n] = _mm512_loadu_si512(vp + p * t.head_size + c0 + 16 * n);
    for (int r = 0; r < R; ++r) {
      const __m512i wp = _mm512_set1_epi32(int32_t(reinterpret_cast<const uint32_t*>(w + r * padded)[p]));
      for (int n = 0; n < NV; ++n) acc[r][n] = dot_pairs(acc[r][n], wp, vv[n]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n)
      _mm512_storeu_ps(t.out + (i0 + r) * t.ld_out + c0 + 16 * n, _mm512_mul_ps(acc[r][n], _mm512_set1_ps(inv[r])));
}

struct Scratch {
  uint32_t* kt;  // [head_size / 2][padded]
  float* kb;     // [padded]
  float* p;      // [kQueryRows][padded], FP32 scores, then weights
  uint16_t* w;   // [kQueryRows][padded], the weights in BF16
  uint32_t* vp;  // [(tokens + 1) / 2][head_size]
  uint32_t* qp;  // [kQueryRows][head_size / 2]
};

template <int R>
void query_rows(const AttentionTask& t, int64_t i0, const Scratch& s, int64_t padded) {
  const int64_t pairs = t.head_size / 2;
  for (int r = 0; r < R; ++r)
    for (int64_t c0 = 0; c0 < t.head_size; c0 += 32) {
      const float* q = t.q + (i0 + r) * t.ld_q + c0;
      _mm512_storeu_si512(s.qp + r * pairs + c0 / 2, bf16_pairs(_mm512_loadu_ps(q), _mm512_loadu_ps(q + 16)));
    }
  __m512 row_max[R];
  for (int r = 0; r < R; ++r) row_max[r] = _mm512_set1_ps(-FLT_MAX);
  const __m512 scale = _mm512_set1_ps(t.scale);
  for (int64_t j0 = 0; j0 < padded; j0 += 32) {
    __m512 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t c = 0; c < pairs; ++c) {
      const __m512i k0 = _mm512_loadu_si512(s.kt + c * padded + j0),
                    k1 = _mm512_loadu_si512(s.kt + c * padded + j0 + 16);
      for (int r = 0; r < R; ++r) {
        const __m512i qc = _mm512_set1_epi32(int32_t(s.qp[r * pairs + c]));
        acc[r][0] = dot_pairs(acc[r][0], qc, k0);
        acc[r][1] = dot_pairs(acc[r][1], qc, k1);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int h = 0; h < 2; ++h) {
        const __m512 v = _mm512_fmadd_ps(acc[r][h], scale, _mm512_loadu_ps(s.kb + j0 + 16 * h));
        _mm512_storeu_ps(s.p + r * padded + j0 + 16 * h, v);
        row_max[r] = _mm512_max_ps(v, row_max[r]);
      }
  }
  float inv[R];
  for (int r = 0; r < R; ++r) {
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(row_max[r]));
    __m512 sum = _mm512_setzero_ps();
    float* pr = s.p + r * padded;
    exp_row(pr, padded, mx, [&](int64_t j, __m512 e) {
      _mm512_storeu_ps(pr + j, e);
      sum = _mm512_add_ps(sum, e);
    });
    inv[r] = 1.f / _mm512_reduce_add_ps(sum);
    for (int64_t j = 0; j < padded; j += 32)
      _mm512_storeu_si512(s.w + r * padded + j, bf16_pairs(_mm512_loadu_ps(pr + j), _mm512_loadu_ps(pr + j + 16)));
  }
  for (int64_t c0 = 0; c0 < t.head_size; c0 += 64) {
    if (t.head_size - c0 >= 64)
      weighted_values<R, 4>(t, i0, s.w, padded, s.vp, inv, c0);
    else
      weighted_values<R, 2>(t, i0, s.w, padded, s.vp, inv, c0);
  }
}

}  // namespace

void bf16_attention_avx512(const AttentionTask& t) {
  const int64_t padded = attention_padded_keys(t.tokens), d = t.head_size;
  Scratch s;
  s.kt = reinterpret_cast<uint32_t*>(t.scratch);
  s.kb = t.scratch + d / 2 * padded;
  s.p = s.kb + padded;
  s.w = reinterpret_cast<uint16_t*>(s.p + kQueryRows * padded);
  s.vp = reinterpret_cast<uint32_t*>(s.p + kQueryRows * padded + kQueryRows * padded / 2);
  s.qp = s.vp + (t.tokens + 1) / 2 * d;
  keys_to_pairs(t, padded, s.kt);
  values_to_pairs(t, s.vp);
  for (int64_t j = 0; j < padded; ++j) s.kb[j] = j >= t.tokens ? -INFINITY : t.key_bias ? t.key_bias[j] : 0.f;
  int64_t i = 0;
  for (; i + kQueryRows <= t.tokens; i += kQueryRows) query_rows<kQueryRows>(t, i, s, padded);
  for (; i < t.tokens; ++i) query_rows<1>(t, i, s, padded);
}

}  // namespace spruce::kernels::x86
