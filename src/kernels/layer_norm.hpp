// The LayerNorm microkernels (contract and registry entries: kernel.hpp; operator:
// spruce/layer_norm.hpp). One call normalizes a block of rows, each row on its own: the residual
// is added, the sum's mean and variance taken, and the row scaled and shifted, in three passes
// over a row that stays in L1.
#pragma once
#include <cstdint>

namespace spruce::kernels {

// Rows r < rows of width floats; row r of x is x + r * ld_x, and so for residual and out.
//   v    = x + residual                         (residual null: v = x)
//   mean = sum(v) / width,  var = sum((v - mean)^2) / width,  rstd = 1 / sqrt(var + eps)
//   out  = fma((v - mean) * rstd, gamma, beta)   (gamma null: 1, beta null: 0)
// The kernels differ only in the order of the two sums (FP32 rounding). out may be x or
// residual themselves (same pointer and stride: v is written to out before it is read back), or
// not overlap them at all.
struct LayerNormTask {
  const float* x = nullptr;
  int64_t ld_x = 0;
  const float* residual = nullptr;
  int64_t ld_residual = 0;
  const float *gamma = nullptr, *beta = nullptr;
  float eps = 1e-5f;
  int64_t rows = 0, width = 0;
  float* out = nullptr;
  int64_t ld_out = 0;
};
using LayerNormFn = void (*)(const LayerNormTask& task);

namespace ref {
void f32_layer_norm(const LayerNormTask& task);
}
namespace x86 {
void f32_layer_norm_avx512(const LayerNormTask& task);
void f32_layer_norm_avx2(const LayerNormTask& task);
}  // namespace x86

}  // namespace spruce::kernels
