// INT8 quantization parameters and the epilogue arithmetic shared by every kernel and the reference.
//
// Activations are u8 with a zero point, weights are s8 symmetric with one scale per output channel
// (DESIGN.md). The accumulator is s32, then, for output channel n:
//
//   acc  = sum_k x[m][k] * w[n][k]  -  x.zero_point * sum_k w[n][k]      (exact, s32)
//   f    = float(acc) * scale[n]            scale[n] = x.scale * w_scale[n], one f32 multiply
//   f    = f + bias[n]                      bias in f32 (optional); no FMA contraction
//   f    = act(f)                           none | relu: f > 0 ? f : +0 | gelu: 0.5 f (1 + erf(f/sqrt2))
//   out  = f                                         (dequantize to f32), or
//   out  = int(nearbyint(clamp(f * (1/y_scale) + y_zero_point, lo, hi)))   (requantize to u8 or s8;
//          round half to even, lo/hi = 0/255 or -128/127)
//
// FP32 uses: f = acc + bias[n]; f = act(f).
// The reference and every kernel compute exactly these operations in this order, so INT8 results
// match bit for bit. oneDNN 2.6 computes the same for dequantize-without-bias (checked by
// `spruce bench`), which is what the benchmarks compare.
#pragma once
#include <cstdint>
#include <vector>

#include "spruce/matrix.hpp"

namespace spruce {

enum class Activation { None, ReLU, GELU };
enum class OutType { F32, U8, S8 };

const char* activation_name(Activation a);
Activation parse_activation(const char* name);  // "none" | "relu" | "gelu"; throws spruce::Error

// u8 quantization of activations: real = scale * (q - zero_point), q in [0, 255].
struct U8Quant {
  float scale = 1.0f;
  int32_t zero_point = 0;  // 0..255
  // round_half_even(clamp(x * (1 / scale) + zero_point, 0, 255)), as quantize_u8 computes it.
  uint8_t quantize(float x) const;
  float dequantize(uint8_t q) const { return scale * float(int32_t(q) - zero_point); }
};

// Quantizes n values with q (vectorizes without SSE4.1: rounding by the 1.5 * 2^23 trick).
void quantize_u8(const float* x, int64_t n, const U8Quant& q, uint8_t* out);

// Parameters for a real range; the range is widened to include 0 so that 0 is exact.
U8Quant u8_quant_for_range(float lo, float hi);

struct QuantParams {
  U8Quant x;                    // the u8 activations
  std::vector<float> w_scales;  // one per output channel: real weight = w_scale[n] * s8
  OutType out = OutType::F32;
  float y_scale = 1.0f;  // only for U8/S8 output: real y = y_scale * (q - y_zero_point)
  int32_t y_zero_point = 0;
};

// Symmetric per-output-channel quantization of f32 weights W[OC][IC]: scale = max|w| / 127
// (1 for an all-zero row), q = nearbyint(w / scale) clamped to [-127, 127]. Zeros stay zeros, so
// the sparsity pattern is kept. Returns the scales and writes q.
std::vector<float> quantize_weights(MatrixView<const float> w, Matrix<int8_t>& q);

// The scalar epilogue steps (the reference and the kernels' GELU path use these).
float apply_activation(float f, Activation a);
uint8_t requantize_u8(float f, float y_inv_scale, float y_zero_point);
int8_t requantize_s8(float f, float y_inv_scale, float y_zero_point);

}  // namespace spruce
