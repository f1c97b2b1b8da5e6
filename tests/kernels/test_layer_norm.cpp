// Every LayerNorm kernel the CPU (and SPRUCE_MAX_ISA) allows against a double-precision oracle,
// over widths around the vector sizes (8, 16 and their pairs), strides, with and without the
// residual, gamma and beta, large offsets and tiny variances, in place; then the operator's
// threading and checks. Seeds are fixed and printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "coverage.hpp"
#include "kernels/kernel.hpp"
#include "kernels/layer_norm.hpp"
#include "spruce/error.hpp"
#include "spruce/layer_norm.hpp"

namespace spruce::kernels {
namespace {

const auto* const kCoverage = ::testing::AddGlobalTestEnvironment(new coverage::KernelCoverage(Op::LayerNorm, 100));

// Row r of the result in double, from the same float inputs (v = x + residual rounded to float,
// as every kernel stores it).
std::vector<double> oracle(const LayerNormTask& t, const std::vector<float>& x, const std::vector<float>& res) {
  std::vector<double> out(size_t(t.rows * t.width));
  for (int64_t r = 0; r < t.rows; ++r) {
    std::vector<double> v(size_t(t.width));
    double mean = 0, var = 0;
    for (int64_t c = 0; c < t.width; ++c) {
      const float xv = x[size_t(r * t.ld_x + c)];
      v[size_t(c)] = t.residual ? double(xv + res[size_t(r * t.ld_residual + c)]) : double(xv);
      mean += v[size_t(c)] / double(t.width);
    }
    for (double e : v) var += (e - mean) * (e - mean) / double(t.width);
    const double rstd = 1 / std::sqrt(var + double(t.eps));
    for (int64_t c = 0; c < t.width; ++c)
      out[size_t(r * t.width + c)] =
          (v[size_t(c)] - mean) * rstd * (t.gamma ? t.gamma[c] : 1.0) + (t.beta ? t.beta[c] : 0.0);
  }
  return out;
}

struct Inputs {
  std::vector<float> x, res, gamma, beta;
};

// Rows of N(offset, spread^2) with per-row offsets up to `offset`; gamma near 1, beta near 0.
Inputs random_inputs(int64_t rows, int64_t ld, int64_t width, float offset, float spread, std::mt19937& rng) {
  std::normal_distribution<float> n(0.f, 1.f);
  Inputs in;
  in.x.resize(size_t(rows * ld)), in.res.resize(size_t(rows * ld));
  for (int64_t r = 0; r < rows; ++r) {
    const float row_offset = offset * n(rng);
    for (int64_t c = 0; c < ld; ++c) {
      in.x[size_t(r * ld + c)] = row_offset + spread * n(rng);
      in.res[size_t(r * ld + c)] = spread * n(rng);
    }
  }
  for (int64_t c = 0; c < width; ++c) in.gamma.push_back(1.f + 0.3f * n(rng)), in.beta.push_back(0.2f * n(rng));
  return in;
}

std::vector<const Kernel*> layer_norm_kernels() {
  std::vector<const Kernel*> ks;
  for (const Kernel& k : registry())
    if (k.op == Op::LayerNorm && k.isa <= max_isa()) ks.push_back(&k);
  return ks;
}

TEST(LayerNorm, EveryKernelMatchesTheOracle) {
  int checked = 0;
  for (const Kernel* kp : layer_norm_kernels()) {
    const Kernel& kernel = *kp;
    for (int64_t width : {1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 47, 48, 63, 64, 65, 100, 384, 1000})
      for (int variant = 0; variant < 6; ++variant) {
        // variant: bit 0 residual, bit 1 gamma and beta, 4 and 5: large offset, tiny spread, big eps.
        const uint32_t seed = uint32_t(width * 100 + variant);
        std::mt19937 rng(seed);
        const int64_t rows = 1 + int64_t(rng() % 5), ld = width + int64_t(rng() % 3) * 5;
        const bool hard = variant >= 4;
        const Inputs in = random_inputs(rows, ld, width, hard ? 20.f : 1.f, hard ? 0.05f : 2.f, rng);
        const int64_t ld_out = width + 3;
        std::vector<float> out(size_t(rows * ld_out), 7.f);
        LayerNormTask t;
        t.x = in.x.data(), t.ld_x = ld;
        if (variant & 1) t.residual = in.res.data(), t.ld_residual = ld;
        if (variant & 2) t.gamma = in.gamma.data(), t.beta = in.beta.data();
        t.eps = variant == 5 ? 1e-6f : 1e-12f;
        t.rows = rows, t.width = width;
        t.out = out.data(), t.ld_out = ld_out;
        kernel.layer_norm()(t);
        coverage::count_case(kernel);
        const auto want = oracle(t, in.x, in.res);
        double worst = 0;
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t c = 0; c < width; ++c)
            worst = std::max(worst, std::abs(out[size_t(r * ld_out + c)] - want[size_t(r * width + c)]) /
                                        (1 + std::abs(want[size_t(r * width + c)])));
          for (int64_t c = width; c < ld_out; ++c)
            ASSERT_EQ(out[size_t(r * ld_out + c)], 7.f) << kernel.name << " wrote past a row, seed " << seed;
        }
        // Normalized rows are O(1); FP32 sums of up to 1000 terms. A tiny spread over a large
        // offset loses the digits below float's resolution of the offset before any kernel sees them.
        EXPECT_LT(worst, hard ? 1e-3 : 2e-5)
            << kernel.name << " width " << width << " variant " << variant << " seed " << seed;
        ++checked;
      }
  }
  EXPECT_GT(checked, 100);
}

