// AVX2 epilogue for a finished tile of accumulators: bias, activation, (de/re)quantization and the
// transposed store into Y[m][n], 8 output channels per vector. Include only from files compiled
// with -mavx2 -mfma. The same operations in the same order as the scalar epilogue (epilogue.hpp)
// and the AVX-512 one, so every path rounds alike and INT8 stays bit-exact.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "../epilogue.hpp"
#include "core/gelu.hpp"
#include "math4.hpp"

namespace spruce::kernels::x86 {
namespace {  // internal linkage: only ever compiled with AVX2 flags, never shared with baseline code

inline void transpose8x8(__m256 r[8]);

// gelu.hpp's arithmetic on 8 floats. scale(a, n) multiplies by 2^n built in the exponent field:
// n is in [-126, 0] there, so 2^n is a normal float and the product rounds once, as ldexp does.
struct Avx2Math {
  using V = __m256;
  static V set(float c) { return _mm256_set1_ps(c); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V div(V a, V b) { return _mm256_div_ps(a, b); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V min(V a, V b) { return _mm256_min_ps(a, b); }
  static V max(V a, V b) { return _mm256_max_ps(a, b); }
  static V round(V a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
  static V scale(V a, V n) {
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(a, _mm256_castsi256_ps(e));
  }
  // For the attention kernel (attention_impl.hpp).
  static constexpr int W = 8;
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V a) { _mm256_storeu_ps(p, a); }
  static V zero() { return _mm256_setzero_ps(); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V keep_ge(V a, V y, float bound) {  // a where y >= bound, else +0
    return _mm256_and_ps(a, _mm256_cmp_ps(y, _mm256_set1_ps(bound), _CMP_GE_OQ));
  }
  static float hmax(V a) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    return _mm_cvtss_f32(_mm_max_ss(m, _mm_shuffle_ps(m, m, 1)));
  }
  static float hsum(V a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_shuffle_ps(s, s, 1)));
  }
  static void transpose(V r[W]) { transpose8x8(r); }  // afterwards r[j] holds old column j
};

// Four vectors through gelu.hpp together (math4.hpp).
using Avx2Math4 = Math4<Avx2Math>;

inline __m256 activate(__m256 f, Activation act) {
  switch (act) {
    case Activation::ReLU: return _mm256_max_ps(f, _mm256_setzero_ps());
    case Activation::GELU: return gelu_detail::gelu_erf<Avx2Math>(f);
    default: return f;
  }
}

// In-register 8x8 transpose of 32-bit elements: afterwards r[j] holds old column j.
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    r[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }  // r[4i+j], 128-bit lane L: rows 4i..4i+3 of column 4L+j
  for (int j = 0; j < 4; ++j) {
    t[j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x20);
    t[4 + j] = _mm256_permute2f128_ps(r[j], r[4 + j], 0x31);
  }
  for (int i = 0; i < 8; ++i) r[i] = t[i];
}

// Lanes [0, rows) set: the mask of maskload/maskstore.
inline __m256i lanes_below(int64_t rows) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(rows)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The vector epilogue of 8 consecutive output channels n0..n0+rows-1 (rows <= 8).
template <bool S32>
struct RowEpilogue8 {
  const SpmmArgs& a;
  const Epilogue& ep;
  int64_t n0, rows;
  __m256i nm, comp;
  __m256 bias, scale, lo, hi, inv, zp;
  RowEpilogue8(const SpmmArgs& args, int64_t n0_, int64_t rows_) : a(args), ep(*args.ep), n0(n0_), rows(rows_) {
    nm = lanes_below(rows);
    bias = ep.bias ? _mm256_maskload_ps(ep.bias + n0, nm) : _mm256_setzero_ps();
    scale = bias;
    comp = _mm256_setzero_si256();
    if constexpr (S32) {
      scale = _mm256_maskload_ps(ep.scale + n0, nm);
      comp = _mm256_maskload_epi32(ep.comp + n0, nm);
    }
    const bool u8 = ep.out == OutType::U8;
    lo = _mm256_set1_ps(u8 ? 0.0f : -128.0f);
    hi = _mm256_set1_ps(u8 ? 255.0f : 127.0f);
    inv = _mm256_set1_ps(ep.y_inv_scale);
    zp = _mm256_set1_ps(ep.y_zero_point);
  }
  // f: the accumulators of row m (int32 bits when S32), stored to Y[m][n0..].
  void store(__m256 f, int64_t m) const { put(activate(dequantize(f), ep.act), m); }
  // Eight rows m0..m0+7 at once: the activation four vectors at a time (Avx2Math4).
  void store8(__m256 f[8], int64_t m0) const {
    for (int l = 0; l < 8; ++l) f[l] = dequantize(f[l]);
    if (ep.act == Activation::GELU) {
      for (int h = 0; h < 8; h += 4) {
        const auto g = gelu_detail::gelu_erf<Avx2Math4>(Avx2Math4::V{{f[h], f[h + 1], f[h + 2], f[h + 3]}});
        for (int i = 0; i < 4; ++i) f[h + i] = g.v[i];
      }
    } else {
      for (int l = 0; l < 8; ++l) f[l] = activate(f[l], ep.act);
    }
    for (int l = 0; l < 8; ++l) put(f[l], m0 + l);
  }
  // Accumulators to f32: scale and zero-point compensation (S32), then the bias.
  __m256 dequantize(__m256 f) const {
    if constexpr (S32) f = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_castps_si256(f), comp)), scale);
    if (ep.bias) f = _mm256_add_ps(f, bias);
    return f;
  }
  // An activated row to Y[m][n0..]: f32, or requantized.
  void put(__m256 f, int64_t m) const {
    const int64_t at = a.y_at(m, n0);
    if (ep.out == OutType::F32) {
      if (rows == 8)
        _mm256_storeu_ps(static_cast<float*>(a.y) + at, f);
      else
        _mm256_maskstore_ps(static_cast<float*>(a.y) + at, nm, f);
      return;
    }
    // Clamped first, so the saturating packs below are exact.
    const __m256 v = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(_mm256_mul_ps(f, inv), zp), lo), hi);
    const __m256i i32 = _mm256_cvtps_epi32(v);
    const __m128i i16 = _mm_packs_epi32(_mm256_castsi256_si128(i32), _mm256_extracti128_si256(i32, 1));
    const __m128i b = ep.out == OutType::U8 ? _mm_packus_epi16(i16, i16) : _mm_packs_epi16(i16, i16);
    uint8_t* dst = static_cast<uint8_t*>(a.y) + at;
    if (rows == 8) {
      _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), b);
    } else {
      alignas(16) uint8_t bytes[16];
      _mm_store_si128(reinterpret_cast<__m128i*>(bytes), b);
      std::memcpy(dst, bytes, size_t(rows));
    }
  }
};

// A panel of 8 output channels: tile[r * ldt + l] is the accumulator of output channel n0 + r
// (r < rows <= 8) and row m0 + l (l < mv). 8x8 blocks are transposed in registers and stored as
// one row of Y each. An m tail reads the whole last block and stores its first rows: every
// kernel writes its tile in whole 8-column vectors.
template <typename Acc>
inline void store_panel8(const Acc* tile, int ldt, int64_t n0, int64_t rows, int64_t m0, int64_t mv,
                         const SpmmArgs& a) {
  const RowEpilogue8<std::is_integral_v<Acc>> e(a, n0, rows);
  for (int64_t l0 = 0; l0 < mv; l0 += 8) {
    __m256 r[8];
    for (int i = 0; i < 8; ++i)
      r[i] = i < rows ? _mm256_loadu_ps(reinterpret_cast<const float*>(tile + i * ldt + l0)) : _mm256_setzero_ps();
    transpose8x8(r);
    if (l0 + 8 <= mv)
      e.store8(r, m0 + l0);
    else
      for (int l = 0; l < mv - l0; ++l) e.store(r[l], m0 + l0 + l);
  }
}

}  // namespace
}  // namespace spruce::kernels::x86
