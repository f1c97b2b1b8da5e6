// The operator: packing + threading + dispatch + dense fallback, against the dense oracle.
#include <gtest/gtest.h>

#include <omp.h>

#include <cmath>
#include <random>
#include <thread>

#include "kernels/kernel.hpp"
#include "kernels/reference/ref.hpp"
#include "runtime/dense.hpp"
#include "spruce/bench.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/spmm.hpp"

namespace spruce {
namespace {

using kernels::Epilogue;

// ldy: Y's row stride (0: n + 2); `staged`: whether the operator must stage Y (-1: either way).
void f32_case(const char* pattern, int64_t m, int64_t k, int64_t n, Fallback fb, int threads, Activation act,
              uint32_t seed, int64_t ldy = 0, int staged = -1) {
  SCOPED_TRACE(std::string("f32 ") + pattern + " m=" + std::to_string(m) + " k=" + std::to_string(k) +
               " n=" + std::to_string(n) + " threads=" + std::to_string(threads) + " seed=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse(pattern);
  auto w = bench::pruned_integers<float>(n, k, p, p.is_nm() ? 0.0 : 0.7, rng);
  auto bias = bench::random_vec<float>(size_t(n), -5, 5, rng);
  const int64_t ldx = k + 1;
  if (ldy == 0) ldy = n + 2;
  auto x = bench::random_vec<float>(size_t(m * ldx), -4, 4, rng);
  std::vector<float> xd(size_t(m * k));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t c = 0; c < k; ++c) xd[size_t(i * k + c)] = x[size_t(i * ldx + c)];
  SparseLinearOptions o;
  o.threads = threads;
  o.fallback = fb;
  o.activation = act;
  if (fb == Fallback::Auto) o.tune_m = {m};
  if (staged >= 0) o.staging = OutputStaging::Always;  // the staged path on every CPU
  SparseLinear op(w.data.data(), n, k, p, bias.data(), o);
  std::vector<float> y(size_t(m * ldy), std::nanf("")), want(y.size(), std::nanf(""));
  Epilogue ep;
  ep.act = act;
  ep.bias = bias.data();
  kernels::ref::dense_f32(xd.data(), m, k, n, w.data.data(), ep, want.data(), ldy);
  if (staged >= 0) {
    ASSERT_EQ(op.stages_output(m, ldy), staged == 1);
  }
  op.run(x.data(), m, y.data(), ldx, ldy);
  for (size_t i = 0; i < y.size(); ++i) {
    if (std::isnan(want[i])) {
      ASSERT_TRUE(std::isnan(y[i])) << "stride padding overwritten at " << i;
      continue;
    }
    // Sparse paths are exact on integer inputs; oneDNN may use its own erf, so allow 1e-5 relative.
    ASSERT_NEAR(y[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << "at " << i << " impl " << op.impl(m);
  }
}

TEST(SparseLinear, F32SparseEveryPattern) {
  uint32_t seed = 100;
  for (const char* p : {"4x1", "1x1", "1x4", "4x16", "16x1", "2:4", "3x3"})
    for (int64_t m : {1, 7, 300}) f32_case(p, m, 70, 37, Fallback::Never, 2, Activation::ReLU, seed++);
}

TEST(SparseLinear, F32ThreadCounts) {
  for (int t : {1, 2, 3}) f32_case("4x1", 129, 96, 64, Fallback::Never, t, Activation::None, 200 + t);
}

TEST(SparseLinear, F32DenseFallbackAndAuto) {
  f32_case("4x1", 33, 64, 48, Fallback::Always, 2, Activation::ReLU, 300);
  f32_case("4x1", 33, 64, 48, Fallback::Auto, 2, Activation::None, 301);
}

void s8_case(const char* pattern, int64_t m, int64_t k, int64_t n, Fallback fb, int threads, Activation act,
             OutType out, bool with_bias, uint32_t seed, int64_t ldy = 0, int staged = -1) {
  SCOPED_TRACE(std::string("s8 ") + pattern + " m=" + std::to_string(m) + " k=" + std::to_string(k) +
               " n=" + std::to_string(n) + " out=" + std::to_string(int(out)) + " seed=" + std::to_string(seed));
  std::mt19937 rng(seed);
  const Pattern p = Pattern::parse(pattern);
  auto w = bench::pruned_integers<int8_t>(n, k, p, p.is_nm() ? 0.0 : 0.7, rng, 127);
  auto x = bench::random_vec<uint8_t>(size_t(m * k), 0, 255, rng);
  auto bias = bench::random_vec<float>(size_t(n), -5, 5, rng);
  QuantParams q;
  q.x.scale = 0.02f;
  q.x.zero_point = 7;
  for (int64_t i = 0; i < n; ++i) q.w_scales.push_back(0.01f + 0.001f * float(i % 5));
  q.out = out;
  q.y_scale = 0.5f;
  q.y_zero_point = out == OutType::U8 ? 128 : 0;
  SparseLinearOptions o;
  o.threads = threads;
  o.fallback = fb;
  o.activation = act;
  if (fb == Fallback::Auto) o.tune_m = {m};
  if (staged >= 0) o.staging = OutputStaging::Always;  // the staged path on every CPU
  SparseLinear op(w.data.data(), n, k, p, q, with_bias ? bias.data() : nullptr, o);
  const size_t es = out == OutType::F32 ? 4 : 1;
  if (ldy == 0) ldy = n;
  // Different fills, so that outputs neither writes cannot agree; the stride padding alike.
  std::vector<uint8_t> y(size_t(m * ldy) * es, 0xA5), want(y.size(), 0x5A);
  for (int64_t i = 0; i < m; ++i)
    std::fill(want.begin() + (i * ldy + n) * int64_t(es), want.begin() + (i + 1) * ldy * int64_t(es), 0xA5);
  std::vector<float> scale;
  for (int64_t i = 0; i < n; ++i) scale.push_back(q.x.scale * q.w_scales[size_t(i)]);
  Epilogue ep;
  ep.act = act;
  ep.bias = with_bias ? bias.data() : nullptr;
  ep.scale = scale.data();
  ep.out = out;
  ep.y_inv_scale = 1.0f / q.y_scale;
  ep.y_zero_point = float(q.y_zero_point);
  kernels::ref::dense_s8(x.data(), m, k, n, w.data.data(), q.x.zero_point, ep, want.data(), ldy);
  if (staged >= 0) {
    ASSERT_EQ(op.stages_output(m, ldy), staged == 1);
  }
  op.run(x.data(), m, y.data(), 0, ldy);
  ASSERT_EQ(y, want) << "impl " << op.impl(m);
}

TEST(SparseLinear, S8SparseExactEveryPatternAndOutput) {
  uint32_t seed = 400;
  for (const char* p : {"4x1", "1x1", "1x4", "4x16", "2:4", "5x2", "16x4", "16x64"})
    for (OutType out : {OutType::F32, OutType::U8, OutType::S8})
      for (int64_t m : {1, 4, 15, 16, 300})
        s8_case(p, m, 75, 36, Fallback::Never, 2, Activation::ReLU, out, true, seed++);
  s8_case("4x1", 64, 128, 64, Fallback::Never, 2, Activation::GELU, OutType::F32, true, seed++);
}

// How run_sparse shares the work changes with m and the thread count (strips below 128 rows a
// thread, or 64 where the weights are small beside X, as here; whole blocks of rows above,
// balanced blocks that leave a ragged tail); each way must give the reference's result, at a k
// whose blocks of rows are 64 (k = 3072 u8) and at one of 256.
TEST(SparseLinear, EveryWayOfSharingTheWorkGivesTheReference) {
  uint32_t seed = 800;
  for (int t : {1, 2, 3})
    for (int64_t m : {63, 127, 128, 200, 255, 256, 257, 384, 641}) {
      s8_case("4x1", m, 3072, 40, Fallback::Never, t, Activation::GELU, OutType::U8, true, seed++);
      s8_case("4x16", m, 200, 48, Fallback::Never, t, Activation::None, OutType::F32, false, seed++);
      f32_case("4x1", m, 96, 36, Fallback::Never, t, Activation::ReLU, seed++);
    }
}

// Where Y's rows lie a multiple of 4 KiB apart, the operator has the kernel write a band of
// output channels at a time into a buffer and copies it to Y: every band edge (the last band
// short), block of rows and way of sharing the work must give the reference, and the stride
// padding past n must stay as it was. Strides off 4 KiB, and m below 64, write Y directly.
TEST(SparseLinear, StagedOutputGivesTheReference) {
  uint32_t seed = 900;
  for (int t : {1, 2})
    for (int64_t m : {64, 129, 300, 520}) {
      f32_case("4x1", m, 96, 1000, Fallback::Never, t, Activation::ReLU, seed++, 1024, 1);
      f32_case("1x1", m, 80, 2000, Fallback::Never, t, Activation::None, seed++, 2048, 1);
      s8_case("4x16", m, 200, 1000, Fallback::Never, t, Activation::None, OutType::F32, true, seed++, 1024, 1);
      s8_case("4x1", m, 100, 4000, Fallback::Never, t, Activation::GELU, OutType::U8, true, seed++, 4096, 1);
      s8_case("2:4", m, 64, 1024, Fallback::Never, t, Activation::ReLU, OutType::F32, false, seed++, 0, 1);
      s8_case("1x4", m, 64, 1024, Fallback::Never, t, Activation::None, OutType::S8, true, seed++, 1100, 0);
    }
  f32_case("4x1", 63, 96, 1000, Fallback::Never, 1, Activation::None, seed++, 1024, 0);
}

// By default the operator stages on AMD, where the aliased walk is slow, and elsewhere only where
// a thread's share of Y outgrows twice the L2; Never writes Y directly everywhere. Both paths give
// the reference (the direct one in every other test).
TEST(SparseLinear, OutputStagingFollowsTheOptionAndTheCpu) {
  std::mt19937 rng(950);
  const Pattern p = Pattern::parse("4x1");
  const int64_t n = 1000, ldy = 1024, k = 96;
  auto w = bench::pruned_integers<float>(n, k, p, 0.7, rng);
  // One thread: its share of Y is all of it, 1.2 MB at 300 rows, and past 4x the L2 at large_m.
  const int64_t small_m = 300, large_m = 4 * l2_cache_bytes() / (ldy * 4) + 64;
  const bool small_y_staged_by_auto =
      cpu_vendor() == CpuVendor::Amd || double(small_m * n * 4) > 2.0 * double(l2_cache_bytes());
  for (OutputStaging s : {OutputStaging::Auto, OutputStaging::Always, OutputStaging::Never}) {
    SparseLinearOptions o;
    o.threads = 1, o.fallback = Fallback::Never, o.staging = s;
    const SparseLinear op(w.data.data(), n, k, p, nullptr, o);
    EXPECT_EQ(op.stages_output(small_m, ldy),
              s == OutputStaging::Always || (s == OutputStaging::Auto && small_y_staged_by_auto))
        << int(s);
    EXPECT_EQ(op.stages_output(large_m, ldy), s != OutputStaging::Never) << int(s);
    EXPECT_FALSE(op.stages_output(small_m, n)) << "rows 4000 bytes apart are not aliased";
  }
}

// Where the weights are packed for an AMX kernel, batches below 16 rows run a VNNI kernel on a
// second packing (a 16-row tile would be mostly empty), and the memory report counts both. (With
// VBMI, m <= 8 runs the windows kernel on a packing of its own, on any host.)
TEST(SparseLinear, SmallBatchesLeaveAmx) {
  std::mt19937 rng(450);
  const int64_t k = 256, n = 128;
  auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse("4x1"), 0.9, rng, 127);
  QuantParams q;
  q.w_scales.assign(size_t(n), 0.01f);
  SparseLinearOptions o;
  o.fallback = Fallback::Never;
  SparseLinear op(w.data.data(), n, k, Pattern::parse("4x1"), q, nullptr, o);
  if (max_isa() < Isa::Amx) {
    EXPECT_EQ(op.memory_bytes() > op.packed_bytes(), avx512_vbmi());
    GTEST_SKIP() << "the AMX routing needs AMX";
  }
  EXPECT_EQ(op.sparse_kernel(), "s8-spmm-16x1-amx");
  const char* few = avx512_vbmi() ? "s8-spmm-4x1-w-m8-avx512vnni" : "s8-spmm-4x1-m8-avx512vnni";
  EXPECT_EQ(op.impl(1), few);
  EXPECT_EQ(op.impl(4), few);
  EXPECT_EQ(op.impl(5), avx512_vbmi() ? few : "s8-spmm-4x1-avx512vnni");
  EXPECT_EQ(op.impl(8), avx512_vbmi() ? few : "s8-spmm-4x1-avx512vnni");
  EXPECT_EQ(op.impl(9), "s8-spmm-4x1-avx512vnni");
  EXPECT_EQ(op.impl(15), "s8-spmm-4x1-avx512vnni");
  EXPECT_EQ(op.impl(16), "s8-spmm-16x1-amx");
  EXPECT_GT(op.memory_bytes(), op.packed_bytes());
}

// A few rows run a kernel with a packing of its own, on any host with VNNI. With VBMI, windows of
// input channels: shared by blocks 4 rows high (4x1, m <= 8), each channel's own otherwise (1x4,
// m <= 8; 1x1, m <= 32, or 16 beside an AMX kernel).
// Without it, row lanes for whole quads (1x4, m <= 2) and quad masks for scattered nonzeros (1x1,
// m <= 4). N:M never does.
TEST(SparseLinear, FewRowsRunKernelsOfTheirOwn) {
  std::mt19937 rng(460);
  const int64_t k = 256, n = 128;
  QuantParams q;
  q.w_scales.assign(size_t(n), 0.01f);
  SparseLinearOptions o;
  o.fallback = Fallback::Never;
  const bool vnni = max_isa() >= Isa::Avx512Vnni;
  struct Want {
    const char* pattern;
    const char* kernel;
    int64_t max_m;
  };
  const bool vbmi = avx512_vbmi(), amx = max_isa() >= Isa::Amx;
  for (const Want& want :
       {vbmi ? Want{"1x4", "s8-spmm-1x4-w-m8-avx512vnni", 8} : Want{"1x4", "s8-spmm-1x4-m2-avx512vnni", 2},
        vbmi ? Want{"1x1", "s8-spmm-1x1-w-m32-avx512vnni", amx ? 16 : 32} : Want{"1x1", "s8-spmm-1x1-m4-avx512vnni", 4},
        vbmi ? Want{"4x1", "s8-spmm-4x1-w-m8-avx512vnni", 8} : Want{"4x1", "", 0}, Want{"2:4", "", 0}}) {
    SCOPED_TRACE(want.pattern);
    auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse(want.pattern), 0.9, rng, 127);
    SparseLinear op(w.data.data(), n, k, Pattern::parse(want.pattern), q, nullptr, o);
    const bool few = vnni && want.max_m > 0;
    for (int64_t m = 1; m <= 33; ++m) {
      const std::string impl = op.impl(m);
      const bool own = impl == "s8-spmm-1x4-m2-avx512vnni" || impl == "s8-spmm-1x1-m4-avx512vnni" ||
                       impl == "s8-spmm-4x1-w-m8-avx512vnni" || impl == "s8-spmm-1x1-w-m32-avx512vnni" ||
                       impl == "s8-spmm-1x4-w-m8-avx512vnni";
      EXPECT_EQ(own, few && m <= want.max_m) << "m=" << m << " " << impl;
      if (own) {
        EXPECT_EQ(impl, want.kernel);
      }
    }
    if (few) {
      EXPECT_GT(op.memory_bytes(), op.packed_bytes());
    }
    if (vbmi && few) {  // at k = 3072 rows of X fill L1 past m = 7 (3136 bytes each): the 4-high
                        // windows leave to the main kernel; the lane windows take rows in blocks
      auto wide = bench::pruned_integers<int8_t>(n, 3072, Pattern::parse(want.pattern), 0.9, rng, 127);
      const SparseLinear op3072(wide.data.data(), n, 3072, Pattern::parse(want.pattern), q, nullptr, o);
      const int64_t last = std::string(want.pattern) == "4x1" ? 7 : want.max_m;  // the lane windows: any k
      EXPECT_EQ(op3072.impl(last), want.kernel);
      EXPECT_NE(op3072.impl(last + 1), want.kernel);
    }
    SparseLinearOptions forced = o;  // a forced kernel runs alone
    forced.kernel = op.sparse_kernel();
    EXPECT_EQ(SparseLinear(w.data.data(), n, k, Pattern::parse(want.pattern), q, nullptr, forced).impl(1),
              op.sparse_kernel());
  }
}

// At k = 3072 the lane-window kernel takes the rows of X (3136 bytes each) in blocks of 8: 13 as
// 8 + 5, 16 as 8 + 8, on 1 to 3 threads, each exact (under a cap without VBMI, whatever kernel runs
// must be exact too). At k = 4096, blocks of 6: 7 as 6 + 1, 16 as 6 + 6 + 4.
TEST(SparseLinear, FewRowsInBlocksGiveTheReference) {
  uint32_t seed = 470;
  for (int t : {1, 2, 3})
    for (int64_t m : {7, 8, 13, 16})
      for (OutType out : {OutType::U8, OutType::F32})
        s8_case("1x1", m, 3072, 72, Fallback::Never, t, Activation::GELU, out, true, seed++);
  for (int64_t m : {7, 16})
    s8_case("2x1", m, 4096, 40, Fallback::Never, 2, Activation::ReLU, OutType::S8, true, seed++);
}

// tune() times the AMX route against the VNNI route per bucket of m, even with Fallback::Never;
// the choice decides impl(), gives the reference result, and survives packed(). A route set by
// hand is taken as given, AMX at m = 1 included.
TEST(SparseLinear, RoutesAreTunedAndSaved) {
  std::mt19937 rng(451);
  const int64_t k = 256, n = 128;
  const Pattern p = Pattern::parse("4x1");
  auto w = bench::pruned_integers<int8_t>(n, k, p, 0.9, rng, 127);
  QuantParams q;
  q.x.zero_point = 7;
  q.w_scales.assign(size_t(n), 0.01f);
  SparseLinearOptions o;
  o.fallback = Fallback::Never;
  o.tune_m = {1, 64};
  const SparseLinear op(w.data.data(), n, k, p, q, nullptr, o);
  if (max_isa() < Isa::Amx) {
    EXPECT_TRUE(op.vnni_for_m().empty());
    GTEST_SKIP() << "routes exist only for AMX kernels";
  }
  ASSERT_EQ(op.vnni_for_m().size(), 2u);
  EXPECT_TRUE(op.dense_for_m().empty()) << "Fallback::Never times no dense path";
  const auto route_kernel = [&](int64_t m, bool vnni) {
    if (!vnni) return std::string("s8-spmm-16x1-amx");
    return std::string(m <= 4 ? "s8-spmm-4x1-m8-avx512vnni" : "s8-spmm-4x1-avx512vnni");
  };
  for (int64_t m : {1, 64}) EXPECT_EQ(op.impl(m), route_kernel(m, op.vnni_for_m().at(m))) << m;

  SparseLinearOptions plain;
  plain.fallback = Fallback::Never;
  const SparseLinear untuned(w.data.data(), n, k, p, q, nullptr, plain);
  const auto x = bench::random_vec<uint8_t>(size_t(64 * k), 0, 255, rng);
  std::vector<float> want(size_t(64 * n)), got(want.size());
  untuned.run(x.data(), 64, want.data());
  op.run(x.data(), 64, got.data());
  EXPECT_EQ(got, want);

  const SparseLinear loaded(op.packed(), plain);
  EXPECT_EQ(loaded.vnni_for_m(), op.vnni_for_m());
  for (int64_t m : {1, 64}) EXPECT_EQ(loaded.impl(m), op.impl(m)) << m;

  PackedLinear forced = op.packed();
  forced.vnni_for_m = {{1, false}, {64, true}};
  const SparseLinear by_hand(forced, plain);
  EXPECT_EQ(by_hand.impl(1), "s8-spmm-16x1-amx");
  EXPECT_EQ(by_hand.impl(64), "s8-spmm-4x1-avx512vnni");
  for (int64_t m : {1, 64}) {
    by_hand.run(x.data(), m, got.data());
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + m * n, want.begin())) << m;
  }
}

