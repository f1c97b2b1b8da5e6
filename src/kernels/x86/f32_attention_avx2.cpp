// f32-attention-avx2: attention_impl.hpp on 8 floats per vector (head_size % 8 == 0).
#include "attention_impl.hpp"
#include "store_avx2.hpp"

namespace spruce::kernels::x86 {
void f32_attention_avx2(const AttentionTask& task) { attention<Avx2Math>(task); }
}  // namespace spruce::kernels::x86
