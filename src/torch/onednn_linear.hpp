// A Linear layer's forward and backward on oneDNN's sgemm.
//
// Debian's LibTorch runs F32 GEMMs on OpenBLAS, whose own thread pool competes with LibTorch's
// OpenMP pool for the same cores. oneDNN's sgemm threads over that OpenMP pool, so the GEMMs and
// the element-wise work between them share one set of threads.
#pragma once
#include <torch/types.h>

namespace spruce::torch {

// x [..., in] · weightᵀ [in, out] + bias, differentiable in all three. Inputs that oneDNN cannot
// take (not F32, not on the CPU) go to torch::nn::functional::linear instead.
::torch::Tensor onednn_linear(const ::torch::Tensor& x, const ::torch::Tensor& weight, const ::torch::Tensor& bias);

}  // namespace spruce::torch
