// Saving an operator's packed weights and loading them back: adopted without repacking, outputs
// bit-identical, and every corruption caught before a kernel can read out of bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>

#include "spruce/bench.hpp"
#include "spruce/error.hpp"
#include "spruce/spmm.hpp"

namespace spruce {
namespace {

SparseLinearOptions never_dense() {
  SparseLinearOptions o;
  o.threads = 2;
  o.fallback = Fallback::Never;
  o.activation = Activation::ReLU;
  return o;
}

SparseLinear make_s8(const char* pattern, int64_t n, int64_t k, uint32_t seed, SparseLinearOptions o = never_dense()) {
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse(pattern);
  auto w = bench::pruned_integers<int8_t>(n, k, p, p.is_nm() ? 0.0 : 0.7, rng, 127);
  auto bias = bench::random_vec<float>(size_t(n), -5, 5, rng);
  QuantParams q;
  q.x_scale = 0.02f;
  q.x_zero_point = 9;
  for (int64_t i = 0; i < n; ++i) q.w_scales.push_back(0.01f + 0.001f * float(i % 7));
  q.out = OutType::U8;
  q.y_scale = 0.4f;
  q.y_zero_point = 100;
  return SparseLinear(w.data.data(), n, k, p, q, bias.data(), o);
}

SparseLinear make_f32(const char* pattern, int64_t n, int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse(pattern);
  auto w = bench::pruned_integers<float>(n, k, p, p.is_nm() ? 0.0 : 0.7, rng);
  auto bias = bench::random_vec<float>(size_t(n), -5, 5, rng);
  return SparseLinear(w.data.data(), n, k, p, bias.data(), never_dense());
}

// Both operators' outputs on the same random inputs, byte for byte.
void expect_same_outputs(SparseLinear& a, SparseLinear& b, uint32_t seed) {
  std::mt19937 rng(seed);
  const int64_t k = a.in_features(), n = a.out_features();
  for (int64_t m : {1, 5, 67}) {
    SCOPED_TRACE("m=" + std::to_string(m));
    if (a.is_int8()) {
      auto x = bench::random_vec<uint8_t>(size_t(m * k), 0, 255, rng);
      std::vector<uint8_t> ya(size_t(m * n), 1), yb(size_t(m * n), 2);
      a.run(x.data(), m, ya.data());
      b.run(x.data(), m, yb.data());
      ASSERT_EQ(ya, yb);
    } else {
      auto x = bench::random_vec<float>(size_t(m * k), -4, 4, rng);
      std::vector<float> ya(size_t(m * n), 1), yb(size_t(m * n), 2);
      a.run(x.data(), m, ya.data());
      b.run(x.data(), m, yb.data());
      ASSERT_EQ(0, std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)));
    }
  }
}

TEST(PackedLinear, RoundTripAdoptsStripsBitExact) {
  uint32_t seed = 700;
  for (const char* p : {"4x1", "1x1", "1x4", "4x16", "2:4", "16x1", "5x2"})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 75}, {64, 128}}) {
      SCOPED_TRACE(std::string(p) + " " + std::to_string(n) + "x" + std::to_string(k));
      for (bool int8 : {true, false}) {
        SparseLinear a = int8 ? make_s8(p, n, k, seed) : make_f32(p, n, k, seed);
        const PackedLinear saved = a.packed();
        SparseLinear b(saved, never_dense());
        EXPECT_FALSE(b.repacked()) << "kernel " << saved.kernel;
        EXPECT_EQ(b.sparse_kernel(), a.sparse_kernel());
        EXPECT_EQ(b.sparsity(), a.sparsity());
        EXPECT_EQ(b.packed_bytes(), a.packed_bytes());
        const PackedLinear again = b.packed();
        EXPECT_EQ(again.strip_ptr, saved.strip_ptr);
        EXPECT_EQ(again.strip_k, saved.strip_k);
        EXPECT_EQ(again.strip_w, saved.strip_w);
        EXPECT_EQ(again.strip_sel, saved.strip_sel);
        expect_same_outputs(a, b, seed++);
      }
    }
}

// Strips laid out for another kernel (here the scalar reference's) are unpacked and packed again
// for the kernel this CPU picks; the results stay exact.
TEST(PackedLinear, ForeignLayoutIsRepacked) {
  for (const char* p : {"4x16", "2:4", "4x1"}) {
    SCOPED_TRACE(p);
    SparseLinearOptions ref = never_dense();
    ref.kernel = "s8-spmm-ref";
    SparseLinear a = make_s8(p, 48, 96, 800, ref);
    SparseLinear b(a.packed(), never_dense());
    EXPECT_EQ(b.repacked(), b.sparse_kernel() != "s8-spmm-ref");
    expect_same_outputs(a, b, 801);
  }
}

TEST(PackedLinear, DenseFallbackRebuiltFromStrips) {
  SparseLinearOptions always = never_dense();
  always.fallback = Fallback::Always;
  SparseLinear a = make_s8("4x16", 40, 80, 900, always);
  SparseLinear b(a.packed(), always);
  EXPECT_EQ(b.impl(8).rfind("onednn:", 0), 0u);
  expect_same_outputs(a, b, 901);
}