// oneDNN 2.6 computes the same INT8 arithmetic for dequantize without bias: exact match (with
// VNNI; without it the operator runs its own kernels, below).
TEST(SparseLinear, S8DenseFallbackExact) {
  s8_case("4x1", 40, 128, 64, Fallback::Always, 2, Activation::None, OutType::F32, false, 500);
  s8_case("4x1", 40, 128, 64, Fallback::Auto, 2, Activation::None, OutType::F32, false, 501);
}

// Tuning times the sparse path on the route it will take, the few-row kernels' own packings
// included, in scratch sized for every route: the windows layout at m = 4, k = 768 is 256 bytes
// larger than the M8 one the main route's small-m kernel uses (an overflow a benchmark hit). No
// bias: where the tuner keeps oneDNN, its bias rounds differently (S8DenseFallbackExact).
TEST(SparseLinear, TuningFewRowRoutesStaysInItsScratch) {
  uint32_t seed = 510;
  for (const char* p : {"4x1", "4x16", "1x1", "1x4"})
    for (int64_t m : {1, 2, 3, 4, 5, 8, 9, 16, 17})
      s8_case(p, m, 768, 64, Fallback::Auto, 1, Activation::None, OutType::F32, false, seed++);
}

// Without VNNI, oneDNN's INT8 saturates its 16-bit pair sums (x = 255 with w = -128 twice is past
// int16): the dense fallback, even Fallback::Always, must then run spruce's exact kernel. The
// weights here saturate it on every row. FP32's fallback is oneDNN everywhere.
TEST(SparseLinear, Int8FallsBackToOneDnnOnlyWhereItIsExact) {
  const int64_t m = 8, k = 64, n = 16;
  std::vector<int8_t> w(size_t(n * k), int8_t(-128));
  std::vector<uint8_t> x(size_t(m * k), uint8_t(255));
  QuantParams q;
  q.x.scale = 1.0f;
  q.w_scales.assign(size_t(n), 1.0f);
  SparseLinearOptions o;
  o.fallback = Fallback::Always;
  const SparseLinear op(w.data(), n, k, Pattern::parse("4x1"), q, nullptr, o);
  const bool onednn = op.impl(m).rfind("onednn:", 0) == 0;
  EXPECT_EQ(onednn, runtime::DenseMatmul::int8_exact()) << op.impl(m);
  EXPECT_EQ(op.has_dense_fallback(), onednn);
  std::vector<float> y(size_t(m * n));
  op.run(x.data(), m, y.data());
  for (float v : y) ASSERT_EQ(v, -128.0f * 255.0f * float(k)) << op.impl(m);
  const std::vector<float> wf(size_t(n * k), -1.0f);
  const SparseLinear f32(wf.data(), n, k, Pattern::parse("4x1"), nullptr, o);
  EXPECT_EQ(f32.impl(m).rfind("onednn:", 0), 0u) << f32.impl(m);
}

