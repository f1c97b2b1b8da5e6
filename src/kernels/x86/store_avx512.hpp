// AVX-512 epilogue for a finished tile of accumulators: bias, activation, (de/re)quantization and
// the transposed store into Y[m][n]. Include only from files compiled with the AVX-512 flags.
// Rows of 16 output channels go through registers, GELU included (core/gelu.hpp, four rows'
// chains interleaved: math4.hpp); m tails through the scalar epilogue, which performs the same
// operations in the same order.
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../epilogue.hpp"
#include "core/gelu.hpp"
#include "math4.hpp"

namespace spruce::kernels::x86 {
namespace {  // internal linkage: only ever compiled with AVX-512 flags, never shared with baseline code

inline void transpose16x16(__m512 r[16]);

// gelu.hpp's arithmetic on 16 floats, as the scalar epilogue does it on one.
struct Avx512Math {
  using V = __m512;
  static V set(float c) { return _mm512_set1_ps(c); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V div(V a, V b) { return _mm512_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm512_min_ps(a, b); }
  static V max(V a, V b) { return _mm512_max_ps(a, b); }
  static V round(V a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale(V a, V n) { return _mm512_scalef_ps(a, n); }
  // For the attention kernel (attention_impl.hpp).
  static constexpr int W = 16;
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V a) { _mm512_storeu_ps(p, a); }
  static V zero() { return _mm512_setzero_ps(); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V keep_ge(V a, V y, float bound) {  // a where y >= bound, else +0
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, _mm512_set1_ps(bound), _CMP_GE_OQ), a);
  }
  static float hmax(V a) { return _mm512_reduce_max_ps(a); }
  static float hsum(V a) { return _mm512_reduce_add_ps(a); }
  static void transpose(V r[W]) { transpose16x16(r); }  // afterwards r[j] holds old column j
};

// Four vectors through gelu.hpp together (math4.hpp).
using Avx512Math4 = Math4<Avx512Math>;

// The softmax's numerators over one row of scores p[0, padded) (padded % 32 == 0): e = exp(p - mx),
// exactly 0 where p - mx < -87, four vectors' exp chains at a time; each(j, e) receives the 16 at j.
template <typename Each>
inline void exp_row(const float* p, int64_t padded, __m512 mx, Each&& each) {
  for (int64_t j = 0; j < padded; j += 64) {
    const int nv = j + 64 <= padded ? 4 : 2;
    Avx512Math4::V y;
    for (int i = 0; i < 4; ++i) y.v[i] = i < nv ? _mm512_sub_ps(_mm512_loadu_ps(p + j + 16 * i), mx) : mx;
    const auto e = gelu_detail::exp_from<Avx512Math4>(y);
    for (int i = 0; i < nv; ++i) each(j + 16 * i, Avx512Math::keep_ge(e.v[i], y.v[i], -87.f));
  }
}

inline __m512 activate(__m512 f, Activation act) {
  switch (act) {
    case Activation::ReLU: return _mm512_max_ps(f, _mm512_setzero_ps());
    case Activation::GELU: return gelu_detail::gelu_erf<Avx512Math>(f);
    default: return f;
  }
}

// In-register 16x16 transpose of 32-bit elements: afterwards r[j] holds old column j.
inline void transpose16x16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }  // r[4i+j], 128-bit lane L: rows 4i..4i+3 of column 4L+j
  for (int j = 0; j < 4; ++j) {
    const __m512 ab_lo = _mm512_shuffle_f32x4(r[j], r[4 + j], 0x44),
                 cd_lo = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0x44);
    const __m512 ab_hi = _mm512_shuffle_f32x4(r[j], r[4 + j], 0xEE),
                 cd_hi = _mm512_shuffle_f32x4(r[8 + j], r[12 + j], 0xEE);
    t[j] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0x88);
    t[4 + j] = _mm512_shuffle_f32x4(ab_lo, cd_lo, 0xDD);
    t[8 + j] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0x88);
    t[12 + j] = _mm512_shuffle_f32x4(ab_hi, cd_hi, 0xDD);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// The vector epilogue of 16 consecutive output channels n0..n0+rows-1 (rows <= 16): bias,