// A constant row has variance 0: the result is beta (the deviation is exactly 0), whatever eps.
TEST(LayerNorm, ConstantRowGivesBeta) {
  for (const Kernel* kp : layer_norm_kernels()) {
    const int64_t width = 37;
    std::vector<float> x(size_t(width), 3.5f), beta(static_cast<size_t>(width)), out(size_t(width), -1.f);
    for (int64_t c = 0; c < width; ++c) beta[size_t(c)] = 0.1f * float(c);
    LayerNormTask t;
    t.x = x.data(), t.ld_x = width, t.beta = beta.data(), t.eps = 1e-12f;
    t.rows = 1, t.width = width, t.out = out.data(), t.ld_out = width;
    kp->layer_norm()(t);
    EXPECT_EQ(out, beta) << kp->name;
  }
}

// In place over x or over the residual gives the bytes of a separate output.
TEST(LayerNorm, InPlaceMatchesSeparateOutput) {
  for (const Kernel* kp : layer_norm_kernels()) {
    std::mt19937 rng(11);
    const int64_t rows = 3, width = 70;
    const Inputs in = random_inputs(rows, width, width, 1.f, 1.f, rng);
    LayerNormTask t;
    t.ld_x = t.ld_residual = t.ld_out = width;
    t.gamma = in.gamma.data(), t.beta = in.beta.data(), t.rows = rows, t.width = width;
    std::vector<float> separate(in.x.size()), x = in.x, res = in.res;
    t.x = in.x.data(), t.residual = in.res.data(), t.out = separate.data();
    kp->layer_norm()(t);
    t.x = x.data(), t.out = x.data();
    kp->layer_norm()(t);
    EXPECT_EQ(x, separate) << kp->name << " in place over x";
    t.x = in.x.data(), t.residual = res.data(), t.out = res.data();
    kp->layer_norm()(t);
    EXPECT_EQ(res, separate) << kp->name << " in place over the residual";
  }
}

// The operator: any thread count gives the bytes of one kernel call over all rows.
TEST(LayerNorm, OperatorThreadsOverRows) {
  const int64_t rows = 1000, width = 384;
  std::mt19937 rng(5);
  const Inputs in = random_inputs(rows, width, width, 1.f, 1.f, rng);
  LayerNormArgs a;
  a.rows = rows, a.width = width;
  a.x = in.x.data(), a.ld_x = width, a.residual = in.res.data(), a.ld_residual = width;
  a.gamma = in.gamma.data(), a.beta = in.beta.data(), a.eps = 1e-12f, a.ld_out = width;
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    outs.emplace_back(in.x.size(), -1.f);
    a.out = outs.back().data(), a.threads = threads;
    layer_norm_f32(a);
  }
  EXPECT_EQ(outs[0], outs[1]);
  EXPECT_EQ(outs[0], outs[2]);
  std::vector<float> one(in.x.size());
  LayerNormTask t;
  t.x = a.x, t.ld_x = width, t.residual = a.residual, t.ld_residual = width;
  t.gamma = a.gamma, t.beta = a.beta, t.eps = a.eps, t.rows = rows, t.width = width;
  t.out = one.data(), t.ld_out = width;
  const Kernel* chosen = find(layer_norm_kernel_name());
  ASSERT_NE(chosen, nullptr);
  chosen->layer_norm()(t);
  EXPECT_EQ(outs[0], one) << chosen->name;
}

TEST(LayerNorm, OperatorRejectsBadSizes) {
  std::vector<float> x(64);
  LayerNormArgs a;
  a.rows = 2, a.width = 16, a.x = x.data(), a.ld_x = 16, a.out = x.data() + 32, a.ld_out = 8;
  EXPECT_THROW(layer_norm_f32(a), Error);  // out's stride below the width
  a.ld_out = 16, a.width = 0;
  EXPECT_THROW(layer_norm_f32(a), Error);
  a.width = 16, a.residual = x.data(), a.ld_residual = 4;
  EXPECT_THROW(layer_norm_f32(a), Error);
  a.residual = nullptr, a.eps = -1.f;
  EXPECT_THROW(layer_norm_f32(a), Error);
  a.eps = NAN;
  EXPECT_THROW(layer_norm_f32(a), Error);
  a.eps = 1e-5f, a.x = nullptr;
  EXPECT_THROW(layer_norm_f32(a), Error);
  a.rows = 0;
  EXPECT_NO_THROW(layer_norm_f32(a));  // nothing to do
}

}  // namespace
}  // namespace spruce::kernels
