#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "spruce/calibration.hpp"
#include "spruce/error.hpp"
#include "spruce/quant.hpp"

using namespace spruce;

TEST(Calibration, ZeroIsExactAndTheRangeIsCovered) {
  for (auto [lo, hi] : std::vector<std::pair<float, float>>{{-1.f, 3.f}, {0.f, 6.f}, {0.5f, 2.f}, {-4.f, -1.f}}) {
    const U8Quant q = u8_quant_for_range(lo, hi);
    EXPECT_EQ(q.dequantize(q.quantize(0.f)), 0.f);
    EXPECT_NEAR(q.dequantize(q.quantize(std::min(lo, 0.f))), std::min(lo, 0.f), q.scale / 2 + 1e-6);
    EXPECT_NEAR(q.dequantize(q.quantize(std::max(hi, 0.f))), std::max(hi, 0.f), q.scale / 2 + 1e-6);
    for (float x = lo; x <= hi; x += (hi - lo) / 97)  // round-trip error within half a step
      EXPECT_LE(std::fabs(q.dequantize(q.quantize(x)) - x), q.scale / 2 + 1e-6);
  }
  const U8Quant relu = u8_quant_for_range(0.f, 2.55f);
  EXPECT_EQ(relu.zero_point, 0);
  EXPECT_NEAR(relu.scale, 0.01f, 1e-7);
  EXPECT_EQ(relu.quantize(100.f), 255);  // saturates
  EXPECT_EQ(relu.quantize(-5.f), 0);
}

TEST(Calibration, BulkQuantizeMatchesNearbyint) {
  const U8Quant q{0.037f, 113};
  std::vector<float> x;
  for (int i = -6000; i <= 6000; ++i) x.push_back(float(i) * 0.00123f);
  for (int t = -120; t <= 140; ++t) x.push_back((float(t) + 0.5f) * q.scale);  // ties
  std::vector<uint8_t> out(x.size());
  quantize_u8(x.data(), int64_t(x.size()), q, out.data());
  for (size_t i = 0; i < x.size(); ++i) {
    const float v = std::clamp(x[i] * (1.f / q.scale) + float(q.zero_point), 0.f, 255.f);
    ASSERT_EQ(out[i], uint8_t(std::nearbyint(v))) << "x=" << x[i];
    ASSERT_EQ(out[i], q.quantize(x[i]));
  }
}

// Found by tests/fuzz/model_file_fuzz: a NaN activation (a loaded model's NaN parameter) reached
// int32_t(NaN) in the clamp, UB. It quantizes to 0 now, as the AVX-512 quantizers' vmaxps gives.
TEST(Calibration, NanAndInfinitiesQuantizeLikeTheVectorCode) {
  const U8Quant q{0.5f, 10};
  const float nan = std::nanf(""), inf = INFINITY;
  EXPECT_EQ(q.quantize(nan), 0);
  EXPECT_EQ(q.quantize(-nan), 0);
  EXPECT_EQ(q.quantize(inf), 255);
  EXPECT_EQ(q.quantize(-inf), 0);
  // Three times over: the first 16 values take the vector path, the rest the scalar tail.
  std::vector<float> x;
  std::vector<uint8_t> want;
  for (int r = 0; r < 3; ++r) {
    x.insert(x.end(), {1.f, nan, inf, -inf, -nan, 2.f});
    want.insert(want.end(), {12, 0, 255, 0, 0, 14});
  }
  std::vector<uint8_t> out(x.size());
  quantize_u8(x.data(), int64_t(x.size()), q, out.data());
  EXPECT_EQ(out, want);
}

TEST(Calibration, MinMaxAndPercentileObservers) {
  const uint64_t seed = 99;
  SCOPED_TRACE(seed);
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(1.f, 1.f);
  ActivationObserver obs(1 << 14);
  std::vector<float> batch(1000);
  for (int b = 0; b < 50; ++b) {
    for (auto& x : batch) x = d(rng);
    if (b == 7) batch[3] = 80.f;  // one outlier
    obs.observe(batch.data(), int64_t(batch.size()));
  }
  EXPECT_EQ(obs.count(), 50000);
  EXPECT_EQ(obs.max(), 80.f);
  const U8Quant mm = obs.choose(CalibrationMethod::MinMax);
  const U8Quant pc = obs.choose(CalibrationMethod::Percentile, 99.9);
  EXPECT_NEAR(mm.scale * 255.f, 80.f - obs.min(), 1e-3);
  // The 99.9th percentile of N(1, 1) is about 4.1 and the 0.1th about -2.1: the outlier is clipped.
  EXPECT_NEAR(pc.scale * 255.f, 6.2f, 0.6f);
  EXPECT_LT(pc.scale, mm.scale / 5);
}

