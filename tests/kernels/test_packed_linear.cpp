// Saving an operator's packed weights and loading them back through their parts (as a model file
// does): adopted without repacking, outputs bit-identical, and every corruption caught before a
// kernel can read out of bounds.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <random>
#include <stdexcept>

#include "runtime/dense.hpp"
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

SparseLinear make_s8(const char* pattern, int64_t n, int64_t k, uint32_t seed, SparseLinearOptions o = never_dense(),
                     double sparsity = 0.7) {
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse(pattern);
  auto w = bench::pruned_integers<int8_t>(n, k, p, p.is_nm() ? 0.0 : sparsity, rng, 127);
  auto bias = bench::random_vec<float>(size_t(n), -5, 5, rng);
  QuantParams q;
  q.x.scale = 0.02f;
  q.x.zero_point = 9;
  for (int64_t i = 0; i < n; ++i) q.w_scales.push_back(0.01f + 0.001f * float(i % 7));
  q.out = OutType::U8;
  q.y_scale = 0.4f;
  q.y_zero_point = 100;
  return SparseLinear(w.data.data(), n, k, p, q, bias.data(), o);
}

SparseLinear make_f32(const char* pattern, int64_t n, int64_t k, uint32_t seed, double sparsity = 0.7) {
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse(pattern);
  auto w = bench::pruned_integers<float>(n, k, p, p.is_nm() ? 0.0 : sparsity, rng);
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

// What a file round trip gives: the weights taken apart and put together again.
PackedLinear through_parts(const PackedLinear& p) {
  PackedLinear q = p;
  q.weights = PackedWeights::from_parts(p.weights.parts(), p.int8, p.out_features, p.in_features);
  return q;
}

std::vector<uint8_t>& array(PackedParts& p, const std::string& name) {
  for (auto& a : p.arrays)
    if (a.name == name) return a.bytes;
  throw std::runtime_error("no array " + name);
}
template <typename T>
T* elements(PackedParts& p, const std::string& name) {
  return reinterpret_cast<T*>(array(p, name).data());
}
template <typename T>
size_t count(PackedParts& p, const std::string& name) {
  return array(p, name).size() / sizeof(T);
}
void set_attribute(PackedParts& p, const std::string& name, int64_t v) {
  for (auto& [key, value] : p.attributes)
    if (key == name) value = v;
}

TEST(PackedLinear, RoundTripAdoptsStripsBitExact) {
  uint32_t seed = 700;
  for (const char* p : {"4x1", "1x1", "1x4", "4x16", "2:4", "16x1", "5x2"})
    for (auto [n, k] : {std::pair<int64_t, int64_t>{37, 75}, {64, 128}}) {
      SCOPED_TRACE(std::string(p) + " " + std::to_string(n) + "x" + std::to_string(k));
      for (bool int8 : {true, false}) {
        SparseLinear a = int8 ? make_s8(p, n, k, seed) : make_f32(p, n, k, seed);
        const PackedLinear saved = through_parts(a.packed());
        SparseLinear b(saved, never_dense());
        EXPECT_FALSE(b.repacked()) << "kernel " << saved.weights.kernel();
        EXPECT_EQ(b.sparse_kernel(), a.sparse_kernel());
        EXPECT_EQ(b.sparsity(), a.sparsity());
        EXPECT_EQ(b.packed_bytes(), a.packed_bytes());
        const PackedParts x = a.weights().parts(), y = b.packed().weights.parts();
        EXPECT_EQ(x.attributes, y.attributes);
        ASSERT_EQ(x.arrays.size(), y.arrays.size());
        for (size_t i = 0; i < x.arrays.size(); ++i)
          EXPECT_EQ(x.arrays[i].bytes, y.arrays[i].bytes) << x.arrays[i].name;
        expect_same_outputs(a, b, seed++);
      }
    }
}

// A layer pruned away entirely saves empty strip arrays, which load as null pointers: every kernel
// must run on them without offsetting null (clang's UBSan in packed_fuzz found one that did).
TEST(PackedLinear, FullyPrunedLayerRoundTrips) {
  uint32_t seed = 900;
  for (const char* p : {"4x1", "1x1", "1x4", "4x16", "16x1", "5x2", "channelx1", "1xchannel"})
    for (bool int8 : {true, false}) {
      SCOPED_TRACE(std::string(p) + (int8 ? " int8" : " f32"));
      SparseLinear a = int8 ? make_s8(p, 37, 76, seed, never_dense(), 1.0) : make_f32(p, 37, 76, seed, 1.0);
      EXPECT_EQ(a.sparsity(), 1.0);
      SparseLinear b(through_parts(a.packed()), never_dense());
      EXPECT_EQ(b.sparse_kernel(), a.sparse_kernel());
      expect_same_outputs(a, b, seed++);
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
    SparseLinear b(through_parts(a.packed()), never_dense());
    EXPECT_EQ(b.repacked(), b.sparse_kernel() != "s8-spmm-ref");
    expect_same_outputs(a, b, 801);
  }
}

TEST(PackedLinear, DenseFallbackRebuiltFromStrips) {
  SparseLinearOptions always = never_dense();
  always.fallback = Fallback::Always;
  SparseLinear a = make_s8("4x16", 40, 80, 900, always);
  SparseLinear b(through_parts(a.packed()), always);
  // INT8 runs oneDNN only where oneDNN's INT8 is exact (with VNNI).
  EXPECT_EQ(b.impl(8).rfind("onednn:", 0) == 0, runtime::DenseMatmul::int8_exact()) << b.impl(8);
  expect_same_outputs(a, b, 901);
}

void expect_rejected(const PackedLinear& good, const char* what, const std::function<void(PackedLinear&)>& corrupt) {
  PackedLinear bad = good;
  corrupt(bad);
  EXPECT_THROW(SparseLinear(bad, never_dense()), Error) << what;
}

void expect_parts_rejected(const PackedLinear& good, const char* what,
                           const std::function<void(PackedParts&)>& corrupt) {
  PackedParts parts = good.weights.parts();
  corrupt(parts);
  EXPECT_THROW(PackedWeights::from_parts(parts, good.int8, good.out_features, good.in_features), Error) << what;
}

TEST(PackedLinear, CorruptionIsAnError) {
  const PackedLinear s8 = make_s8("4x1", 32, 64, 1000).packed();
  using A = PackedParts::Type;
  expect_rejected(s8, "missing weights", [](PackedLinear& p) { p.weights = PackedWeights(); });
  expect_rejected(s8, "dtype mismatch", [](PackedLinear& p) { p.int8 = false; });
  expect_rejected(s8, "shape", [](PackedLinear& p) { p.out_features = 0; });
  expect_rejected(s8, "rows vs weights", [](PackedLinear& p) { p.out_features += 8; });
  expect_rejected(s8, "bias count", [](PackedLinear& p) { p.bias.pop_back(); });
  expect_rejected(s8, "scale count", [](PackedLinear& p) { p.quant.w_scales.pop_back(); });
  expect_rejected(s8, "zero scale", [](PackedLinear& p) { p.quant.w_scales[3] = 0.0f; });
  expect_rejected(s8, "zero point", [](PackedLinear& p) { p.quant.x.zero_point = 300; });
  expect_rejected(s8, "tuned bucket", [](PackedLinear& p) { p.dense_for_m[0] = true; });
  expect_rejected(s8, "route bucket", [](PackedLinear& p) { p.vnni_for_m[-3] = true; });
  EXPECT_THROW(PackedWeights::from_parts(s8.weights.parts(), false, 32, 64), Error) << "f32 in an s8 kernel";
  EXPECT_THROW(PackedWeights::from_parts(s8.weights.parts(), true, 40, 64), Error) << "rows vs offsets";
  expect_parts_rejected(s8, "unknown kernel", [](PackedParts& p) { p.kernel = "s8-spmm-9x9-future"; });
  expect_parts_rejected(s8, "offset count",
                        [](PackedParts& p) { array(p, "strip_ptr").resize(array(p, "strip_ptr").size() - 8); });
  expect_parts_rejected(s8, "offsets descend", [](PackedParts& p) {
    std::swap(elements<int64_t>(p, "strip_ptr")[1], elements<int64_t>(p, "strip_ptr")[2]);
  });
  expect_parts_rejected(s8, "channel out of range", [](PackedParts& p) { elements<int32_t>(p, "strip_k")[5] = 64; });
  expect_parts_rejected(s8, "negative channel", [](PackedParts& p) { elements<int32_t>(p, "strip_k")[0] = -1; });
  expect_parts_rejected(s8, "unsorted channels", [](PackedParts& p) {
    std::swap(elements<int32_t>(p, "strip_k")[0], elements<int32_t>(p, "strip_k")[1]);
  });
  expect_parts_rejected(s8, "weight count", [](PackedParts& p) { array(p, "strip_w").pop_back(); });
  expect_parts_rejected(s8, "partial index", [](PackedParts& p) { array(p, "strip_k").pop_back(); });
  expect_parts_rejected(s8, "strip height", [](PackedParts& p) { set_attribute(p, "strip_h", 65); });
  expect_parts_rejected(s8, "group size", [](PackedParts& p) { set_attribute(p, "strip_kg", 1); });
  expect_parts_rejected(s8, "missing attribute", [](PackedParts& p) { p.attributes.pop_back(); });
  expect_parts_rejected(s8, "unknown attribute", [](PackedParts& p) { p.attributes.push_back({"strip_x", 1}); });
  expect_parts_rejected(s8, "missing array", [](PackedParts& p) { p.arrays.erase(p.arrays.begin()); });
  expect_parts_rejected(s8, "unknown array", [](PackedParts& p) { p.arrays.push_back({"extra", A::U8, {1}}); });
  expect_parts_rejected(s8, "array type", [](PackedParts& p) { p.arrays[1].type = A::I64; });

  const PackedLinear quads = make_s8("4x16", 32, 64, 1001).packed();
  if (quads.weights.kernel() == "s8-spmm-4x4-avx512vnni") {  // the quad layout exists only where VNNI runs
    expect_parts_rejected(quads, "partial quad", [](PackedParts& p) {
      elements<int32_t>(p, "strip_k")[1] = elements<int32_t>(p, "strip_k")[0];
    });
  }

  const PackedLinear nm = make_s8("2:4", 32, 64, 1002).packed();
  if (nm.weights.kernel() == "s8-spmm-4of8-avx512vnni") {
    expect_parts_rejected(nm, "selector past octet", [](PackedParts& p) { array(p, "strip_sel")[0] = 8; });
    expect_parts_rejected(nm, "selector count", [](PackedParts& p) { array(p, "strip_sel").pop_back(); });
    expect_parts_rejected(nm, "panel offsets", [](PackedParts& p) { elements<int64_t>(p, "strip_ptr")[1] += 1; });
  }
  // Weights whose zeros break the layer's N:M pattern.
  const PackedLinear blocks = make_s8("4x1", 32, 64, 1004).packed();
  expect_rejected(blocks, "breaks 2:4", [](PackedLinear& p) { p.pattern = Pattern::parse("2:4"); });

  const PackedLinear f32 = make_f32("4x1", 32, 64, 1003).packed();
  expect_parts_rejected(f32, "partial float", [](PackedParts& p) { array(p, "strip_w").pop_back(); });
}

// Random single-value corruptions: each is either rejected or yields an operator that runs
// without touching memory it does not own (run under the sanitizers to see the second half).
TEST(PackedLinear, RandomCorruptionNeverCrashes) {
  std::mt19937 rng(1100);
  for (const char* pattern : {"4x1", "4x16", "2:4"}) {
    SparseLinear a = make_s8(pattern, 24, 40, 1101);
    const PackedLinear good = a.packed();
    const PackedParts parts = good.weights.parts();
    int rejected = 0;
    for (int trial = 0; trial < 300; ++trial) {
      PackedParts bad = parts;
      auto& target = bad.arrays[rng() % bad.arrays.size()];
      if (target.bytes.empty()) continue;
      const size_t at = rng() % target.bytes.size();
      target.bytes[at] = uint8_t(target.bytes[at] + std::uniform_int_distribution<int>(1, 255)(rng));
      try {
        PackedLinear p = good;
        p.weights = PackedWeights::from_parts(bad, true, 24, 40);
        SparseLinear b(p, never_dense());
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