void expect_rejected(const PackedLinear& good, const char* what, const std::function<void(PackedLinear&)>& corrupt) {
  PackedLinear bad = good;
  corrupt(bad);
  EXPECT_THROW(SparseLinear(bad, never_dense()), Error) << what;
}

TEST(PackedLinear, CorruptionIsAnError) {
  const PackedLinear s8 = make_s8("4x1", 32, 64, 1000).packed();
  ASSERT_GT(s8.strip_k.size(), 8u);
  expect_rejected(s8, "unknown kernel", [](PackedLinear& p) { p.kernel = "s8-spmm-9x9-future"; });
  expect_rejected(s8, "dtype mismatch", [](PackedLinear& p) { p.int8 = false; });
  expect_rejected(s8, "shape", [](PackedLinear& p) { p.out_features = 0; });
  expect_rejected(s8, "rows vs offsets", [](PackedLinear& p) { p.out_features += 8; });
  expect_rejected(s8, "bias count", [](PackedLinear& p) { p.bias.pop_back(); });
  expect_rejected(s8, "scale count", [](PackedLinear& p) { p.quant.w_scales.pop_back(); });
  expect_rejected(s8, "zero scale", [](PackedLinear& p) { p.quant.w_scales[3] = 0.0f; });
  expect_rejected(s8, "zero point", [](PackedLinear& p) { p.quant.x_zero_point = 300; });
  expect_rejected(s8, "offset count", [](PackedLinear& p) { p.strip_ptr.pop_back(); });
  expect_rejected(s8, "offsets descend", [](PackedLinear& p) { std::swap(p.strip_ptr[1], p.strip_ptr[2]); });
  expect_rejected(s8, "channel out of range", [](PackedLinear& p) { p.strip_k[5] = 64; });
  expect_rejected(s8, "negative channel", [](PackedLinear& p) { p.strip_k[0] = -1; });
  expect_rejected(s8, "unsorted channels", [](PackedLinear& p) { std::swap(p.strip_k[0], p.strip_k[1]); });
  expect_rejected(s8, "weight count", [](PackedLinear& p) { p.strip_w.pop_back(); });
  expect_rejected(s8, "strip height", [](PackedLinear& p) { p.strip_h = 65; });
  expect_rejected(s8, "group size", [](PackedLinear& p) { p.strip_kg = 1; });

  const PackedLinear quads = make_s8("4x16", 32, 64, 1001).packed();
  if (quads.kernel == "s8-spmm-4x4-avx512vnni")  // the quad layout exists only where VNNI runs
    expect_rejected(quads, "partial quad", [](PackedLinear& p) { p.strip_k[1] = p.strip_k[0]; });

  const PackedLinear nm = make_s8("2:4", 32, 64, 1002).packed();
  if (!nm.strip_sel.empty()) {
    expect_rejected(nm, "selector past octet", [](PackedLinear& p) { p.strip_sel[0] = 8; });
    expect_rejected(nm, "selector count", [](PackedLinear& p) { p.strip_sel.pop_back(); });
    expect_rejected(nm, "panel offsets", [](PackedLinear& p) { p.strip_ptr[1] += 1; });
  }

  const PackedLinear f32 = make_f32("4x1", 32, 64, 1003).packed();
  expect_rejected(f32, "partial float", [](PackedLinear& p) { p.strip_w.pop_back(); });
  expect_rejected(f32, "f32 in an s8 kernel", [](PackedLinear& p) { p.kernel = "s8-spmm-ref"; });
}

// Random single-value corruptions: each is either rejected or yields an operator that runs
// without touching memory it does not own (run under the sanitizers to see the second half).
TEST(PackedLinear, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(1100);
  for (const char* pattern : {"4x1", "4x16", "2:4"}) {
    SparseLinear a = make_s8(pattern, 24, 40, 1101);
    const PackedLinear good = a.packed();
    int rejected = 0;
    for (int trial = 0; trial < 300; ++trial) {
      PackedLinear bad = good;
      std::uniform_int_distribution<int> field(0, 3), value(-70, 70);
      const int f = field(rng);
      if (f == 0 && !bad.strip_ptr.empty()) bad.strip_ptr[rng() % bad.strip_ptr.size()] += value(rng);
      if (f == 1 && !bad.strip_k.empty()) bad.strip_k[rng() % bad.strip_k.size()] += value(rng);
      if (f == 2 && !bad.strip_sel.empty()) bad.strip_sel[rng() % bad.strip_sel.size()] ^= uint8_t(1 << (rng() % 8));
      if (f == 3 && !bad.strip_w.empty()) bad.strip_w[rng() % bad.strip_w.size()] = uint8_t(rng());
      try {
        SparseLinear b(bad, never_dense());
        std::vector<uint8_t> x(size_t(3 * 40), 7), y(size_t(3 * 24));
        b.run(x.data(), 3, y.data());
      } catch (const Error&) {
        ++rejected;
      }
    }
    EXPECT_GT(rejected, 0) << pattern;
  }
}

}  // namespace
}  // namespace spruce