TEST(SparseLinear, BadInputThrows) {
  std::vector<float> w(16, 1.0f);
  EXPECT_THROW(SparseLinear(w.data(), 4, 4, Pattern::parse("2:4")), Error);  // breaks 2:4
  EXPECT_THROW(SparseLinear(w.data(), 0, 4, Pattern::parse("4x1")), Error);
  EXPECT_THROW(SparseLinear(static_cast<const float*>(nullptr), 4, 4, Pattern::parse("4x1")), Error);
  std::vector<int8_t> ws(16, 1);
  QuantParams q;
  q.w_scales = {1.0f};  // 1 scale for 4 channels
  EXPECT_THROW(SparseLinear(ws.data(), 4, 4, Pattern::parse("4x1"), q), Error);
  SparseLinearOptions o;
  o.kernel = "no-such-kernel";
  EXPECT_THROW(SparseLinear(w.data(), 4, 4, Pattern::parse("4x1"), nullptr, o), Error);
  SparseLinear op(w.data(), 4, 4, Pattern::parse("4x1"));
  std::vector<float> x(16), y(16);
  EXPECT_THROW(op.run(x.data(), 4, y.data(), 2, 4), Error);  // ldx < in_features
  EXPECT_THROW(op.run(static_cast<const float*>(nullptr), 4, y.data()), Error);
  std::vector<uint8_t> xu(16);
  EXPECT_THROW(op.run(xu.data(), 4, y.data()), Error);  // FP32 operator, u8 input
}

