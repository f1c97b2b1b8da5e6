// Thread pools and floating-point modes for LibTorch work.
#pragma once

namespace spruce::torch {

// Inference: torch::set_num_threads(n), and the same count for OpenBLAS's own pool when OpenBLAS
// is the loaded BLAS (Debian's LibTorch links it), whose threads otherwise default to every core.
void set_threads(int n);

// Training: many short element-wise ops (optimizer, masks, activations) run between the GEMMs.
// OpenMP's workers spin after each op while OpenBLAS's separate pool needs the same cores, which
// made an MLP epoch 3x slower on 2 cores. So LibTorch's OpenMP pool gets `n` threads, OpenBLAS
// runs serially inside it, and every pool thread flushes denormals to zero: Adam's moments of
// pruned weights decay geometrically into the denormal range, where each op costs ~100 cycles.
void set_training_threads(int n);

}  // namespace spruce::torch
