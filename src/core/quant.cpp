#include "spruce/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SPRUCE_QUANTIZE_AVX512 1
#endif

#include "gelu.hpp"
#include "scalar_math.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"

namespace spruce {

namespace {
// Adding and subtracting 1.5 * 2^23 rounds a float in [0, 2^22] to the nearest integer, ties to
// even, in the default rounding mode: the same as nearbyint, but it vectorizes on plain SSE2.
constexpr float kRound = 12582912.0f;
// The clamp is written as vmaxps/vminps compute it, so a NaN becomes 0 (the max returns its second
// operand for a NaN), as in the AVX-512 quantizers, instead of reaching the int conversion (UB).
inline uint8_t quantize_one(float x, float inv_scale, float zero_point) {
  const float t = x * inv_scale + zero_point, low = t > 0.f ? t : 0.f;
  const float v = low < 255.f ? low : 255.f;
  return uint8_t(int32_t((v + kRound) - kRound));
}
}  // namespace

uint8_t U8Quant::quantize(float x) const { return quantize_one(x, 1.f / scale, float(zero_point)); }

#ifdef SPRUCE_QUANTIZE_AVX512
namespace {
// AVX-512 for 16 values an instruction, where the CPU (and SPRUCE_MAX_ISA) allow: quantizing each
// layer's input took 20-30% of an INT8 layer at 384 x 3072 on the SSE2 path. The same operations
// in the same order as quantize_one (vmaxps(t, 0) gives 0 for a NaN); returns the values done.
__attribute__((target("avx512f"))) int64_t quantize_u8_avx512(const float* x, int64_t n, float inv, float zp,
                                                              uint8_t* out) {
  const __m512 vinv = _mm512_set1_ps(inv), vzp = _mm512_set1_ps(zp), zero = _mm512_setzero_ps(),
               top = _mm512_set1_ps(255.f), round = _mm512_set1_ps(kRound);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 t = _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), vinv), vzp);
    const __m512 v = _mm512_min_ps(_mm512_max_ps(t, zero), top);
    const __m512i r = _mm512_cvttps_epi32(_mm512_sub_ps(_mm512_add_ps(v, round), round));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm512_cvtepi32_epi8(r));
  }
  return i;
}
}  // namespace
#endif

// SSE2 (every x86-64) for 16 values a step: GCC 12 leaves quantize_one's loop scalar, with
// branches, which cost a third of a small INT8 layer. The same operations in the same order:
// maxps(t, 0) returns 0 for a NaN as quantize_one does.
void quantize_u8(const float* x, int64_t n, const U8Quant& q, uint8_t* out) {
  const float inv = 1.f / q.scale, zp = float(q.zero_point);
  int64_t i = 0;
#ifdef SPRUCE_QUANTIZE_AVX512
  static const bool avx512 = max_isa() >= Isa::Avx512;
  if (avx512) i = quantize_u8_avx512(x, n, inv, zp, out);
#endif
#ifdef __SSE2__
  const __m128 vinv = _mm_set1_ps(inv), vzp = _mm_set1_ps(zp), zero = _mm_setzero_ps(), top = _mm_set1_ps(255.f),
               round = _mm_set1_ps(kRound);
  auto four = [&](const float* p) {
    const __m128 t = _mm_add_ps(_mm_mul_ps(_mm_loadu_ps(p), vinv), vzp);
    const __m128 v = _mm_min_ps(_mm_max_ps(t, zero), top);
    return _mm_cvttps_epi32(_mm_sub_ps(_mm_add_ps(v, round), round));
  };
  for (; i + 16 <= n; i += 16) {
    const __m128i a = _mm_packs_epi32(four(x + i), four(x + i + 4));
    const __m128i b = _mm_packs_epi32(four(x + i + 8), four(x + i + 12));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(a, b));
  }
#endif
  for (; i < n; ++i) out[i] = quantize_one(x[i], inv, zp);
}

U8Quant u8_quant_for_range(float lo, float hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) data_error("calibration saw a non-finite activation value");
  lo = std::min(lo, 0.f);
  hi = std::max(hi, 0.f);
  if (hi - lo < 1e-12f) return {1.0f, 0};  // all zeros
  U8Quant q;
  q.scale = (hi - lo) / 255.f;
  q.zero_point = int32_t(std::clamp(std::nearbyint(-lo / q.scale), 0.f, 255.f));
  return q;
}

const char* activation_name(Activation a) {
  switch (a) {
    case Activation::ReLU: return "relu";
    case Activation::GELU: return "gelu";
    default: return "none";
  }
}

Activation parse_activation(const char* name) {
  if (!std::strcmp(name, "none")) return Activation::None;
  if (!std::strcmp(name, "relu")) return Activation::ReLU;
  if (!std::strcmp(name, "gelu")) return Activation::GELU;
  usage_error(std::string("unknown activation '") + name + "': expected none, relu or gelu");
}

std::vector<float> quantize_weights(MatrixView<const float> w, Matrix<int8_t>& q) {
  q = Matrix<int8_t>(w.rows, w.cols);
  std::vector<float> scales(size_t(w.rows), 1.0f);
  for (int64_t r = 0; r < w.rows; ++r) {
    float amax = 0.0f;
    for (int64_t c = 0; c < w.cols; ++c) amax = std::max(amax, std::fabs(w(r, c)));
    if (amax > 0.0f) scales[size_t(r)] = amax / 127.0f;
    for (int64_t c = 0; c < w.cols; ++c) {
      float v = std::nearbyint(w(r, c) / scales[size_t(r)]);
      q(r, c) = int8_t(std::clamp(v, -127.0f, 127.0f));
    }
  }
  return scales;
}

float apply_activation(float f, Activation a) {
  switch (a) {
    case Activation::ReLU: return f > 0.0f ? f : 0.0f;
    case Activation::GELU: return gelu_detail::gelu_erf<ScalarMath>(f);
    default: return f;
  }
}

// The clamp as the AVX-512 epilogue's vmaxps/vminps compute it: a NaN becomes the lower bound
// (vmaxps returns its second operand for a NaN), never reaching the int conversion (UB).
static float clamp_like_simd(float v, float lo, float hi) {
  v = v > lo ? v : lo;
  return v < hi ? v : hi;
}

uint8_t requantize_u8(float f, float y_inv_scale, float y_zero_point) {
  return uint8_t(std::nearbyint(clamp_like_simd(f * y_inv_scale + y_zero_point, 0.0f, 255.0f)));
}

int8_t requantize_s8(float f, float y_inv_scale, float y_zero_point) {
  return int8_t(std::nearbyint(clamp_like_simd(f * y_inv_scale + y_zero_point, -128.0f, 127.0f)));
}

}  // namespace spruce