TEST(SparseLinear, Reports) {
  std::mt19937 rng(600);
  auto w = bench::pruned_integers<float>(64, 64, Pattern::parse("4x1"), 0.9, rng);
  SparseLinearOptions o;
  o.fallback = Fallback::Never;
  SparseLinear op(w.data.data(), 64, 64, Pattern::parse("4x1"), nullptr, o);
  EXPECT_GT(op.sparsity(), 0.8);
  EXPECT_LT(op.packed_bytes(), op.dense_bytes());
  EXPECT_EQ(op.impl(16), op.sparse_kernel());
  EXPECT_EQ(op.in_features(), 64);
}

// An INT8 4x1 @ 80% operator of n x k on 2 threads, and `inputs` u8 activations of m rows for it.
struct SharedOperatorCase {
  Matrix<int8_t> w;
  QuantParams q;
  std::vector<std::vector<uint8_t>> xs;
  SharedOperatorCase(int64_t m, int64_t k, int64_t n, int inputs, std::mt19937& rng)
      : w(bench::pruned_integers<int8_t>(n, k, Pattern::parse("4x1"), 0.8, rng, 127)) {
    q.x.scale = 0.02f;
    q.x.zero_point = 3;
    q.w_scales.assign(size_t(n), 0.01f);
    for (int t = 0; t < inputs; ++t) xs.push_back(bench::random_vec<uint8_t>(size_t(m * k), 0, 255, rng));
  }
  SparseLinear op(Fallback fb) const {
    SparseLinearOptions o;
    o.fallback = fb;
    o.threads = 2;
    return SparseLinear(w.data.data(), w.rows, w.cols, Pattern::parse("4x1"), q, nullptr, o);
  }
};

