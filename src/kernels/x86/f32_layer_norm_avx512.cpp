// f32-layer-norm-avx512: layer_norm_impl.hpp on 16 floats per vector.
#include "layer_norm_impl.hpp"
#include "store_avx512.hpp"

namespace spruce::kernels::x86 {
void f32_layer_norm_avx512(const LayerNormTask& task) { layer_norm<Avx512Math>(task); }
}  // namespace spruce::kernels::x86
