// The vector attention kernel, written once over a math policy X (X::W floats per vector) and
// compiled once per ISA (f32_attention_avx2.cpp, f32_attention_avx512.cpp).
// Per (sequence, head), all in L1/L2:
//  1. K transposed into scratch ([head_size][keys], W x W blocks through registers, keys padded
//     to 32 with zero keys whose bias is -inf: weight 0 even when every real key is masked), so
//     that one vector load is W keys of one channel;
//  2. for 4 query rows at a time: their scores against 2W keys per step (4 x 2 accumulators,
//     one broadcast query element and two key loads per channel), scaled, biased, and their
//     row maxima;
//  3. exp(s - max) (gelu.hpp's exp, four vectors at a time; below -87 exactly 0) and the row sums;
//  4. out = (probabilities x V) / sum, V read in place, up to 4W channels per pass.
// Include only from files compiled with the policy's ISA flags.
#pragma once
#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/gelu.hpp"
#include "kernels/attention.hpp"
#include "math4.hpp"

namespace spruce::kernels::x86 {
namespace {  // internal linkage: each ISA's file has its own copy

// Query rows per pass: 8 with AVX-512's 32 registers (16 accumulators in the scores and in P x V;
// with 8, FMA latency left the two FMA ports idle a third of the time: 21.7 -> 17 us a head of
// 128 x 32), 4 with AVX2's 16.
template <typename X>
constexpr int kQueryRows = X::W == 16 ? 8 : 4;
constexpr int kKeyVectors = 2;  // key vectors per step of the scores

template <typename X, int R, int NV>
void weighted_values(const AttentionTask& t, int64_t i0, const float* p, int64_t padded, const float* inv, int64_t c0) {
  using V = typename X::V;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n) acc[r][n] = X::zero();
  for (int64_t j = 0; j < t.tokens; ++j) {
    V vv[NV];
    for (int n = 0; n < NV; ++n) vv[n] = X::load(t.v + j * t.ld_v + c0 + n * X::W);
    for (int r = 0; r < R; ++r) {
      const V pr = X::set(p[r * padded + j]);
      for (int n = 0; n < NV; ++n) acc[r][n] = X::fma(pr, vv[n], acc[r][n]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int n = 0; n < NV; ++n)
      X::store(t.out + (i0 + r) * t.ld_out + c0 + n * X::W, X::mul(acc[r][n], X::set(inv[r])));
}

// Rows [i0, i0 + R) of the output.
template <typename X, int R>
void query_rows(const AttentionTask& t, int64_t i0, const float* kt, const float* kb, float* p, int64_t padded) {
  using V = typename X::V;
  constexpr int J = kKeyVectors, step = J * X::W;
  V row_max[R];
  for (int r = 0; r < R; ++r) row_max[r] = X::set(-FLT_MAX);
  const V scale = X::set(t.scale);
  for (int64_t j0 = 0; j0 < padded; j0 += step) {
    V acc[R][J];
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) acc[r][j] = X::zero();
    for (int64_t c = 0; c < t.head_size; ++c) {
      V key[J];
      for (int j = 0; j < J; ++j) key[j] = X::load(kt + c * padded + j0 + j * X::W);
      for (int r = 0; r < R; ++r) {
        const V qc = X::set(t.q[(i0 + r) * t.ld_q + c]);
        for (int j = 0; j < J; ++j) acc[r][j] = X::fma(qc, key[j], acc[r][j]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int j = 0; j < J; ++j) {
        const V s = X::fma(acc[r][j], scale, X::load(kb + j0 + j * X::W));
        X::store(p + r * padded + j0 + j * X::W, s);
        row_max[r] = X::max(s, row_max[r]);
      }
  }
  float inv[R];
  for (int r = 0; r < R; ++r) {
    const V mx = X::set(X::hmax(row_max[r]));
    V sum = X::zero();
    float* pr = p + r * padded;
    int64_t j = 0;
    for (; j + 4 * X::W <= padded; j += 4 * X::W) {  // four vectors' exp chains interleaved
      typename Math4<X>::V y;
      for (int i = 0; i < 4; ++i) y.v[i] = X::sub(X::load(pr + j + i * X::W), mx);
      const auto e = gelu_detail::exp_from<Math4<X>>(y);
      for (int i = 0; i < 4; ++i) {
        const V ei = X::keep_ge(e.v[i], y.v[i], -87.f);
        X::store(pr + j + i * X::W, ei);
        sum = X::add(sum, ei);
      }
    }
    for (; j < padded; j += X::W) {
      const V y = X::sub(X::load(pr + j), mx);
      const V e = X::keep_ge(gelu_detail::exp_from<X>(y), y, -87.f);
      X::store(pr + j, e);
      sum = X::add(sum, e);
    }
    inv[r] = 1.f / X::hsum(sum);
  }
  // Up to 4 vectors of channels per pass; rows in pairs when 4 x 4 accumulators would not fit
  // in 16 registers (AVX2).
  constexpr int PR = X::W == 8 ? std::min(R, 2) : R;
  for (int r0 = 0; r0 < R; r0 += PR)
    for (int64_t c0 = 0; c0 < t.head_size; c0 += 4 * X::W) {
      const float* pp = p + r0 * padded;
      switch (std::min<int64_t>(4, (t.head_size - c0) / X::W)) {
        case 4: weighted_values<X, PR, 4>(t, i0 + r0, pp, padded, inv + r0, c0); break;
        case 3: weighted_values<X, PR, 3>(t, i0 + r0, pp, padded, inv + r0, c0); break;
        case 2: weighted_values<X, PR, 2>(t, i0 + r0, pp, padded, inv + r0, c0); break;
        default: weighted_values<X, PR, 1>(t, i0 + r0, pp, padded, inv + r0, c0); break;
      }
    }
}

// K into kt[c * padded + j], X::W keys x X::W channels per block through registers; keys from
// `tokens` to `padded` are zero.
template <typename X>
void transpose_keys(const AttentionTask& t, float* kt, int64_t padded) {
  using V = typename X::V;
  for (int64_t j0 = 0; j0 < padded; j0 += X::W) {
    const int64_t keys = std::clamp<int64_t>(t.tokens - j0, 0, X::W);
    for (int64_t c0 = 0; c0 < t.head_size; c0 += X::W) {
      V r[X::W];
      for (int i = 0; i < X::W; ++i) r[i] = i < keys ? X::load(t.k + (j0 + i) * t.ld_k + c0) : X::zero();
      X::transpose(r);
      for (int i = 0; i < X::W; ++i) X::store(kt + (c0 + i) * padded + j0, r[i]);
    }
  }
}

// Needs head_size % X::W == 0 (the registry checks).
template <typename X>
void attention(const AttentionTask& t) {
  const int64_t padded = attention_padded_keys(t.tokens), d = t.head_size;
  float* kt = t.scratch;        // [d][padded]
  float* kb = kt + d * padded;  // [padded]
  float* p = kb + padded;       // [kQueryRows<X>][padded]
  transpose_keys<X>(t, kt, padded);
  for (int64_t j = 0; j < padded; ++j) kb[j] = j >= t.tokens ? -INFINITY : t.key_bias ? t.key_bias[j] : 0.f;
  int64_t i = 0;
  constexpr int R = kQueryRows<X>;
  static_assert(1 + R <= kAttentionScratchRows, "the scores of R rows and the key bias fit the scratch");
  for (; i + R <= t.tokens; i += R) query_rows<X, R>(t, i, kt, kb, p, padded);
  for (; i < t.tokens; ++i) query_rows<X, 1>(t, i, kt, kb, p, padded);
}

}  // namespace
}  // namespace spruce::kernels::x86
