// One thread count for LibTorch's intra-op pool and the BLAS under it.
#pragma once

namespace spruce::torch {

// torch::set_num_threads(n), and OpenBLAS's own pool too when OpenBLAS is the loaded BLAS: its
// threads otherwise spin on every core beside LibTorch's, which oversubscribes a small machine.
void set_threads(int n);

}  // namespace spruce::torch