// run() is const and reentrant: four threads share one operator, on both paths, and each gets
// the reference result; the callers' OpenMP settings are as they were.
TEST(SparseLinear, RunIsReentrant) {
  std::mt19937 rng(700);
  const int64_t m = 37, k = 96, n = 80;
  const SharedOperatorCase c(m, k, n, 4, rng);
  const auto& xs = c.xs;
  for (Fallback fb : {Fallback::Never, Fallback::Always}) {
    const SparseLinear op = c.op(fb);
    std::vector<std::vector<float>> want(4, std::vector<float>(size_t(m * n))), got = want;
    for (int t = 0; t < 4; ++t) op.run(xs[size_t(t)].data(), m, want[size_t(t)].data());
    const int omp_before = omp_get_max_threads();
    for (int round = 0; round < 5; ++round) {  // oneDNN's own scratchpad failed one round in three
      std::vector<std::thread> threads;
      for (int t = 0; t < 4; ++t)
        threads.emplace_back([&, t] {
          std::vector<uint8_t> scratch(op.scratch_bytes(m));
          for (int r = 0; r < 20; ++r) op.run(xs[size_t(t)].data(), m, got[size_t(t)].data(), 0, 0, scratch);
        });
      for (auto& th : threads) th.join();
      for (int t = 0; t < 4; ++t)
        ASSERT_EQ(got[size_t(t)], want[size_t(t)]) << fallback_name(fb) << " thread " << t << " round " << round;
    }
    EXPECT_EQ(omp_get_max_threads(), omp_before);
  }
}

