// Every attention kernel the CPU (and SPRUCE_MAX_ISA) allows against a double-precision oracle
// over token counts around the kernels' blockings (4 query rows, 16 and 32 keys), head sizes,
// strides, masks and fully masked sequences; then the operator's threading and checks. Seeds are
// fixed and printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <iostream>
#include <random>
#include <vector>

#include "coverage.hpp"
#include "kernels/attention.hpp"
#include "kernels/kernel.hpp"
#include "spruce/attention.hpp"
#include "spruce/error.hpp"

namespace spruce::kernels {
namespace {

const auto* const kCoverage = ::testing::AddGlobalTestEnvironment(new coverage::KernelCoverage(Op::Attention, 100));

std::vector<const Kernel*> attention_kernels() {
  std::vector<const Kernel*> ks;
  for (const Kernel& k : registry())
    if (k.op == Op::Attention) ks.push_back(&k);
  return ks;
}

// One (sequence, head) in double: softmax(scale q.k + bias) v, weights below exp(-87) zeroed.
std::vector<double> oracle(const AttentionTask& t) {
  std::vector<double> out(size_t(t.tokens * t.head_size));
  for (int64_t i = 0; i < t.tokens; ++i) {
    std::vector<double> s(size_t(t.tokens));
    double max = -INFINITY;
    for (int64_t j = 0; j < t.tokens; ++j) {
      double dot = 0;
      for (int64_t c = 0; c < t.head_size; ++c) dot += double(t.q[i * t.ld_q + c]) * t.k[j * t.ld_k + c];
      s[size_t(j)] = double(float(t.scale * dot)) + (t.key_bias ? t.key_bias[j] : 0.0);
      max = std::max(max, s[size_t(j)]);
    }
    double sum = 0;
    for (auto& e : s) sum += e = e - max >= -87 ? std::exp(e - max) : 0.0;
    for (int64_t j = 0; j < t.tokens; ++j)
      for (int64_t c = 0; c < t.head_size; ++c)
        out[size_t(i * t.head_size + c)] += s[size_t(j)] / sum * t.v[j * t.ld_v + c];
  }
  return out;
}

struct Case {
  int64_t tokens, head_size, ld;
  std::vector<float> q, k, v, bias;
};

// Queries and keys of norm ~ sqrt(head_size) * spread; `mask`: 0 none, 1 some keys masked with
// -FLT_MAX, 2 every key masked, 3 no bias at all.
Case random_case(int64_t tokens, int64_t head_size, int mask, float spread, std::mt19937& rng) {
  Case c{tokens, head_size, head_size + int64_t(rng() % 3) * 8 + 3, {}, {}, {}, {}};
  std::normal_distribution<float> n(0.f, 1.f);
  for (auto* x : {&c.q, &c.k, &c.v}) {
    x->resize(size_t(tokens * c.ld));
    for (auto& e : *x) e = n(rng) * (x == &c.v ? 1.f : spread);
  }
  c.bias.resize(size_t(tokens));
  for (auto& b : c.bias) b = mask == 2 || (mask == 1 && rng() % 3 == 0) ? -FLT_MAX : 0.1f * n(rng);
  return c;
}

TEST(Attention, EveryKernelMatchesTheOracle) {
  int checked = 0;
  const Kernel* bf16_ref = find("bf16-attention-ref");
  const Kernel* s8_ref = find("s8-attention-ref");
  ASSERT_NE(bf16_ref, nullptr);
  ASSERT_NE(s8_ref, nullptr);
  double worst_s8 = 0;  // of the INT8 kernels against the oracle, at spread 1
  for (const Kernel* kp : attention_kernels()) {
    const Kernel& kernel = *kp;
    if (!runs_here(kernel)) continue;
    const bool bf16 = kernel.dtype == DType::BF16, s8 = kernel.dtype == DType::S8;
    for (int64_t tokens : {1, 2, 3, 4, 5, 7, 9, 15, 16, 17, 31, 32, 33, 47, 64, 100, 128, 129})
      for (int64_t head_size : {1, 8, 16, 24, 32, 48, 64, 80})
        for (int mask = 0; mask < 4; ++mask) {
          Problem p;
          p.op = Op::Attention;
          p.dtype = kernel.dtype;
          p.k = head_size;
          if (!kernel.accepts(p)) continue;
          const uint32_t seed = uint32_t(tokens * 10000 + head_size * 10 + mask);
          std::mt19937 rng(seed);
          const float spread = mask == 0 ? 2.5f : 1.f;  // large scores: sharp softmax, many exact zeros
          const Case c = random_case(tokens, head_size, mask, spread, rng);
          const int64_t ld_out = head_size + 5;
          std::vector<float> out(size_t(tokens * ld_out), 7.f);
          LineVector<float> scratch(size_t(attention_scratch_floats(tokens, head_size)));
          AttentionTask t;
          t.q = c.q.data(), t.k = c.k.data(), t.v = c.v.data();
          t.ld_q = t.ld_k = t.ld_v = c.ld;
          t.key_bias = mask == 3 ? nullptr : c.bias.data();
          t.scale = 1.f / std::sqrt(float(head_size));
          t.tokens = tokens, t.head_size = head_size;
          t.out = out.data(), t.ld_out = ld_out;
          t.scratch = scratch.data();
          kernel.attention()(t);
          coverage::count_case(kernel);
          const auto want = oracle(t);
          double worst = 0;
          for (int64_t i = 0; i < tokens; ++i) {
            for (int64_t ch = 0; ch < head_size; ++ch)
              worst = std::max(worst, std::abs(out[size_t(i * ld_out + ch)] - want[size_t(i * head_size + ch)]));
            for (int64_t ch = head_size; ch < ld_out; ++ch)
              ASSERT_EQ(out[size_t(i * ld_out + ch)], 7.f) << kernel.name << " wrote past a row, seed " << seed;
          }
          // Outputs are convex combinations of V (|v| ~ 1); FP32 rounding of 129-term sums and exp.
          // BF16 keeps 8 significant bits of each input, a few parts in a thousand of each product:
          // with scores of order 1 (spread 1) that moves outputs by at most 3e-2; the large scores
          // of spread 2.5 (a sharp softmax) move by as much as the score error, tens of times more,
          // so there the BF16 kernels answer only to the BF16 reference below.
          // INT8: q and k to 127 levels of their largest magnitude (a score error of about 1% of the
          // largest score), weights to 255 levels of the largest weight: with scores of order 1 a few
          // hundredths. As for BF16, the sharp softmax of spread 2.5 answers only to the reference.
          if (!(bf16 || s8) || spread == 1.f) {
            EXPECT_LT(worst, bf16 ? 3e-2
                             : s8 ? 8e-2
                                  : 2e-5)
                << kernel.name << " tokens " << tokens << " head_size " << head_size << " mask " << mask << " seed "
                << seed;
          }
          if (s8 && spread == 1.f) worst_s8 = std::max(worst_s8, worst);
          if (s8 && kernel.isa != Isa::Scalar) {
            // The same integers and the same float operations in the same order: bit for bit.
            std::vector<float> want_s8(out.size(), 7.f);
            t.out = want_s8.data();
            s8_ref->attention()(t);
            ASSERT_EQ(out, want_s8) << kernel.name << " against s8-attention-ref, seed " << seed;
          }
          if (bf16 && kernel.isa != Isa::Scalar) {
            // Against the BF16 reference: the same rounded inputs and order of sums; only exp and
            // the sum of the weights differ (a weight's BF16 rounding can then flip by one step).
            std::vector<float> want_bf16(out.size(), 7.f);
            t.out = want_bf16.data();
            bf16_ref->attention()(t);
            double worst_ref = 0, total = 0;
            for (int64_t i = 0; i < tokens; ++i)
              for (int64_t ch = 0; ch < head_size; ++ch) {
                const double e = std::abs(out[size_t(i * ld_out + ch)] - want_bf16[size_t(i * ld_out + ch)]);
                worst_ref = std::max(worst_ref, e), total += e;
              }
            EXPECT_LT(worst_ref, 2e-3) << kernel.name << " against bf16-attention-ref, seed " << seed;
            EXPECT_LT(total / double(tokens * head_size), 2e-5) << kernel.name << " mean error, seed " << seed;
          }
          ++checked;
        }
  }
  EXPECT_GT(checked, 500);
  // The INT8 tolerance must not hide a broken kernel: an exact one would sit far below it, a
  // kernel that ignored V or the softmax far above.
  EXPECT_GT(worst_s8, 1e-3);
  std::cout << "  INT8 kernels, worst error against the oracle at spread 1: " << worst_s8 << "\n";
}

// A fully masked sequence attends to every key equally, as torch.softmax over equal scores does.
TEST(Attention, FullyMaskedSequenceAveragesTheValues) {
  const int64_t tokens = 5, d = 16;
  std::vector<float> q(size_t(tokens * d), 1.f), k(q), v(size_t(tokens * d)), out(size_t(tokens * d));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i % 7);
  const std::vector<float> bias(size_t(tokens), -FLT_MAX);
  AttentionArgs a;
  a.batch = 1, a.tokens = tokens, a.heads = 1, a.head_size = d;
  a.q = q.data(), a.k = k.data(), a.v = v.data(), a.ld_q = a.ld_k = a.ld_v = d;
  a.key_bias = bias.data(), a.out = out.data(), a.ld_out = d;
  attention_f32(a);
  for (int64_t c = 0; c < d; ++c) {
    double mean = 0;
    for (int64_t j = 0; j < tokens; ++j) mean += v[size_t(j * d + c)] / double(tokens);
    EXPECT_NEAR(out[size_t(c)], mean, 1e-5) << attention_kernel_name(d);
  }
}

// The operator: heads side by side in [batch * tokens][heads * head_size] rows, any thread count
// giving the same bytes (one task per thread, no shared sums), each head equal to one kernel call.
TEST(Attention, OperatorThreadsOverSequencesAndHeads) {
  const int64_t batch = 3, tokens = 37, heads = 5, d = 32, width = heads * d, ld = 3 * width;  // a fused QKV
  std::mt19937 rng(7);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> qkv(size_t(batch * tokens * ld)), bias(size_t(batch * tokens));
  for (auto& x : qkv) x = n(rng);
  for (auto& b : bias) b = rng() % 4 == 0 ? -FLT_MAX : 0.f;
  AttentionArgs a;
  a.batch = batch, a.tokens = tokens, a.heads = heads, a.head_size = d;
  a.q = qkv.data(), a.k = qkv.data() + width, a.v = qkv.data() + 2 * width;
  a.ld_q = a.ld_k = a.ld_v = ld;
  a.key_bias = bias.data();
  a.ld_out = width;
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    outs.emplace_back(size_t(batch * tokens * width), -1.f);
    a.out = outs.back().data(), a.threads = threads;
    attention_f32(a);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      AttentionTask t;
      const int64_t row = b * tokens, col = h * d;
      t.q = a.q + row * ld + col, t.k = a.k + row * ld + col, t.v = a.v + row * ld + col;
      t.ld_q = t.ld_k = t.ld_v = ld;
      t.key_bias = bias.data() + row;
      t.scale = 1.f / std::sqrt(float(d));
      t.tokens = tokens, t.head_size = d;
      const auto want = oracle(t);
      for (int64_t i = 0; i < tokens; ++i)
        for (int64_t c = 0; c < d; ++c)
          ASSERT_NEAR(outs[0][size_t((row + i) * width + col + c)], want[size_t(i * d + c)], 2e-5)
              << "sequence " << b << " head " << h << " token " << i;
    }
}

