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

// The BF16 kernels (registry dtype BF16) take and give FP32 as above, but round q, k, v and the
// softmax weights to BF16 (nearest even) and sum their products in FP32 channel pair by channel
// pair (key pair by key pair for the weighted values), each pair's odd element first, as
// vdpbf16ps does: s[i][j] = fma(acc, scale, key_bias[j]) with acc += q[2c+1] k[2c+1], then
// += q[2c] k[2c] (each product exact, each sum rounded).

// The INT8 kernels (registry dtype S8) take and give FP32 as above and compute, per (sequence, head),
// with every product exact in int32:
//   aq = max |q| over the head's tokens and channels, iq = 127 / aq (0 when aq <= 1e-30), sq = aq / 127;
//   likewise ak, ik, sk for k and av, iv, sv for v; q8 = clamp(nearbyint(q * iq), -127, 127), so k8, v8;
//   s[i][j] = fma(float(sum_c q8[i][c] k8[j][c]), (sq * sk) * scale, key_bias[j]);
//   e[i][j] = exp(s[i][j] - max_j s[i][j]) by gelu.hpp's exp_from, 0 below -87 (as above);
//   w[i][j] = nearbyint(e[i][j] * 255) (u8: the max key's weight is 255), W_i = sum_j w[i][j];
//   out[i][c] = float(sum_j w[i][j] v8[j][c]) * (sv / float(W_i)).
// The vector kernel adds 128 to q8 (vpdpbusd multiplies u8 by s8) and takes 128 sum_c k8[j][c] back
// off: the same integers, so it agrees with the reference bit for bit.

// Keys padded to a multiple of 32; scratch: K transposed [head_size][padded], then
// kAttentionScratchRows rows of padded floats: the key bias and the probabilities of up to 8 query
// rows; the BF16 kernels use them for V in key pairs and the weights in BF16.
constexpr int64_t kAttentionScratchRows = 9;
constexpr int64_t attention_padded_keys(int64_t tokens) { return (tokens + 31) / 32 * 32; }
constexpr int64_t attention_scratch_floats(int64_t tokens, int64_t head_size) {
  return (head_size + kAttentionScratchRows) * attention_padded_keys(tokens) + 2 * head_size;
}

namespace ref {
void f32_attention(const AttentionTask& task);
void bf16_attention(const AttentionTask& task);  // head_size % 2 == 0
void s8_attention(const AttentionTask& task);
}  // namespace ref
namespace x86 {
void f32_attention_avx512(const AttentionTask& task);     // head_size % 16 == 0
void f32_attention_avx2(const AttentionTask& task);       // head_size % 8 == 0
void bf16_attention_avx512(const AttentionTask& task);    // head_size % 32 == 0, AVX512_BF16
void s8_attention_avx512vnni(const AttentionTask& task);  // head_size % 16 == 0
}  // namespace x86

}  // namespace spruce::kernels