// Called from inside an active parallel region (a model running its passes side by side), run()
// does all of its work on the calling thread: with the split planned for its 2 threads, the
// nested team of one did half the tiles and left the rest of Y unwritten. Each outer thread gets
// the result of a call made outside, on both paths, sparse on the shapes that split rows and strips.
TEST(SparseLinear, RunInsideAParallelRegionDoesAllTheWork) {
  std::mt19937 rng(702);
  for (const int64_t m : {int64_t(300), int64_t(1024)}) {
    const int64_t k = 128, n = 96;
    const SharedOperatorCase c(m, k, n, 2, rng);
    const auto& xs = c.xs;
    for (Fallback fb : {Fallback::Never, Fallback::Always}) {
      const SparseLinear op = c.op(fb);
      std::vector<std::vector<float>> want(2, std::vector<float>(size_t(m * n))),
          got(2, std::vector<float>(size_t(m * n), -1e30f));
      for (int t = 0; t < 2; ++t) op.run(xs[size_t(t)].data(), m, want[size_t(t)].data());
#pragma omp parallel num_threads(2)
      {
        const int t = omp_get_thread_num();
        op.run(xs[size_t(t)].data(), m, got[size_t(t)].data());
      }
      for (int t = 0; t < 2; ++t)
        EXPECT_EQ(got[size_t(t)], want[size_t(t)]) << fallback_name(fb) << " m=" << m << " thread " << t;
    }
  }
}

