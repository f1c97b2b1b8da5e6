// Scalar epilogue: the arithmetic of spruce/quant.hpp, one output at a time. Used by the
// reference and by the kernels' tail and GELU paths, so every path rounds the same way.
#pragma once
#include <cstdint>

#include "kernel.hpp"

namespace spruce::kernels {

inline float finish_f32(float acc, int64_t n, const Epilogue& ep) {
  float f = acc;
  if (ep.bias) f = f + ep.bias[n];
  return ep.act == Activation::None ? f : apply_activation(f, ep.act);
}

inline float dequantize(int32_t acc, int64_t n, const Epilogue& ep) {
  float f = float(acc - ep.comp[n]) * ep.scale[n];
  if (ep.bias) f = f + ep.bias[n];
  return ep.act == Activation::None ? f : apply_activation(f, ep.act);
}

// Writes the dequantized value f to element `at` of y in the epilogue's output type.
inline void store_out(float f, const Epilogue& ep, void* y, int64_t at) {
  switch (ep.out) {
    case OutType::F32: static_cast<float*>(y)[at] = f; break;
    case OutType::U8: static_cast<uint8_t*>(y)[at] = requantize_u8(f, ep.y_inv_scale, ep.y_zero_point); break;
    case OutType::S8: static_cast<int8_t*>(y)[at] = requantize_s8(f, ep.y_inv_scale, ep.y_zero_point); break;
  }
}

}  // namespace spruce::kernels