// The reservoir is a uniform sample of everything observed, and the same however the values
// arrive: one call, or calls of any size.
TEST(Calibration, TheReservoirIsUniformAndIndependentOfTheCalls) {
  const int64_t n = 1000000;
  std::vector<float> values(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) values[size_t(i)] = float(i - n / 2);  // in the order observed
  auto observed = [&](int64_t chunk) {
    ActivationObserver obs(1 << 12);
    for (int64_t i = 0; i < n; i += chunk) obs.observe(values.data() + i, std::min(chunk, n - i));
    return obs;
  };
  const ActivationObserver whole = observed(n);
  EXPECT_EQ(whole.count(), n);
  EXPECT_EQ(whole.min(), float(-n / 2));
  EXPECT_EQ(whole.max(), float(n / 2 - 1));
  // The cuts of the 90th percentile (the low one the 10th) land near 10% and 90% of the values.
  auto cuts = [&](const ActivationObserver& obs, double p) {
    const U8Quant q = obs.choose(CalibrationMethod::Percentile, p);
    const double low = -double(q.zero_point) * q.scale;
    return std::pair{low / double(n) + 0.5, (low + 255.0 * q.scale) / double(n) + 0.5};
  };
  EXPECT_NEAR(cuts(whole, 90.0).first, 0.10, 0.02);
  EXPECT_NEAR(cuts(whole, 90.0).second, 0.90, 0.02);
  for (int64_t chunk : {1, 7, 4096, 100000}) {
    SCOPED_TRACE(chunk);
    const ActivationObserver split = observed(chunk);
    for (double p : {60.0, 90.0, 99.0}) {
      const U8Quant a = whole.choose(CalibrationMethod::Percentile, p),
                    b = split.choose(CalibrationMethod::Percentile, p);
      EXPECT_EQ(a.scale, b.scale);
      EXPECT_EQ(a.zero_point, b.zero_point);
    }
  }
  // Later values are as likely to be kept as early ones: the sample's median is the values'.
  const auto [below, above] = cuts(observed(333), 50.5);
  EXPECT_NEAR((below + above) / 2, 0.5, 0.03);
}

TEST(Calibration, BadInputIsAnError) {
  ActivationObserver obs;
  EXPECT_THROW(obs.choose(CalibrationMethod::MinMax), Error);
  const float bad[2] = {1.f, NAN};
  EXPECT_THROW(obs.observe(bad, 2), Error);
  const float ok[1] = {1.f};
  obs.observe(ok, 1);
  EXPECT_THROW(obs.choose(CalibrationMethod::Percentile, 20.0), Error);
  EXPECT_THROW(parse_calibration("kl"), Error);
}

// The epilogue's GELU (core/gelu.hpp, shared with the vector epilogues) against the erf form in
// double precision: as close as float's erf in x/2 (1 + erf(x/√2)) gets, exact at the ends.
TEST(Activation, GeluFollowsTheErfFormClosely) {
  auto exact = [](double x) { return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0))); };
  double worst = 0;
  for (int i = -120000; i <= 120000; ++i) {
    const float x = float(i) * 1e-4f;  // [-12, 12]
    const double want = exact(x), got = apply_activation(x, Activation::GELU);
    worst = std::max(worst, std::fabs(got - want) / std::max(std::fabs(double(x)), 1.0));
  }
  EXPECT_LT(worst, 2.5e-7);  // 1.7e-7 measured: the rational erf's 5.4e-8 plus float rounding
  EXPECT_EQ(apply_activation(0.0f, Activation::GELU), 0.0f);
  for (float x : {5.66f, 8.0f, 30.0f, 1e6f}) {  // past the fit's bound: x, and 0 on the left
    EXPECT_EQ(apply_activation(x, Activation::GELU), x);
    EXPECT_EQ(apply_activation(-x, Activation::GELU), 0.0f);
  }
  EXPECT_EQ(apply_activation(INFINITY, Activation::GELU), INFINITY);
  EXPECT_TRUE(std::isnan(apply_activation(NAN, Activation::GELU)));
  for (float x : {-3.0f, -0.5f, 0.25f, 2.0f}) EXPECT_NEAR(apply_activation(x, Activation::GELU), exact(x), 1e-6);
}
