// AVX-512 epilogue for a finished tile of accumulators: bias, activation, (de/re)quantization and
// the transposed store into Y[m][n]. Include only from files compiled with the AVX-512 flags.
// Four rows x 16 m go through registers; everything else (tails, GELU) through the scalar
// epilogue, which performs the same operations in the same order.
#pragma once
#include <immintrin.h>

#include <cstring>
#include <type_traits>

#include "../epilogue.hpp"

namespace spruce::kernels::x86 {

inline __m512 activate(__m512 f, Activation act) {
  return act == Activation::ReLU ? _mm512_max_ps(f, _mm512_setzero_ps()) : f;
}

// f[r] holds y(m0 + l, n0 + r) for l = 0..15; writes them to y at element offset `at` = m0*ldy+n0.
inline void store4x16(const __m512 f[4], const Epilogue& ep, void* y, int64_t at, int64_t ldy) {
  if (ep.out == OutType::F32) {
    const __m512 t0 = _mm512_unpacklo_ps(f[0], f[1]), t1 = _mm512_unpackhi_ps(f[0], f[1]);
    const __m512 t2 = _mm512_unpacklo_ps(f[2], f[3]), t3 = _mm512_unpackhi_ps(f[2], f[3]);
    const __m512 u[4] = {_mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xEE),
                         _mm512_shuffle_ps(t1, t3, 0x44), _mm512_shuffle_ps(t1, t3, 0xEE)};
    float* out = static_cast<float*>(y) + at;
    // u[j], 128-bit lane L, holds the four rows of m = 4L + j.
    for (int j = 0; j < 4; ++j) {
      _mm_storeu_ps(out + (0 + j) * ldy, _mm512_extractf32x4_ps(u[j], 0));
      _mm_storeu_ps(out + (4 + j) * ldy, _mm512_extractf32x4_ps(u[j], 1));
      _mm_storeu_ps(out + (8 + j) * ldy, _mm512_extractf32x4_ps(u[j], 2));
      _mm_storeu_ps(out + (12 + j) * ldy, _mm512_extractf32x4_ps(u[j], 3));
    }
    return;
  }
  const bool u8 = ep.out == OutType::U8;
  const __m512 lo = _mm512_set1_ps(u8 ? 0.0f : -128.0f), hi = _mm512_set1_ps(u8 ? 255.0f : 127.0f);
  const __m512 inv = _mm512_set1_ps(ep.y_inv_scale), zp = _mm512_set1_ps(ep.y_zero_point);
  __m128i b[4];
  for (int r = 0; r < 4; ++r) {
    const __m512 v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(_mm512_mul_ps(f[r], inv), zp), lo), hi);
    b[r] = _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v));  // in range already: truncation is exact
  }
  const __m128i p01l = _mm_unpacklo_epi8(b[0], b[1]), p01h = _mm_unpackhi_epi8(b[0], b[1]);
  const __m128i p23l = _mm_unpacklo_epi8(b[2], b[3]), p23h = _mm_unpackhi_epi8(b[2], b[3]);
  const __m128i q[4] = {_mm_unpacklo_epi16(p01l, p23l), _mm_unpackhi_epi16(p01l, p23l),
                        _mm_unpacklo_epi16(p01h, p23h), _mm_unpackhi_epi16(p01h, p23h)};
  alignas(16) uint32_t d[16];
  for (int i = 0; i < 4; ++i) _mm_store_si128(reinterpret_cast<__m128i*>(d + 4 * i), q[i]);
  uint8_t* out = static_cast<uint8_t*>(y) + at;
  for (int l = 0; l < 16; ++l) std::memcpy(out + l * ldy, &d[l], 4);
}

// tile[r * ldt + l] = accumulator of row n0 + r, m0 + l; `rows` valid rows, mv valid m.
// Quads of rows and 16-m blocks go through registers; the rest through the scalar epilogue.
template <typename Acc, typename Load>
inline void store_tile(const Acc* tile, int ldt, int64_t n0, int64_t rows, int64_t m0, int64_t mv, const SpmmArgs& a,
                       Load load) {
  const Epilogue& ep = *a.ep;
  const bool vec = ep.act != Activation::GELU;
  const int64_t vrows = vec ? rows / 4 * 4 : 0, vm = vec ? mv / 16 * 16 : 0;
  for (int64_t r0 = 0; r0 < vrows; r0 += 4)
    for (int64_t l0 = 0; l0 < vm; l0 += 16) {
      __m512 f[4];
      for (int r = 0; r < 4; ++r) {
        f[r] = load(tile + (r0 + r) * ldt + l0, n0 + r0 + r);
        if (ep.bias) f[r] = _mm512_add_ps(f[r], _mm512_set1_ps(ep.bias[n0 + r0 + r]));
        f[r] = activate(f[r], ep.act);
      }
      store4x16(f, ep, a.y, (m0 + l0) * a.ldy + n0 + r0, a.ldy);
    }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t l = (r < vrows ? vm : 0); l < mv; ++l) {
      if constexpr (std::is_integral_v<Acc>)
        store_out(dequantize(tile[r * ldt + l], n0 + r, ep), ep, a.y, (m0 + l) * a.ldy + n0 + r);
      else
        static_cast<float*>(a.y)[(m0 + l) * a.ldy + n0 + r] = finish_f32(tile[r * ldt + l], n0 + r, ep);
    }
}

inline void store_tile_s32(const int32_t* tile, int ldt, int64_t n0, int64_t rows, int64_t m0, int64_t mv,
                           const SpmmArgs& a) {
  const Epilogue& ep = *a.ep;
  store_tile(tile, ldt, n0, rows, m0, mv, a, [&](const int32_t* p, int64_t n) {
    const __m512i v = _mm512_sub_epi32(_mm512_loadu_si512(p), _mm512_set1_epi32(ep.comp[n]));
    return _mm512_mul_ps(_mm512_cvtepi32_ps(v), _mm512_set1_ps(ep.scale[n]));
  });
}

inline void store_tile_f32(const float* tile, int ldt, int64_t n0, int64_t rows, int64_t m0, int64_t mv,
                           const SpmmArgs& a) {
  store_tile(tile, ldt, n0, rows, m0, mv, a, [](const float* p, int64_t) { return _mm512_loadu_ps(p); });
}

}  // namespace spruce::kernels::x86
