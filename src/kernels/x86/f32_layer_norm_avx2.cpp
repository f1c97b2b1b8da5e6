// f32-layer-norm-avx2: layer_norm_impl.hpp on 8 floats per vector.
#include "layer_norm_impl.hpp"
#include "store_avx2.hpp"

namespace spruce::kernels::x86 {
void f32_layer_norm_avx2(const LayerNormTask& task) { layer_norm<Avx2Math>(task); }
}  // namespace spruce::kernels::x86