TEST(SparseLinear, ScratchFromTheCaller) {
  std::mt19937 rng(701);
  auto w = bench::pruned_integers<float>(32, 64, Pattern::parse("4x1"), 0.5, rng);
  SparseLinearOptions o;
  o.fallback = Fallback::Never;
  const SparseLinear op(w.data.data(), 32, 64, Pattern::parse("4x1"), nullptr, o);
  std::vector<float> x(size_t(20 * 64), 1.0f), y(size_t(20 * 32)), y2(y.size());
  std::vector<uint8_t> scratch(op.scratch_bytes(20));
  ASSERT_GT(scratch.size(), 0u);
  op.run(x.data(), 20, y.data(), 0, 0, scratch);
  op.run(x.data(), 20, y2.data());
  EXPECT_EQ(y, y2);
  std::vector<uint8_t> small(scratch.size() - 1);
  EXPECT_THROW(op.run(x.data(), 20, y.data(), 0, 0, small), Error);
}

// Tuning happens at creation (or tune()), never in run(); its choices travel with the weights.
TEST(SparseLinear, TunedChoicesAreKeptAndSaved) {
  std::mt19937 rng(702);
  const Pattern p = Pattern::parse("4x1");
  auto w = bench::pruned_integers<float>(64, 128, p, 0.9, rng);
  SparseLinearOptions o;
  o.tune_m = {1, 100};
  SparseLinear op(w.data.data(), 64, 128, p, nullptr, o);
  ASSERT_EQ(op.dense_for_m().size(), 2u);  // buckets 1 and 128
  EXPECT_EQ(op.dense_for_m().count(1), 1u);
  EXPECT_EQ(op.dense_for_m().count(128), 1u);
  const std::string before = op.impl(100);
  std::vector<float> x(size_t(100 * 128), 0.5f), y(size_t(100 * 64));
  op.run(x.data(), 100, y.data());
  EXPECT_EQ(op.impl(100), before);
  EXPECT_EQ(op.dense_for_m().size(), 2u);  // run() did not tune
  // An untuned bucket takes the nearest tuned one's choice.
  EXPECT_EQ(op.impl(90) == before, true);
  const SparseLinear loaded(op.packed());
  EXPECT_FALSE(loaded.repacked());
  EXPECT_EQ(loaded.dense_for_m(), op.dense_for_m());
  EXPECT_EQ(loaded.impl(100), before);
  // Without tuning, Auto runs sparse.
  const SparseLinear untuned(w.data.data(), 64, 128, p);
  EXPECT_EQ(untuned.impl(100), untuned.sparse_kernel());
}

