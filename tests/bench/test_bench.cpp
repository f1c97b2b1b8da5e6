// The benchmark library (include/spruce/bench.hpp): the pruned-weight generator keeps its
// promises (exact block count, N:M, determinism), the suites and shapes parse, verification can
// fail, and a whole case runs verified.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <string>
#include <utility>

#include "spruce/bench.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"

namespace spruce::bench {
namespace {

// Blocks of the grid whose every element is zero, and their elements.
std::pair<int64_t, int64_t> zero_blocks(const MatrixF& w, const Pattern& p) {
  const BlockGrid g = block_grid(p, w.rows, w.cols);
  int64_t blocks = 0, elems = 0;
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j) {
      bool all = true;
      for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) all = all && w(r, c) == 0.0f;
      if (all) ++blocks, elems += g.block_elems(i, j);
    }
  return {blocks, elems};
}

TEST(PrunedWeights, ZeroesExactlyRoundedFractionOfWholeBlocks) {
  std::mt19937 rng(1);
  for (const char* ps : {"1x1", "4x1", "1x4", "4x16", "3x5", "channelx1", "1xchannel"})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{37, 70}, {64, 64}, {1, 9}})
      for (double s : {0.0, 0.3, 0.5, 0.9, 1.0}) {
        SCOPED_TRACE(std::string(ps) + " " + std::to_string(rows) + "x" + std::to_string(cols) + " " +
                     std::to_string(s));
        const Pattern p = Pattern::parse(ps);
        const MatrixF w = pruned_weights(rows, cols, p, s, rng, {Values::Integers, 3});
        const int64_t blocks = block_grid(p, rows, cols).blocks();
        const auto [zeroed, zeroed_elems] = zero_blocks(w, p);
        EXPECT_EQ(zeroed, std::llround(s * double(blocks)));
        int64_t zeros = 0;  // integer values are never 0: every zero comes from a zeroed block
        for (float v : w.data) {
          EXPECT_TRUE(v == 0.0f || (std::abs(v) <= 3.0f && v == std::round(v))) << v;
          zeros += v == 0.0f;
        }
        EXPECT_EQ(zeros, zeroed_elems) << "a zero outside a zeroed block";
      }
}

TEST(PrunedWeights, KeepsNRandomOfEveryM) {
  std::mt19937 rng(2);
  for (const char* ps : {"2:4", "1:4", "3:8"}) {
    const Pattern p = Pattern::parse(ps);
    const int64_t rows = 40, cols = 4 * p.m() + 3;  // a partial last group
    const MatrixF w = pruned_weights(rows, cols, p, 0.0, rng, {Values::Integers, 5});
    std::vector<int64_t> kept_at(size_t(p.m()), 0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c0 = 0; c0 < cols; c0 += p.m()) {
        int64_t kept = 0;
        const int64_t end = std::min(cols, c0 + p.m());
        for (int64_t c = c0; c < end; ++c) {
          kept += w(r, c) != 0.0f;
          if (w(r, c) != 0.0f) ++kept_at[size_t(c - c0)];
        }
        EXPECT_EQ(kept, std::min<int64_t>(p.n(), end - c0)) << ps << " row " << r << " group at " << c0;
      }
    for (int64_t at : kept_at) EXPECT_GT(at, 0) << ps << ": the kept positions are random, so each is used";
  }
}

TEST(PrunedWeights, DeterministicPerSeed) {
  const Pattern p = Pattern::parse("4x1");
  auto make = [&](uint32_t seed, Values v) {
    std::mt19937 rng(seed);
    return pruned_weights(64, 48, p, 0.7, rng, {v, 3}).data;
  };
  for (Values v : {Values::Uniform, Values::Integers}) {
    EXPECT_EQ(make(5, v), make(5, v));
    EXPECT_NE(make(5, v), make(6, v));
  }
  // The integer-valued matrix is the same whichever type holds it.
  std::mt19937 a(9), b(9);
  const auto wf = pruned_integers<float>(20, 30, p, 0.5, a, 127);
  const auto w8 = pruned_integers<int8_t>(20, 30, p, 0.5, b, 127);
  for (size_t i = 0; i < wf.data.size(); ++i) ASSERT_EQ(wf.data[i], float(w8.data[i]));
}

