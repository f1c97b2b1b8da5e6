// f32-attention-avx512: attention_impl.hpp on 16 floats per vector (head_size % 16 == 0).
#include "attention_impl.hpp"
#include "store_avx512.hpp"

namespace spruce::kernels::x86 {
void f32_attention_avx512(const AttentionTask& task) { attention<Avx512Math>(task); }
}  // namespace spruce::kernels::x86