// Operators alike share a TuningCache's choices; one that differs in shape, sparsity, epilogue or
// threads times its own.
TEST(SparseLinear, AlikeOperatorsShareTheirTuning) {
  std::mt19937 rng(704);
  const Pattern p = Pattern::parse("4x1");
  const std::vector<int64_t> ms{1, 100};
  TuningCache cache;
  auto tuned = [&](int64_t n, int64_t k, double sparsity, Activation act, int threads) {
    auto w = bench::pruned_integers<float>(n, k, p, sparsity, rng);
    SparseLinearOptions o;
    o.activation = act;
    o.threads = threads;
    SparseLinear op(w.data.data(), n, k, p, nullptr, o);
    op.tune(ms, cache);
    return op.dense_for_m();
  };
  const auto first = tuned(64, 128, 0.9, Activation::None, 2);
  EXPECT_EQ(cache.timed(), 2u);
  EXPECT_EQ(cache.shared(), 0u);
  EXPECT_EQ(tuned(64, 128, 0.9, Activation::None, 2), first);  // other weights, alike
  EXPECT_EQ(cache.timed(), 2u);
  EXPECT_EQ(cache.shared(), 2u);
  tuned(128, 64, 0.9, Activation::None, 2);  // the shape
  tuned(64, 128, 0.5, Activation::None, 2);  // the sparsity
  tuned(64, 128, 0.9, Activation::ReLU, 2);  // the epilogue
  tuned(64, 128, 0.9, Activation::None, 1);  // the threads
  EXPECT_EQ(cache.timed(), 10u);
  EXPECT_EQ(cache.shared(), 2u);
  // A bucket the cache lacks is timed, the others shared.
  auto w = bench::pruned_integers<float>(64, 128, p, 0.9, rng);
  SparseLinearOptions two;
  two.threads = 2;
  SparseLinear op(w.data.data(), 64, 128, p, nullptr, two);
  const std::vector<int64_t> more{1, 100, 1000};
  op.tune(more, cache);
  EXPECT_EQ(cache.timed(), 11u);
  EXPECT_EQ(cache.shared(), 4u);
  EXPECT_EQ(op.dense_for_m().size(), 3u);
  EXPECT_EQ(op.dense_for_m().at(1), first.at(1));
  EXPECT_EQ(op.dense_for_m().at(128), first.at(128));
  // Without a fallback to time, nothing is timed or shared.
  two.fallback = Fallback::Never;
  SparseLinear never(w.data.data(), 64, 128, p, nullptr, two);
  never.tune(ms, cache);
  EXPECT_EQ(cache.timed() + cache.shared(), 15u);
}

TEST(SparseLinear, MemoryHeldIsReported) {
  std::mt19937 rng(703);
  const Pattern p = Pattern::parse("4x1");
  auto w = bench::pruned_integers<float>(64, 128, p, 0.9, rng);
  SparseLinearOptions never;
  never.fallback = Fallback::Never;
  const SparseLinear sparse_only(w.data.data(), 64, 128, p, nullptr, never);
  EXPECT_EQ(sparse_only.memory_bytes(), sparse_only.packed_bytes());
  EXPECT_EQ(sparse_only.packed_bytes(), sparse_only.weights().size_bytes());
  SparseLinearOptions always;
  always.fallback = Fallback::Always;
  const SparseLinear dense(w.data.data(), 64, 128, p, nullptr, always);
  std::vector<float> x(size_t(8 * 128), 0.5f), y(size_t(8 * 64));
  dense.run(x.data(), 8, y.data());  // makes oneDNN's copy of the weights
  EXPECT_GE(dense.memory_bytes(), dense.packed_bytes() + 64 * 128 * 4);
}

}  // namespace
}  // namespace spruce