TEST(PrunedWeights, UniformValuesAndEmptyRow) {
  std::mt19937 rng(3);
  const MatrixF w = pruned_weights(16, 32, Pattern::parse("1x4"), 0.0, rng, {Values::Uniform, 3, true});
  for (int64_t c = 0; c < w.cols; ++c) EXPECT_EQ(w(0, c), 0.0f);
  int64_t zeros = 0;
  for (int64_t r = 1; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) {
      EXPECT_LE(std::abs(w(r, c)), 1.0f);
      zeros += w(r, c) == 0.0f;
    }
  EXPECT_EQ(zeros, 0);
}

TEST(PrunedWeights, RejectsBadArguments) {
  std::mt19937 rng(4);
  const Pattern p = Pattern::parse("4x1");
  EXPECT_THROW(pruned_weights(4, 4, p, 1.5, rng), Error);
  EXPECT_THROW(pruned_weights(4, 4, p, -0.1, rng), Error);
  EXPECT_THROW(pruned_weights(4, 4, p, std::nan(""), rng), Error);
  EXPECT_THROW(pruned_integers<int8_t>(4, 4, p, 0.5, rng, 128), Error);
  EXPECT_THROW(pruned_integers<float>(4, 4, p, 0.5, rng, 0), Error);
}

TEST(Suites, NamesShapesAndAll) {
  size_t total = 0;
  for (const auto& name : suite_names()) {
    const auto s = suite(name);
    EXPECT_FALSE(s.empty()) << name;
    total += s.size();
  }
  EXPECT_EQ(suite("all").size(), total);
  EXPECT_EQ(suite("bert-base").front(), (Shape{128, 768, 768}));
  EXPECT_EQ(suite("bert-base").size(), 9u);
  try {
    suite("gpt");
    FAIL() << "an unknown suite was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("bert-base, bert-large, dlrm-top, dlrm-bottom, small-batch or all"),
              std::string::npos)
        << e.what();
  }
}

TEST(Suites, ParsesShapes) {
  EXPECT_EQ(parse_shape("128x768x3072"), (Shape{128, 768, 3072}));
  EXPECT_EQ(to_string(Shape{1, 2, 3}), "1x2x3");
  for (const char* bad : {"", "128x768", "0x1x1", "1x-2x3", "1x2x3x4", "1x2x3 ", "axbxc", "1*2*3", " 1x2x3", "1x +2x3",
                          "+1x2x3", "1 x2x3"})
    EXPECT_THROW(parse_shape(bad), Error) << bad;
}

TEST(Verification, CatchesACorruptedResult) {
  const Shape s{3, 100, 5};
  const Pattern p = Pattern::parse("4x1");
  std::vector<float> want(size_t(s.m * s.n));
  for (size_t i = 0; i < want.size(); ++i) want[i] = float(i) - 7.0f;
  std::vector<float> y = want;
  EXPECT_NO_THROW(check_result(s, p, true, y.data(), want.data()));
  EXPECT_NO_THROW(check_result(s, p, false, y.data(), want.data()));
  // FP32 allows sums in another order (1e-5 * k relative), INT8 nothing.
  y[4] = want[4] + 1e-4f;
  EXPECT_NO_THROW(check_result(s, p, false, y.data(), want.data()));
  EXPECT_THROW(check_result(s, p, true, y.data(), want.data()), Error);
  y[4] = want[4] + 1.0f;
  try {
    check_result(s, p, false, y.data(), want.data());
    FAIL() << "a corrupted FP32 result passed";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
    EXPECT_NE(std::string(e.what()).find("3x100x5 4x1 at 4"), std::string::npos) << e.what();
  }
  y = want;
  y.back() = std::nanf("");
  EXPECT_THROW(check_result(s, p, false, y.data(), want.data()), Error);
}

