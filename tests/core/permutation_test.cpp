// Channel orders for N:M patterns: each result is a permutation that keeps columns in their
// segments and never keeps less than the original order, checked against a scorer written here
// (a sort per row and group) and against the mask core's own N:M mask.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>

#include "random_matrix.hpp"
#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/permutation.hpp"

using namespace spruce;
using spruce::test::abs_of;
using spruce::test::random_matrix;

namespace {

// What an N:M mask keeps with the columns in `order`: per row and group, the N largest of M.
double reference_kept(const Pattern& p, const MatrixF& s, const std::vector<int64_t>& order) {
  double kept = 0;
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t g = 0; g < s.cols; g += p.m()) {
      std::vector<float> v;
      for (int i = 0; i < p.m(); ++i) v.push_back(s(r, order[static_cast<size_t>(g + i)]));
      std::sort(v.begin(), v.end(), std::greater<float>());
      for (int i = 0; i < p.n(); ++i) kept += v[static_cast<size_t>(i)];
    }
  return kept;
}

std::vector<int64_t> identity(int64_t n) {
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t{0});
  return order;
}

}  // namespace

TEST(ChannelOrder, IsAPermutationWithinSegmentsThatKeepsAtLeastAsMuch) {
  struct Case {
    const char* pattern;
    int64_t rows, cols, segment;
  };
  // 2:4 takes the fast path; 1:4, 3:4 and 2:8 the general one. Odd row counts cover the lane tails.
  const Case cases[] = {{"2:4", 1, 8, 8},    {"2:4", 7, 16, 16}, {"2:4", 33, 64, 64}, {"2:4", 13, 96, 32},
                        {"2:4", 64, 128, 8}, {"2:4", 9, 40, 20}, {"1:4", 11, 32, 32}, {"3:4", 5, 24, 12},
                        {"2:8", 17, 64, 64}, {"2:4", 3, 12, 4}};
  uint64_t seed = 7100;
  for (const Case& c : cases) {
    ++seed;
    SPRUCE_SEED_TRACE(seed);
    SCOPED_TRACE(::testing::Message() << c.pattern << " " << c.rows << "x" << c.cols << " segment " << c.segment);
    const Pattern p = Pattern::parse(c.pattern);
    const MatrixF s = abs_of(random_matrix(c.rows, c.cols, seed));
    const ChannelOrder o = search_nm_channel_order(p, s.view(), c.segment);
    std::vector<int64_t> sorted = o.order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity(c.cols));
    for (int64_t j = 0; j < c.cols; ++j) EXPECT_EQ(o.order[static_cast<size_t>(j)] / c.segment, j / c.segment) << j;
    const double before = reference_kept(p, s, identity(c.cols)), after = reference_kept(p, s, o.order);
    EXPECT_NEAR(o.kept_before, before, 1e-4 * before);
    EXPECT_NEAR(o.kept_after, after, 1e-4 * after);
    EXPECT_NEAR(nm_kept_score(p, s.view(), o.order), after, 1e-4 * after);
    EXPECT_GE(after, before);
    EXPECT_NEAR(o.total, std::accumulate(s.data.begin(), s.data.end(), 0.0), 1e-4 * o.total);
    EXPECT_GE(o.passes, 1);
    // A segment of 4 holds one group: nothing can move.
    if (c.segment == p.m()) {
      EXPECT_EQ(o.order, identity(c.cols));
    }
  }
}

TEST(ChannelOrder, TheOriginalOrderKeepsWhatTheNmMaskKeeps) {
  const Pattern p = Pattern::parse("2:4");
  const MatrixF s = abs_of(random_matrix(19, 44, 7200));
  const Mask mask = local_mask(p, s.view(), 0.5);
  double kept = 0;
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c = 0; c < s.cols; ++c) kept += mask(r, c) ? s(r, c) : 0.0;
  EXPECT_NEAR(nm_kept_score(p, s.view(), identity(s.cols)), kept, 1e-4 * kept);
}

