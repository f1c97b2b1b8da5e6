// The attention microkernels (contract and registry entries: kernel.hpp; operator:
// spruce/attention.hpp). One call is one head of one sequence, entirely in cache: scores, softmax
// and the weighted sum of values, with no [tokens][tokens] tensor ever leaving the core.
#pragma once
#include <cstdint>

namespace spruce::kernels {

// One (sequence, head). Token t's query is q[t * ld_q + c] for c < head_size, and so for k and v;
// the result goes to out[t * ld_out + c]:
//   s[i][j] = scale * dot(q_i, k_j) + key_bias[j]      (key_bias null: 0)
//   out_i   = sum_j softmax_j(s[i]) v_j
// Keys whose score lies 87 or more below their row's maximum get weight 0 (exp(-87) = 1.6e-38), so
// a key_bias of -FLT_MAX masks a key exactly. `scratch` holds attention_scratch_floats() floats,
// 64-byte aligned.
struct AttentionTask {
  const float *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t ld_q = 0, ld_k = 0, ld_v = 0;
  const float* key_bias = nullptr;
  float scale = 1.f;
  int64_t tokens = 0, head_size = 0;
  float* out = nullptr;
  int64_t ld_out = 0;
  float* scratch = nullptr;
};
using AttentionFn = void (*)(const AttentionTask& task);

// Keys padded to a multiple of 32; scratch: K transposed [head_size][padded], the key bias
// [padded], and the probabilities of up to 4 query rows [4][padded].
constexpr int64_t attention_padded_keys(int64_t tokens) { return (tokens + 31) / 32 * 32; }
constexpr int64_t attention_scratch_floats(int64_t tokens, int64_t head_size) {
  return (head_size + 5) * attention_padded_keys(tokens);
}

namespace ref {
void f32_attention(const AttentionTask& task);
}
namespace x86 {
void f32_attention_avx512(const AttentionTask& task);  // head_size % 16 == 0
void f32_attention_avx2(const AttentionTask& task);    // head_size % 8 == 0
}  // namespace x86

}  // namespace spruce::kernels