TEST(Timing, RoundsAndMedians) {
  int calls = 0;
  const auto t = time_rounds({[&] { ++calls; }, [&] { ++calls; }}, 5, 2);
  EXPECT_EQ(calls, 2 * 7);
  ASSERT_EQ(t.size(), 2u);
  EXPECT_EQ(t[0].size(), 5u);
  // Every path once a round, in orders that vary, so that no path always follows the same one.
  std::vector<int> seq;
  time_rounds({[&] { seq.push_back(0); }, [&] { seq.push_back(1); }, [&] { seq.push_back(2); }}, 20, 0);
  ASSERT_EQ(seq.size(), 60u);
  std::set<std::vector<int>> orders;
  for (size_t r = 0; r < 20; ++r) {
    std::vector<int> round(seq.begin() + long(3 * r), seq.begin() + long(3 * r + 3));
    orders.insert(round);
    std::sort(round.begin(), round.end());
    EXPECT_EQ(round, (std::vector<int>{0, 1, 2})) << "round " << r;
  }
  EXPECT_GE(orders.size(), 4u);
  EXPECT_EQ(median({3, 1, 2}), 2);
  EXPECT_EQ(median({4, 1, 3, 2}), 3);  // the upper median
  // The median of per-round ratios, not the ratio of medians.
  EXPECT_EQ(median_ratio({2, 10, 4}, {1, 1, 4}), 2);
  EXPECT_THROW(median({}), Error);
  EXPECT_GE(default_reps(Shape{1, 1, 1}), 31);
  EXPECT_LE(default_reps(Shape{1, 1, 1}), 301);
  EXPECT_EQ(default_reps(Shape{2048, 4096, 4096}), 31);
}

TEST(RunCase, VerifiesAndTimesEachDtype) {
  for (bool int8 : {true, false})
    for (const char* ps : {"4x1", "2:4", "1x1"}) {
      SCOPED_TRACE(std::string(ps) + (int8 ? " int8" : " f32"));
      std::mt19937 rng(42);
      const Pattern p = Pattern::parse(ps);
      const double sp = p.is_nm() ? p.natural_sparsity() : 0.8;
      const Result r = run_case({{16, 64, 48}, p, sp, int8, 1, 3}, rng);
      EXPECT_EQ(r.reps, 3);
      EXPECT_NEAR(r.sparsity, sp, 0.02);
      EXPECT_FALSE(r.sparse_impl.empty());
      EXPECT_FALSE(r.dense_impl.empty());
      EXPECT_FALSE(r.operator_impl.empty());
      EXPECT_GT(r.sparse_us, 0);
      EXPECT_GT(r.dense_us, 0);
      EXPECT_GT(r.speedup, 0);
      EXPECT_GT(r.eff_gops, 0);
      if (!int8) {
        EXPECT_EQ(r.dense_us, r.dense_f32_us);
      }
    }
}

// Every figure names its host: the class, both ISAs, and the CPU with its family and model, which
// tell apart hosts of one class (Zen 4 and Zen 5 are both "AVX-512 VNNI").
TEST(HostLine, NamesClassIsasAndCpu) {
  const std::string line = host_line();
  EXPECT_EQ(line.rfind(std::string(host_class()) + " (spruce " + std::string(isa_name(max_isa())) + ", oneDNN ", 0), 0u)
      << line;
  const std::string cpu(cpu_description());
  EXPECT_EQ(line.substr(line.size() - cpu.size()), cpu) << line;
  EXPECT_NE(line.find(") on "), std::string::npos) << line;
  EXPECT_NE(cpu.find(", family "), std::string::npos) << cpu;
  EXPECT_NE(cpu.find(" model "), std::string::npos) << cpu;
  EXPECT_NE(cpu.front(), ' ') << cpu;
}

}  // namespace
}  // namespace spruce::bench
