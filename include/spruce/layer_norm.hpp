// LayerNorm over rows for inference, fused with the residual add that precedes it in a
// transformer layer: each row is read once, normalized in cache and written once, where LibTorch
// makes a tensor for the sum and then passes over it again. FP32; no gradient.
//
//   spruce::LayerNormArgs a;
//   a.rows = 4096, a.width = 384;
//   a.x = y, a.ld_x = 384;                  // a projection's output
//   a.residual = x, a.ld_residual = 384;    // the layer's input (null: no residual)
//   a.gamma = weight, a.beta = bias;        // [width] (null: 1 and 0)
//   a.eps = 1e-12f;
//   a.out = out, a.ld_out = 384;            // may be x or residual itself, in place
//   spruce::layer_norm_f32(a);
#pragma once
#include <cstdint>

namespace spruce {

struct LayerNormArgs {
  int64_t rows = 0, width = 0;
  const float* x = nullptr;  // row r at x + r * ld_x, and so for residual and out
  int64_t ld_x = 0;
  const float* residual = nullptr;
  int64_t ld_residual = 0;
  const float *gamma = nullptr, *beta = nullptr;
  float eps = 1e-5f;  // added to the variance, as torch.nn.LayerNorm's eps
  float* out = nullptr;
  int64_t ld_out = 0;
  int threads = 0;  // OpenMP threads over blocks of rows; 0: OpenMP's default
};

// Per row: v = x + residual, out = (v - mean(v)) / sqrt(var(v) + eps) * gamma + beta, with the
// biased variance, as torch.nn.functional.layer_norm. Any thread count gives the same bytes. Bad
// sizes, strides or eps throw spruce::Error (usage); out must be x or residual exactly (same
// pointer and stride) or overlap neither.
void layer_norm_f32(const LayerNormArgs& args);

// The kernel layer_norm_f32 runs under the current SPRUCE_MAX_ISA, e.g. "f32-layer-norm-avx2".
const char* layer_norm_kernel_name();

}  // namespace spruce
