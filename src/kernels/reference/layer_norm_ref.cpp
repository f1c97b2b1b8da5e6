// f32-layer-norm-ref: LayerNorm with a residual, straight from its definition (layer_norm.hpp),
// sums in channel order.
#include <cmath>

#include "kernels/layer_norm.hpp"

namespace spruce::kernels::ref {

void f32_layer_norm(const LayerNormTask& t) {
  for (int64_t r = 0; r < t.rows; ++r) {
    const float* x = t.x + r * t.ld_x;
    const float* res = t.residual ? t.residual + r * t.ld_residual : nullptr;
    float* out = t.out + r * t.ld_out;
    float sum = 0.f;
    for (int64_t c = 0; c < t.width; ++c) {
      const float v = res ? x[c] + res[c] : x[c];
      out[c] = v;
      sum += v;
    }
    const float mean = sum / float(t.width);
    float squares = 0.f;
    for (int64_t c = 0; c < t.width; ++c) {
      const float d = out[c] - mean;
      squares = std::fma(d, d, squares);
    }
    const float rstd = 1.f / std::sqrt(squares / float(t.width) + t.eps);
    for (int64_t c = 0; c < t.width; ++c)
      out[c] = std::fma((out[c] - mean) * rstd, t.gamma ? t.gamma[c] : 1.f, t.beta ? t.beta[c] : 0.f);
  }
}

}  // namespace spruce::kernels::ref