// Asked for BF16 or INT8, the operator runs that kernel where the CPU has AVX512_BF16 (VNNI) and
// the head size fits (near the FP32 result), and FP32 elsewhere (the same bytes as without the
// request).
TEST(Attention, OperatorRunsBf16AndInt8WhereItCan) {
  const int64_t batch = 2, tokens = 45, heads = 3;
  for (auto precision : {AttentionPrecision::BF16, AttentionPrecision::Int8})
    for (int64_t d : {32, 64, 48, 24}) {
      const int64_t width = heads * d;
      std::mt19937 rng(static_cast<uint32_t>(d));
      std::normal_distribution<float> n(0.f, 1.f);
      std::vector<float> q(size_t(batch * tokens * width)), k(q.size()), v(q.size()), bias(size_t(batch * tokens));
      for (auto* x : {&q, &k, &v})
        for (auto& e : *x) e = n(rng);
      for (auto& b : bias) b = rng() % 5 == 0 ? -FLT_MAX : 0.f;
      AttentionArgs a;
      a.batch = batch, a.tokens = tokens, a.heads = heads, a.head_size = d;
      a.q = q.data(), a.k = k.data(), a.v = v.data(), a.ld_q = a.ld_k = a.ld_v = width;
      a.key_bias = bias.data(), a.ld_out = width, a.threads = 2;
      std::vector<float> f32(q.size()), bf(q.size());
      a.out = f32.data();
      attention_f32(a);
      a.out = bf.data(), a.precision = precision;
      attention_f32(a);
      const bool is_bf16 = precision == AttentionPrecision::BF16;
      const bool runs = is_bf16 ? avx512_bf16() && d % 32 == 0 : max_isa() >= Isa::Avx512Vnni && d % 16 == 0;
      const char* name = is_bf16 ? "bf16-attention-avx512" : "s8-attention-avx512vnni";
      EXPECT_STREQ(attention_kernel_name(d, precision), runs ? name : attention_kernel_name(d));
      if (!runs) {
        EXPECT_EQ(bf, f32) << "head size " << d;
        continue;
      }
      double worst = 0;
      for (size_t i = 0; i < f32.size(); ++i) worst = std::max(worst, double(std::abs(bf[i] - f32[i])));
      EXPECT_LT(worst, is_bf16 ? 3e-2 : 8e-2) << name << ", head size " << d;
      EXPECT_GT(worst, 0.0) << name << " should round, head size " << d;
    }
}

TEST(Attention, OperatorRejectsBadSizes) {
  std::vector<float> x(64);
  AttentionArgs a;
  a.batch = 1, a.tokens = 2, a.heads = 2, a.head_size = 8;
  a.q = a.k = a.v = x.data(), a.out = x.data() + 32;
  a.ld_q = a.ld_k = a.ld_v = 16, a.ld_out = 8;  // out's stride below heads x head_size
  EXPECT_THROW(attention_f32(a), Error);
  a.ld_out = 16, a.heads = 0;
  EXPECT_THROW(attention_f32(a), Error);
  a.heads = 2, a.q = nullptr;
  EXPECT_THROW(attention_f32(a), Error);
  EXPECT_THROW(attention_kernel_name(0), Error);
  EXPECT_THROW(parse_attention_precision("fp16"), Error);
  EXPECT_EQ(parse_attention_precision("int8"), AttentionPrecision::Int8);
}

}  // namespace
}  // namespace spruce::kernels
