// Every dot-interaction kernel the CPU (and SPRUCE_MAX_ISA) allows against the scalar reference,
// byte for byte (they share one summation order); the reference against double-precision sums;
// and the operator's threading, strides and id checks. Seeds are fixed and printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

#include "kernels/interaction.hpp"
#include "spruce/error.hpp"
#include "spruce/interaction.hpp"

namespace spruce::kernels {
namespace {

struct Sample {
  std::vector<std::vector<float>> vectors;
  std::vector<const float*> ptrs;
};

Sample random_sample(int64_t count, int64_t dim, std::mt19937& rng) {
  std::normal_distribution<float> n(0.f, 1.f);
  Sample s;
  s.vectors.assign(size_t(count), std::vector<float>(size_t(dim)));
  for (auto& v : s.vectors)
    for (auto& x : v) x = n(rng);
  for (auto& v : s.vectors) s.ptrs.push_back(v.data());
  return s;
}

// Scale and zero point that spread the products over most of [0, 255], plus some clipping.
U8Quant quant_for(int64_t dim, int variant) {
  const float spread = 2.f * std::sqrt(float(dim));
  const U8Quant q[] = {u8_quant_for_range(-spread, spread), u8_quant_for_range(-0.5f * spread, 3.f * spread),
                       u8_quant_for_range(0.f, spread), {0.0371f, 17}};
  return q[variant];
}

TEST(DotInteraction, EveryKernelMatchesTheReferenceExactly) {
  const auto& ref = dot_interaction_kernels().back();
  ASSERT_EQ(std::string(ref.name), "f32-dot-interaction-u8-ref");
  int checked = 0;
  for (const auto& kr : dot_interaction_kernels()) {
    if (kr.isa > max_isa()) continue;
    for (int64_t count : {1, 2, 3, 5, 6, 9, 17, 18, 27, 30, 50})
      for (int64_t dim : {1, 5, 15, 16, 17, 33, 64, 128, 131})
        for (int variant = 0; variant < 4; ++variant) {
          const uint32_t seed = uint32_t(count * 1000 + dim * 10 + variant);
          std::mt19937 rng(seed);
          const Sample s = random_sample(count, dim, rng);
          const U8Quant q = quant_for(dim, variant);
          const int64_t width = dim + count * (count - 1) / 2;
          std::vector<uint8_t> want(size_t(width) + 1, 0xA5), got(size_t(width) + 1, 0x5A);
          ref.fn(s.ptrs.data(), count, dim, q, want.data());
          kr.fn(s.ptrs.data(), count, dim, q, got.data());
          EXPECT_EQ(got[size_t(width)], 0x5A) << kr.name << " wrote past the row";
          int distinct = 0;
          for (int64_t p = 0; p < width; ++p) distinct += want[size_t(p)] != want[0];
          if (width > 8) {
            EXPECT_GT(distinct, 0) << "degenerate case, seed " << seed;
          }
          for (int64_t p = 0; p < width; ++p)
            ASSERT_EQ(int(got[size_t(p)]), int(want[size_t(p)]))
                << kr.name << " count=" << count << " dim=" << dim << " scale=" << q.scale << " zp=" << q.zero_point
                << " index=" << p << " seed=" << seed;
          ++checked;
        }
  }
  EXPECT_GE(checked, 11 * 9 * 4);
  std::cout << "checked " << checked << " cases; the operator runs " << dot_interaction_kernel_name() << "\n";
}

// Through a u8 step, a last-bit difference of a sum rarely shows. Here it does: the second half
// of each vector repeats the first, negated in odd vectors, so every odd-even pair cancels
// exactly in real arithmetic and its f32 result is pure rounding residue, which depends on the
// order of the sum and on fused multiply-adds; a tiny scale maps that residue onto many u8 steps.
TEST(DotInteraction, EveryKernelSumsInTheReferencesOrder) {
  const auto& ref = dot_interaction_kernels().back();
  for (const auto& kr : dot_interaction_kernels()) {
    if (kr.isa > max_isa()) continue;
    for (int64_t dim : {34, 64, 100, 128, 131}) {
      const int64_t count = 27, half = dim / 2, width = dim + count * (count - 1) / 2;
      const uint32_t seed = uint32_t(dim);
      std::mt19937 rng(seed);
      Sample s = random_sample(count, dim, rng);
      for (int64_t v = 0; v < count; ++v)
        for (int64_t k = 0; k < dim - half; ++k)
          s.vectors[size_t(v)][size_t(half + k)] = k < half ? (v % 2 ? -1.f : 1.f) * s.vectors[size_t(v)][size_t(k)] : 0.f;
      const U8Quant q{2e-8f, 128};
      std::vector<uint8_t> want(static_cast<size_t>(width)), got(static_cast<size_t>(width));
      ref.fn(s.ptrs.data(), count, dim, q, want.data());
      kr.fn(s.ptrs.data(), count, dim, q, got.data());
      int residues = 0;  // cancelling pairs whose residue is neither zero nor clipped
      for (int64_t p = dim; p < width; ++p) residues += want[size_t(p)] != 0 && want[size_t(p)] != 128 && want[size_t(p)] != 255;
      EXPECT_GT(residues, 20) << "dim=" << dim << ": too few residues to test the order";
      for (int64_t p = 0; p < width; ++p)
        ASSERT_EQ(int(got[size_t(p)]), int(want[size_t(p)])) << kr.name << " dim=" << dim << " index=" << p << " seed=" << seed;
    }
  }
}

// The reference itself: each output is the true dot product (in double), quantized, give or take
// one step where the f32 sum lands near a rounding boundary.
TEST(DotInteraction, ReferenceIsTheQuantizedDotProduct) {
  std::mt19937 rng(7);
  const int64_t count = 27, dim = 128;
  const Sample s = random_sample(count, dim, rng);
  const U8Quant q = quant_for(dim, 0);
  std::vector<uint8_t> out(size_t(dim + 351));
  ref::f32_dot_interaction_u8(s.ptrs.data(), count, dim, q, out.data());
  for (int64_t k = 0; k < dim; ++k) EXPECT_EQ(out[size_t(k)], q.quantize(s.vectors[0][size_t(k)])) << k;
  int64_t p = dim, exact = 0;
  for (int64_t i = 1; i < count; ++i)
    for (int64_t j = 0; j < i; ++j, ++p) {
      double d = 0;
      for (int64_t k = 0; k < dim; ++k) d += double(s.vectors[size_t(i)][size_t(k)]) * s.vectors[size_t(j)][size_t(k)];
      const double want = std::clamp(std::nearbyint(d / q.scale + q.zero_point), 0.0, 255.0);
      EXPECT_LE(std::abs(out[size_t(p)] - want), 1.0) << "pair " << i << "," << j;
      exact += out[size_t(p)] == want;
    }
  EXPECT_GT(exact, 340);
}

TEST(DotInteraction, OperatorGathersRowsAndThreadsOverTheBatch) {
  const int64_t dim = 20, tables = 4, width = interaction_width(dim, tables);
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 1.f);
  const std::vector<int64_t> sizes = {3, 1, 9, 5};
  std::vector<std::vector<float>> rows;
  std::vector<EmbeddingTable> tabs;
  for (int64_t sz : sizes) {
    rows.emplace_back(size_t(sz * dim));
    for (auto& x : rows.back()) x = n(rng);
    tabs.push_back({rows.back().data(), sz});
  }
  const U8Quant q = u8_quant_for_range(-6.f, 9.f);
  for (int64_t batch : {1, 2, 7, 33}) {
    const int64_t ld_dense = dim + 3, ld_ids = tables + 1, ld_out = width + 5;
    std::vector<float> dense(size_t(batch * ld_dense));
    for (auto& x : dense) x = n(rng);
    std::vector<int64_t> ids(size_t(batch * ld_ids), -1);  // the padding column is never read
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t f = 0; f < tables; ++f) ids[size_t(b * ld_ids + f)] = int64_t(rng() % uint32_t(sizes[size_t(f)]));
    std::vector<uint8_t> out(size_t(batch * ld_out), 0xEE);
    DotInteractionArgs a;
    a.batch = batch, a.dim = dim, a.dense = dense.data(), a.ld_dense = ld_dense, a.tables = tabs;
    a.ids = ids.data(), a.ld_ids = ld_ids, a.quant = q, a.out = out.data(), a.ld_out = ld_out, a.threads = 2;
    dot_interaction_u8(a);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<const float*> v{dense.data() + b * ld_dense};
      for (int64_t f = 0; f < tables; ++f) v.push_back(rows[size_t(f)].data() + ids[size_t(b * ld_ids + f)] * dim);
      std::vector<uint8_t> want(static_cast<size_t>(width));
      ref::f32_dot_interaction_u8(v.data(), tables + 1, dim, q, want.data());
      for (int64_t p = 0; p < width; ++p) ASSERT_EQ(out[size_t(b * ld_out + p)], want[size_t(p)]) << "batch " << batch << " b " << b << " p " << p;
      for (int64_t p = width; p < ld_out; ++p) ASSERT_EQ(out[size_t(b * ld_out + p)], 0xEE) << "wrote into the stride";
    }
    for (int64_t bad : {int64_t(-1), sizes[2]}) {
      ids[size_t((batch - 1) * ld_ids + 2)] = bad;
      std::fill(out.begin(), out.end(), 0xEE);
      try {
        dot_interaction_u8(a);
        FAIL() << "id " << bad << " was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Data);
        const std::string msg = e.what();
        EXPECT_NE(msg.find("id " + std::to_string(bad)), std::string::npos) << msg;
        EXPECT_NE(msg.find("sample " + std::to_string(batch - 1)), std::string::npos) << msg;
        EXPECT_NE(msg.find("[0, 9)"), std::string::npos) << msg;
      }
      EXPECT_EQ(out[0], 0xEE) << "wrote before checking the ids";
    }
  }
}

}  // namespace
}  // namespace spruce::kernels