// Four heavy columns side by side: in the original order one group holds them all and must prune
// two in every row. The best order puts two in each group, and keeps every heavy score.
TEST(ChannelOrder, SpreadsHeavyColumnsThatShareAGroup) {
  const Pattern p = Pattern::parse("2:4");
  MatrixF s(16, 8);
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c = 0; c < s.cols; ++c) s(r, c) = c < 4 ? 10.0f + float(r % 3) : 1.0f + 0.1f * float((r + c) % 5);
  const ChannelOrder o = search_nm_channel_order(p, s.view(), 8);
  for (int64_t g = 0; g < 8; g += 4) {
    int heavy = 0;
    for (int i = 0; i < 4; ++i) heavy += o.order[static_cast<size_t>(g + i)] < 4;
    EXPECT_EQ(heavy, 2) << "group at " << g;
  }
  double heavy_total = 0;
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c = 0; c < 4; ++c) heavy_total += s(r, c);
  EXPECT_NEAR(o.kept_after, heavy_total, 1e-3);
  EXPECT_LT(o.kept_before, 0.6 * o.kept_after);
  // In segments of 4 the heavy columns cannot leave theirs, and nothing changes.
  const ChannelOrder stuck = search_nm_channel_order(p, s.view(), 4);
  EXPECT_EQ(stuck.order, identity(8));
  EXPECT_DOUBLE_EQ(stuck.kept_after, stuck.kept_before);
}

// On eight columns every split into two groups can be tried: the search never beats the best one,
// and a single exchange reaches it in most random cases.
TEST(ChannelOrder, NeverBeatsTheBestSplitOfTwoGroups) {
  const Pattern p = Pattern::parse("2:4");
  int best_found = 0;
  for (uint64_t seed = 7300; seed < 7340; ++seed) {
    SPRUCE_SEED_TRACE(seed);
    const MatrixF s = abs_of(random_matrix(6, 8, seed));
    double best = 0;
    for (int bits = 0; bits < 256; ++bits) {
      if (__builtin_popcount(static_cast<unsigned>(bits)) != 4) continue;
      std::vector<int64_t> order;
      for (int c = 0; c < 8; ++c)
        if (bits & (1 << c)) order.push_back(c);
      for (int c = 0; c < 8; ++c)
        if (!(bits & (1 << c))) order.push_back(c);
      best = std::max(best, reference_kept(p, s, order));
    }
    const ChannelOrder o = search_nm_channel_order(p, s.view(), 8);
    EXPECT_LE(o.kept_after, best + 1e-4);
    best_found += o.kept_after > best - 1e-4;
  }
  EXPECT_GE(best_found, 30);  // of 40
}

TEST(ChannelOrder, RefusesWhatItCannotOrder) {
  const MatrixF s = abs_of(random_matrix(4, 8, 7400));
  EXPECT_THROW(search_nm_channel_order(Pattern::parse("4x1"), s.view(), 8), Error);
  EXPECT_THROW(search_nm_channel_order(Pattern::parse("2:4"), s.view(), 6), Error);  // 6 does not divide 8
  EXPECT_THROW(search_nm_channel_order(Pattern::parse("2:4"), s.view(), 0), Error);
  EXPECT_THROW(search_nm_channel_order(Pattern::parse("2:8"), s.view(), 4), Error);  // a segment of half a group
  const MatrixF odd = abs_of(random_matrix(4, 10, 7401));
  EXPECT_THROW(search_nm_channel_order(Pattern::parse("2:4"), odd.view(), 10), Error);  // 10 columns
  for (const float bad : {-1.0f, NAN, INFINITY}) {
    MatrixF b = s;
    b(2, 3) = bad;
    EXPECT_THROW(search_nm_channel_order(Pattern::parse("2:4"), b.view(), 8), Error) << bad;
  }
  EXPECT_THROW(nm_kept_score(Pattern::parse("2:4"), s.view(), std::vector<int64_t>{0, 1, 2}), Error);
  EXPECT_THROW(nm_kept_score(Pattern::parse("2:4"), s.view(), std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 6}), Error);
  EXPECT_THROW(nm_kept_score(Pattern::parse("2:4"), s.view(), std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 8}), Error);
}