// activation, (de/re)quantization and the (masked) store of one row of Y.
template <bool S32>
struct RowEpilogue {
  const SpmmArgs& a;
  const Epilogue& ep;
  int64_t n0, rows;
  __mmask16 nm;
  __m512 bias, scale, lo, hi, inv, zp;
  __m512i comp;
  RowEpilogue(const SpmmArgs& args, int64_t n0_, int64_t rows_) : a(args), ep(*args.ep), n0(n0_), rows(rows_) {
    nm = __mmask16((1u << rows) - 1);
    bias = ep.bias ? _mm512_maskz_loadu_ps(nm, ep.bias + n0) : _mm512_setzero_ps();
    scale = bias;
    comp = _mm512_setzero_si512();
    if constexpr (S32) {
      scale = _mm512_maskz_loadu_ps(nm, ep.scale + n0);
      comp = _mm512_maskz_loadu_epi32(nm, ep.comp + n0);
    }
    const bool u8 = ep.out == OutType::U8;
    lo = _mm512_set1_ps(u8 ? 0.0f : -128.0f);
    hi = _mm512_set1_ps(u8 ? 255.0f : 127.0f);
    inv = _mm512_set1_ps(ep.y_inv_scale);
    zp = _mm512_set1_ps(ep.y_zero_point);
  }
  // f: the accumulators of row m (int32 bits when S32), stored to Y[m][n0..].
  void store(__m512 f, int64_t m) const { put(activate(dequantize(f), ep.act), m); }
  // Four rows m0..m0+3 at once: GELU four vectors at a time (Avx512Math4), the same bits as store().
  void store4(const __m512 f[4], int64_t m0) const {
    Avx512Math4::V x{{dequantize(f[0]), dequantize(f[1]), dequantize(f[2]), dequantize(f[3])}};
    if (ep.act == Activation::GELU)
      x = gelu_detail::gelu_erf<Avx512Math4>(x);
    else
      for (auto& v : x.v) v = activate(v, ep.act);
    for (int i = 0; i < 4; ++i) put(x.v[i], m0 + i);
  }
  // Accumulators to f32: scale and zero-point compensation (S32), then the bias.
  __m512 dequantize(__m512 f) const {
    if constexpr (S32) f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_castps_si512(f), comp)), scale);
    if (ep.bias) f = _mm512_add_ps(f, bias);
    return f;
  }
  // An activated row to Y[m][n0..]: f32, or requantized.
  void put(__m512 f, int64_t m) const {
    const int64_t at = a.y_at(m, n0);
    if (ep.out == OutType::F32) {
      if (rows == 16)
        _mm512_storeu_ps(static_cast<float*>(a.y) + at, f);
      else
        _mm512_mask_storeu_ps(static_cast<float*>(a.y) + at, nm, f);
    } else {
      const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(f, inv), zp), lo), hi);
      const __m128i b = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));  // in range: truncation is exact
      if (rows == 16)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(static_cast<uint8_t*>(a.y) + at), b);
      else
        _mm_mask_storeu_epi8(static_cast<uint8_t*>(a.y) + at, nm, b);
    }
  }
};

// Lane block t (4 dwords) of the result = the sum of a_t's four 128-bit lane blocks: four
// horizontal sums, left side by side in order, in 6 shuffles and 3 adds.
inline __m512i sum_lane_blocks(__m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  // s01 = [a0.0 + a0.2, a0.1 + a0.3, a1.0 + a1.2, a1.1 + a1.3], s23 likewise.
  const __m512i s01 = _mm512_add_epi32(_mm512_shuffle_i32x4(a0, a1, 0x44), _mm512_shuffle_i32x4(a0, a1, 0xEE));
  const __m512i s23 = _mm512_add_epi32(_mm512_shuffle_i32x4(a2, a3, 0x44), _mm512_shuffle_i32x4(a2, a3, 0xEE));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(s01, s23, 0x88), _mm512_shuffle_i32x4(s01, s23, 0xDD));
}

// The m <= 4 kernels on strips of 4 output channels: panels of 4 strips from a.s0 (the last may be
// short). strip(s, acc) leaves strip s's sums for M rows of X in acc[m], lane (g, r) = group g's
// part of row r; one transpose-add per m then gives the panel's 16 channels, in order.
template <int M, typename Strip>
inline void finish_panels_of_4(const StripView& w, const SpmmArgs& a, Strip&& strip) {
  for (int64_t s = a.s0; s < a.s1; s += 4) {
    __m512i acc[4][M];
    for (int t = 0; t < 4; ++t) {
      if (s + t < a.s1)
        strip(s + t, acc[t]);
      else
        for (auto& v : acc[t]) v = _mm512_setzero_si512();
    }
    const int64_t n0 = s * 4, rows = std::min({int64_t(16), w.rows - n0, (a.s1 - s) * 4});
    const RowEpilogue<true> finish(a, n0, rows);
    for (int m = 0; m < M; ++m)
      finish.store(_mm512_castsi512_ps(sum_lane_blocks(acc[0][m], acc[1][m], acc[2][m], acc[3][m])), a.m0 + m);
  }
}

// A panel: tile[r * ldt + l] is the accumulator of output channel n0 + r (r < rows <= 16) and
// row m0 + l (l < mv). 16x16 blocks are transposed in registers, finished with per-channel
// vectors and stored as one (masked at the N edge) row of Y each. An m tail (mv not a multiple
// of 16) reads the whole last block and stores its first rows: every kernel writes its tile in
// whole 16-column vectors, so those columns hold accumulators of zero-padded rows.
template <typename Acc>
inline void store_panel(const Acc* tile, int ldt, int64_t n0, int64_t rows, int64_t m0, int64_t mv, const SpmmArgs& a) {
  const RowEpilogue<std::is_integral_v<Acc>> e(a, n0, rows);
  for (int64_t l0 = 0; l0 < mv; l0 += 16) {
    __m512 r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_loadu_ps(reinterpret_cast<const float*>(tile + i * ldt + l0)) : _mm512_setzero_ps();
    transpose16x16(r);
    if (l0 + 16 <= mv)
      for (int l = 0; l < 16; l += 4) e.store4(r + l, m0 + l0 + l);
    else
      for (int l = 0; l < mv - l0; ++l) e.store(r[l], m0 + l0 + l);
  }
}

// Accumulators already in Y's orientation: acc[l * lda + r] for row m0 + l (l < mv) and output
// channel n0 + r (r < rows <= 16), as AMX leaves them when the weights are the B operand.
inline void store_rows(const int32_t* acc, int lda, int64_t n0, int64_t rows, int64_t m0, int64_t mv,
                       const SpmmArgs& a) {
  const RowEpilogue<true> e(a, n0, rows);
  const auto row = [&](int64_t l) { return _mm512_castsi512_ps(_mm512_loadu_si512(acc + l * lda)); };
  int64_t l = 0;
  for (; l + 4 <= mv; l += 4) {
    const __m512 f[4] = {row(l), row(l + 1), row(l + 2), row(l + 3)};
    e.store4(f, m0 + l);
  }
  for (; l < mv; ++l) e.store(row(l), m0 + l);
}

}  // namespace
}  // namespace spruce::kernels::x86
