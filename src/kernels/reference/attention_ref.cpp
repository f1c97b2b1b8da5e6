// f32-attention-ref: scaled dot-product attention straight from its definition, one query at a
// time, sums in token order, std::exp.
#include <algorithm>
#include <cmath>

#include "kernels/attention.hpp"

namespace spruce::kernels::ref {

void f32_attention(const AttentionTask& t) {
  float* s = t.scratch;  // one row of scores
  for (int64_t i = 0; i < t.tokens; ++i) {
    const float* q = t.q + i * t.ld_q;
    float max = -INFINITY;
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float* k = t.k + j * t.ld_k;
      float dot = 0.f;
      for (int64_t c = 0; c < t.head_size; ++c) dot += q[c] * k[c];
      s[j] = t.scale * dot + (t.key_bias ? t.key_bias[j] : 0.f);
      max = std::max(max, s[j]);
    }
    float sum = 0.f;
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float y = s[j] - max;
      s[j] = y >= -87.f ? std::exp(y) : 0.f;
      sum += s[j];
    }
    float* out = t.out + i * t.ld_out;
    std::fill(out, out + t.head_size, 0.f);
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float* v = t.v + j * t.ld_v;
      for (int64_t c = 0; c < t.head_size; ++c) out[c] += s[j] * v[c];
    }
    for (int64_t c = 0; c < t.head_size; ++c) out[c] /= sum;
  }
}

}  // namespace spruce::kernels::ref
