// Multi-head scaled dot-product attention for inference, fused: each (sequence, head) computes
// its scores, softmax and weighted values in cache, reading Q, K and V where the projections wrote
// them and writing heads side by side, so there is no [batch][heads][tokens][tokens] tensor and no
// transpose. FP32 in and out, the products in FP32, BF16 or INT8 (AttentionPrecision); no gradient.
//
//   spruce::AttentionArgs a;
//   a.batch = 32, a.tokens = 128, a.heads = 12, a.head_size = 32;
//   a.q = q, a.k = k, a.v = v, a.ld_q = a.ld_k = a.ld_v = 384;  // [batch * tokens][heads * head_size]
//   a.key_bias = bias;                                          // [batch][tokens]: 0, or -FLT_MAX to mask
//   a.out = out, a.ld_out = 384;
//   spruce::attention_f32(a);
#pragma once
#include <cstdint>
#include <string>

namespace spruce {

// How the two products are computed; the softmax is FP32 in each. BF16 and Int8 are for INT8
// models, whose Linear layers already round more; where the CPU or the head size does not allow
// them, attention runs in FP32.
enum class AttentionPrecision {
  F32,
  // q, k, v and the softmax weights rounded to BF16, products summed in FP32 (vdpbf16ps: twice
  // FP32's multiply-adds per instruction): AVX512_BF16 and head_size % 32 == 0. About 3
  // significant digits per product.
  BF16,
  // q, k and v quantized to 8 bits per sequence and head (symmetric, by their largest magnitude),
  // the softmax weights to u8 (1/255 steps), products summed exactly in int32 (vpdpbusd: four times
  // FP32's multiply-adds): AVX512_VNNI and head_size % 16 == 0. Definition: src/kernels/attention.hpp.
  Int8,
};

struct AttentionArgs {
  int64_t batch = 0, tokens = 0, heads = 0, head_size = 0;
  // Token t of sequence b, head h: q[(b * tokens + t) * ld_q + h * head_size + c], c < head_size;
  // the same for k, v and out. The strides let Q, K and V be one fused projection's output.
  const float *q = nullptr, *k = nullptr, *v = nullptr;
  int64_t ld_q = 0, ld_k = 0, ld_v = 0;
  // [batch][tokens] or null: added to every score against that key. 0 keeps a key; -FLT_MAX (as
  // BERT's attention mask) gives it weight exactly 0, unless every key of the sequence is masked,
  // when all get equal weight (as torch.softmax does). Keep it finite.
  const float* key_bias = nullptr;
  float scale = 0.f;  // of q . k; 0: 1 / sqrt(head_size)
  float* out = nullptr;
  int64_t ld_out = 0;
  int threads = 0;  // OpenMP threads over the batch x heads tasks; 0: OpenMP's default
  AttentionPrecision precision = AttentionPrecision::F32;
};

// out = softmax(scale * Q K^T + key_bias) V per sequence and head. Keys scoring 87 or more below
// their row's best get weight 0 (exp(-87) is 1.6e-38). Bad sizes or strides throw spruce::Error
// (usage); out must not overlap q, k or v.
void attention_f32(const AttentionArgs& args);

// The kernel attention_f32 runs for this head size and precision under the current
// SPRUCE_MAX_ISA, e.g. "f32-attention-avx2", "bf16-attention-avx512" or "s8-attention-avx512vnni".
const char* attention_kernel_name(int64_t head_size, AttentionPrecision precision = AttentionPrecision::F32);

// "f32", "bf16", "int8"; parse_attention_precision throws spruce::Error (usage) for another name.
const char* attention_precision_name(AttentionPrecision precision);
AttentionPrecision parse_attention_precision(const std::string& name);

}  // namespace spruce
