// f32-attention-ref: scaled dot-product attention straight from its definition, one query at a
// time, sums in token order, std::exp. bf16-attention-ref: the same on BF16-rounded inputs and
// weights, with the BF16 kernels' order of sums (attention.hpp). s8-attention-ref: attention.hpp's
// INT8 definition, term by term.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/gelu.hpp"
#include "core/scalar_math.hpp"
#include "kernels/attention.hpp"

namespace spruce::kernels::ref {
namespace {
// The softmax's numerators over one row of n scores, in place: exp(s - max), exactly 0 where
// s - max < -87. Returns their sum, in order.
float exp_from_max(float* s, int64_t n) {
  if (n < 1) return 0.f;
  const float max = *std::max_element(s, s + n);
  float sum = 0.f;
  for (int64_t j = 0; j < n; ++j) {
    const float y = s[j] - max;
    s[j] = y >= -87.f ? std::exp(y) : 0.f;
    sum += s[j];
  }
  return sum;
}
}  // namespace

void f32_attention(const AttentionTask& t) {
  float* s = t.scratch;  // one row of scores
  for (int64_t i = 0; i < t.tokens; ++i) {
    const float* q = t.q + i * t.ld_q;
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float* k = t.k + j * t.ld_k;
      float dot = 0.f;
      for (int64_t c = 0; c < t.head_size; ++c) dot += q[c] * k[c];
      s[j] = t.scale * dot + (t.key_bias ? t.key_bias[j] : 0.f);
    }
    const float sum = exp_from_max(s, t.tokens);
    float* out = t.out + i * t.ld_out;
    std::fill(out, out + t.head_size, 0.f);
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float* v = t.v + j * t.ld_v;
      for (int64_t c = 0; c < t.head_size; ++c) out[c] += s[j] * v[c];
    }
    for (int64_t c = 0; c < t.head_size; ++c) out[c] /= sum;
  }
}

namespace {
// x rounded to BF16 (nearest even) and back, as vcvtne2ps2bf16 does; denormal inputs become zero.
float bf16(float x) {
  if (std::isnan(x)) return x;
  if (std::fabs(x) < FLT_MIN) return std::copysign(0.f, x);
  uint32_t b;
  std::memcpy(&b, &x, 4);
  b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &b, 4);
  return x;
}
}  // namespace

void bf16_attention(const AttentionTask& t) {
  float* s = t.scratch;             // one row of scores, then of unnormalized weights
  float* w = t.scratch + t.tokens;  // the weights in BF16, one more (zero) for an odd count
  const int64_t d = t.head_size, pairs = (t.tokens + 1) / 2;
  for (int64_t i = 0; i < t.tokens; ++i) {
    const float* q = t.q + i * t.ld_q;
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float* k = t.k + j * t.ld_k;
      float acc = 0.f;
      for (int64_t c = 0; c < d; c += 2) {
        acc = std::fma(bf16(q[c + 1]), bf16(k[c + 1]), acc);
        acc = std::fma(bf16(q[c]), bf16(k[c]), acc);
      }
      s[j] = std::fma(acc, t.scale, t.key_bias ? t.key_bias[j] : 0.f);
    }
    const float sum = exp_from_max(s, t.tokens);
    for (int64_t j = 0; j < t.tokens; ++j) w[j] = bf16(s[j]);
    w[t.tokens] = 0.f;
    float* out = t.out + i * t.ld_out;
    for (int64_t c = 0; c < d; ++c) {
      float acc = 0.f;
      for (int64_t p = 0; p < pairs; ++p) {
        const int64_t j = 2 * p;
        const float v_odd = j + 1 < t.tokens ? bf16(t.v[(j + 1) * t.ld_v + c]) : 0.f;
        acc = std::fma(w[j + 1], v_odd, acc);
        acc = std::fma(w[j], bf16(t.v[j * t.ld_v + c]), acc);
      }
      out[c] = acc * (1.f / sum);
    }
  }
}

namespace {
// attention.hpp's INT8 quantization of one head's [tokens][head_size] block: the multiplier to
// 8 bits, and the scale back.
struct Int8Scale {
  float to8 = 0.f, from8 = 0.f;
};
Int8Scale int8_scale(const float* x, int64_t ld, const AttentionTask& t) {
  float amax = 0.f;
  for (int64_t i = 0; i < t.tokens; ++i)
    for (int64_t c = 0; c < t.head_size; ++c) amax = std::max(amax, std::fabs(x[i * ld + c]));
  return {amax > 1e-30f ? 127.f / amax : 0.f, amax / 127.f};
}
int32_t to_int8(float x, float to8) { return int32_t(std::clamp(std::nearbyint(x * to8), -127.f, 127.f)); }
}  // namespace

void s8_attention(const AttentionTask& t) {
  const int64_t d = t.head_size;
  const Int8Scale q = int8_scale(t.q, t.ld_q, t), k = int8_scale(t.k, t.ld_k, t), v = int8_scale(t.v, t.ld_v, t);
  const float score = (q.from8 * k.from8) * t.scale;
  float* s = t.scratch;  // one row of scores, then of exp
  for (int64_t i = 0; i < t.tokens; ++i) {
    for (int64_t j = 0; j < t.tokens; ++j) {
      int32_t dot = 0;
      for (int64_t c = 0; c < d; ++c) dot += to_int8(t.q[i * t.ld_q + c], q.to8) * to_int8(t.k[j * t.ld_k + c], k.to8);
      s[j] = std::fma(float(dot), score, t.key_bias ? t.key_bias[j] : 0.f);
    }
    const float max = *std::max_element(s, s + t.tokens);
    int32_t sum = 0;
    for (int64_t j = 0; j < t.tokens; ++j) {
      const float y = s[j] - max;
      const float e = y >= -87.f ? gelu_detail::exp_from<ScalarMath>(y) : 0.f;
      s[j] = std::nearbyint(e * 255.f);  // the weight, an integer in [0, 255]
      sum += int32_t(s[j]);
    }
    const float f = v.from8 / float(sum);
    for (int64_t c = 0; c < d; ++c) {
      int32_t acc = 0;
      for (int64_t j = 0; j < t.tokens; ++j) acc += int32_t(s[j]) * to_int8(t.v[j * t.ld_v + c], v.to8);
      t.out[i * t.ld_out + c] = float(acc) * f;
    }
  }
}

}  // namespace spruce::kernels::ref
