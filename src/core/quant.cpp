#include "spruce/quant.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

#include "spruce/error.hpp"

namespace spruce {

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
    case Activation::GELU: return 0.5f * f * (1.0f + std::erf(f * 0.70710678118654752f));
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
