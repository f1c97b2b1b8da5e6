// Dense oracles: the definition of the operation, independent of every packed format.
#include "../epilogue.hpp"
#include "ref.hpp"

namespace spruce::kernels::ref {

void dense_f32(const float* x, int64_t m, int64_t k, int64_t n, const float* w, const Epilogue& ep, float* y,
               int64_t ldy) {
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < n; ++o) {
      double acc = 0.0;
      for (int64_t c = 0; c < k; ++c) acc += double(x[i * k + c]) * double(w[o * k + c]);
      y[i * ldy + o] = finish_f32(float(acc), o, ep);
    }
}

void dense_s8(const uint8_t* x, int64_t m, int64_t k, int64_t n, const int8_t* w, int32_t x_zero_point,
              const Epilogue& ep, void* y, int64_t ldy) {
  // The zero point is subtracted per element here, not folded: an independent check of ep.comp.
  for (int64_t i = 0; i < m; ++i)
    for (int64_t o = 0; o < n; ++o) {
      int32_t acc = 0;
      for (int64_t c = 0; c < k; ++c) acc += (int32_t(x[i * k + c]) - x_zero_point) * int32_t(w[o * k + c]);
      float f = float(acc) * ep.scale[o];
      if (ep.bias) f = f + ep.bias[o];
      store_out(apply_activation(f, ep.act), ep, y, i * ldy + o);
    }
}

}  // namespace spruce::kernels::ref
