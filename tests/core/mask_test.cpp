#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "random_matrix.hpp"
#include "spruce/error.hpp"
#include "spruce/mask.hpp"

using namespace spruce;
using spruce::test::abs_of;
using spruce::test::random_matrix;

namespace {

struct Shape {
  int64_t rows, cols;
};
const Shape kShapes[] = {{1, 1}, {4, 16}, {7, 13}, {16, 33}, {33, 64}, {64, 10}, {5, 100}};
const char* kBlockPatterns[] = {"4x1", "1x4", "2x1", "4x16", "1x1", "16x1", "3x5", "channelx1", "1xchannel"};

// Kept and pruned block scores: no pruned block may outscore a kept one.
void expect_pruned_below_kept(const Pattern& p, const MatrixF& scores, const Mask& mask, Reduce reduce) {
  const BlockGrid g = block_grid(p, scores.rows, scores.cols);
  const MatrixF bs = block_scores(p, scores.view(), reduce);
  float max_pruned = -INFINITY, min_kept = INFINITY;
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j) {
      if (mask(g.row_begin(i), g.col_begin(j)))
        min_kept = std::min(min_kept, bs(i, j));
      else
        max_pruned = std::max(max_pruned, bs(i, j));
    }
  EXPECT_LE(max_pruned, min_kept);
}

}  // namespace

TEST(LocalMask, ObeysPatternWithExactRatioAndRanking) {
  uint64_t seed = 1000;
  for (const char* ps : kBlockPatterns)
    for (const Shape& s : kShapes)
      for (double ratio : {0.0, 0.3, 0.5, 0.85, 0.9, 1.0})
        for (Reduce reduce : {Reduce::Mean, Reduce::Sum, Reduce::Max}) {
          const Pattern p = Pattern::parse(ps);
          SPRUCE_SEED_TRACE(seed);
          SCOPED_TRACE(::testing::Message() << ps << " " << s.rows << "x" << s.cols << " ratio " << ratio);
          const MatrixF scores = abs_of(random_matrix(s.rows, s.cols, seed++));
          const Mask mask = local_mask(p, scores.view(), ratio, reduce);
          ASSERT_EQ(mask.rows, s.rows);
          ASSERT_EQ(mask.cols, s.cols);
          EXPECT_TRUE(follows_pattern(p, mask));
          const BlockGrid g = block_grid(p, s.rows, s.cols);
          int64_t pruned = 0;
          for (int64_t i = 0; i < g.grid_rows(); ++i)
            for (int64_t j = 0; j < g.grid_cols(); ++j) pruned += !mask(g.row_begin(i), g.col_begin(j));
          EXPECT_EQ(pruned, std::llround(ratio * double(g.blocks())));
          expect_pruned_below_kept(p, scores, mask, reduce);
        }
}

TEST(LocalMask, UniformBlocksGiveTheExactElementRatio) {
  const MatrixF scores = abs_of(random_matrix(768, 768, 7));
  for (const char* ps : {"4x1", "1x4", "4x16", "1x1", "2x1"}) {
    const Mask mask = local_mask(Pattern::parse(ps), scores.view(), 0.9);
    EXPECT_NEAR(mask_sparsity(mask), 0.9, 1e-4) << ps;
  }
}

TEST(LocalMask, NOfMKeepsTheTopNOfEveryGroup) {
  uint64_t seed = 2000;
  for (const char* ps : {"2:4", "1:4", "4:8", "1:2", "3:7"})
    for (const Shape& s : kShapes) {
      const Pattern p = Pattern::parse(ps);
      SPRUCE_SEED_TRACE(seed);
      const MatrixF scores = abs_of(random_matrix(s.rows, s.cols, seed++));
      const Mask mask = local_mask(p, scores.view(), 0.123);  // the ratio is ignored for N:M
      EXPECT_TRUE(follows_pattern(p, mask));
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t c0 = 0; c0 < s.cols; c0 += p.m()) {
          const int64_t len = std::min<int64_t>(p.m(), s.cols - c0);
          int64_t kept = 0;
          float min_kept = INFINITY, max_pruned = -INFINITY;
          for (int64_t c = c0; c < c0 + len; ++c) {
            kept += mask(r, c);
            if (mask(r, c))
              min_kept = std::min(min_kept, scores(r, c));
            else
              max_pruned = std::max(max_pruned, scores(r, c));
          }
          EXPECT_EQ(kept, std::min<int64_t>(p.n(), len));
          EXPECT_LE(max_pruned, min_kept);
        }
    }
}

TEST(GradualNmMask, PrunesTheCheapestShareOfGroupsToNm) {
  uint64_t seed = 2500;
  for (const char* ps : {"2:4", "1:4", "2:8", "3:7"})
    for (const Shape& s : kShapes)
      for (double share : {0.0, 0.1, 0.37, 0.5, 0.9, 1.0}) {
        const Pattern p = Pattern::parse(ps);
        SPRUCE_SEED_TRACE(seed);
        SCOPED_TRACE(::testing::Message() << ps << " " << s.rows << "x" << s.cols << " share " << share);
        const MatrixF scores = abs_of(random_matrix(s.rows, s.cols, seed++));
        const double ratio = share * p.natural_sparsity();
        const Mask mask = gradual_nm_mask(p, scores.view(), ratio);
        const Mask full = local_mask(p, scores.view(), 0);
        if (share == 1.0) {
          EXPECT_EQ(mask.data, full.data);
          continue;
        }
        // Every group that N:M thins is either whole or N:M; the pruned ones lose the least.
        int64_t groups = 0, pruned = 0;
        double max_pruned_cost = -1, min_dense_cost = INFINITY;
        for (int64_t r = 0; r < s.rows; ++r)
          for (int64_t c0 = 0; c0 < s.cols; c0 += p.m()) {
            const int64_t len = std::min<int64_t>(p.m(), s.cols - c0);
            bool whole = true, as_full = true;
            double cost = 0;
            for (int64_t c = c0; c < c0 + len; ++c) {
              whole = whole && mask(r, c);
              as_full = as_full && mask(r, c) == full(r, c);
              if (!full(r, c)) cost += scores(r, c);
            }
            if (len <= p.n()) {
              EXPECT_TRUE(whole);
              continue;
            }
            ASSERT_TRUE(whole || as_full) << "row " << r << ", group at column " << c0;
            ++groups;
            if (whole) {
              min_dense_cost = std::min(min_dense_cost, cost);
            } else {
              ++pruned;
              max_pruned_cost = std::max(max_pruned_cost, cost);
            }
          }
        EXPECT_EQ(pruned, std::llround(share * double(groups)));
        EXPECT_LE(max_pruned_cost, min_dense_cost + 1e-4);
      }
}

TEST(GradualNmMask, GroupsAlreadyPrunedStayPrunedAsTheRatioGrows) {
  const Pattern p = Pattern::parse("2:4");
  MatrixF weights = random_matrix(24, 40, 2600);
  Mask previous(24, 40, 1);
  for (double ratio : {0.05, 0.15, 0.3, 0.45, 0.5}) {
    SCOPED_TRACE(::testing::Message() << "ratio " << ratio);
    for (size_t i = 0; i < weights.data.size(); ++i)
      if (!previous.data[i]) weights.data[i] = 0;  // what training with the mask leaves
    const Mask mask = gradual_nm_mask(p, abs_of(weights).view(), ratio);
    for (size_t i = 0; i < mask.data.size(); ++i) ASSERT_LE(mask.data[i], previous.data[i]) << "element " << i;
    EXPECT_NEAR(mask_sparsity(mask), ratio, 0.01);
    previous = mask;
  }
  EXPECT_TRUE(follows_pattern(p, previous));
}

TEST(GradualNmMask, RefusesBlockPatternsAndRatiosOutOfRange) {
  const MatrixF scores = abs_of(random_matrix(8, 8, 4));
  EXPECT_THROW(gradual_nm_mask(Pattern::block(4, 1), scores.view(), 0.2), Error);
  EXPECT_THROW(gradual_nm_mask(Pattern::parse("2:4"), scores.view(), -0.1), Error);
  EXPECT_THROW(gradual_nm_mask(Pattern::parse("2:4"), scores.view(), 1.5), Error);
}

TEST(LocalMask, RejectsRatiosOutOfRange) {
  const MatrixF scores = abs_of(random_matrix(8, 8, 3));
  EXPECT_THROW(local_mask(Pattern::block(4, 1), scores.view(), 1.5), Error);
  EXPECT_THROW(local_mask(Pattern::block(4, 1), scores.view(), -0.1), Error);
  EXPECT_THROW(local_mask(Pattern::block(4, 1), scores.view(), NAN), Error);
}

TEST(GlobalMask, OneThresholdAcrossTensorsWithoutClamps) {
  const uint64_t seed = 3000;
  SPRUCE_SEED_TRACE(seed);
  std::vector<MatrixF> scores;
  for (int i = 0; i < 4; ++i) {
    MatrixF m = abs_of(random_matrix(64 + 8 * i, 96, seed + uint64_t(i)));
    for (auto& x : m.data) x *= float(i + 1);  // tensors of different scale get different ratios
    scores.push_back(std::move(m));
  }
  const Pattern p = Pattern::block(4, 1);
  std::vector<GlobalTensor> in;
  for (auto& s : scores) in.push_back({p, s.view()});
  const auto masks = global_masks(in, 0.8, {0.0, 1.0});
  int64_t zeros = 0, total = 0;
  float max_pruned = -INFINITY, min_kept = INFINITY;
  for (size_t t = 0; t < masks.size(); ++t) {
    EXPECT_TRUE(follows_pattern(p, masks[t]));
    const MatrixF bs = block_scores(p, scores[t].view());
    const BlockGrid g = block_grid(p, scores[t].rows, scores[t].cols);
    for (int64_t i = 0; i < g.grid_rows(); ++i)
      for (int64_t j = 0; j < g.grid_cols(); ++j) {
        if (masks[t](g.row_begin(i), g.col_begin(j)))
          min_kept = std::min(min_kept, bs(i, j));
        else
          max_pruned = std::max(max_pruned, bs(i, j));
      }
    zeros += std::llround(mask_sparsity(masks[t]) * double(masks[t].size()));
    total += masks[t].size();
  }
  EXPECT_LE(max_pruned, min_kept);
  EXPECT_NEAR(double(zeros) / double(total), 0.8, 4.0 / double(total));
  EXPECT_GT(mask_sparsity(masks[0]), mask_sparsity(masks[3]));  // the small-scale tensor loses more
}

TEST(GlobalMask, HonoursMinAndMaxPerOp) {
  uint64_t seed = 4000;
  for (double ratio : {0.3, 0.6, 0.9})
    for (GlobalLimits lim : {GlobalLimits{0.5, 0.95}, GlobalLimits{0.2, 0.7}, GlobalLimits{0.0, 0.98}}) {
      SPRUCE_SEED_TRACE(seed);
      std::vector<MatrixF> scores;
      for (int i = 0; i < 3; ++i) {
        MatrixF m = abs_of(random_matrix(32, 40 + 16 * i, seed++));
        for (auto& x : m.data) x *= float(std::pow(10.0, i));
        scores.push_back(std::move(m));
      }
      const Pattern p = Pattern::block(1, 4);
      std::vector<GlobalTensor> in;
      for (auto& s : scores) in.push_back({p, s.view()});
      const auto masks = global_masks(in, ratio, lim);
      for (const auto& m : masks) {
        EXPECT_TRUE(follows_pattern(p, m));
        EXPECT_GE(mask_sparsity(m), lim.min_ratio - 1e-9) << "ratio " << ratio;
        EXPECT_LE(mask_sparsity(m), lim.max_ratio + 1e-9) << "ratio " << ratio;
      }
    }
}

TEST(GlobalMask, NOfMTensorsKeepTheirPattern) {
  const MatrixF a = abs_of(random_matrix(16, 32, 5)), b = abs_of(random_matrix(16, 32, 6));
  const auto masks = global_masks({{Pattern::n_of_m(2, 4), a.view()}, {Pattern::block(4, 1), b.view()}}, 0.7);
  EXPECT_DOUBLE_EQ(mask_sparsity(masks[0]), 0.5);
  EXPECT_NEAR(mask_sparsity(masks[1]), 0.7, 4.0 / 512);  // within one 4x1 block
}

TEST(FollowsPattern, DetectsBrokenBlocksAndGroups) {
  MatrixF w(8, 8, 1.f);
  for (int64_t c = 0; c < 8; ++c)
    for (int64_t r = 0; r < 4; ++r) w(r, c) = 0.f;  // rows 0-3 zero: follows 4x1 and 4x16
  EXPECT_TRUE(follows_pattern(Pattern::block(4, 1), w.view()));
  EXPECT_TRUE(follows_pattern(Pattern::block(4, 16), w.view()));
  w(1, 3) = 2.f;
  EXPECT_FALSE(follows_pattern(Pattern::block(4, 1), w.view()));
  EXPECT_TRUE(follows_pattern(Pattern::block(1, 1), w.view()));
  MatrixF nm(1, 8, 1.f);
  nm(0, 0) = nm(0, 1) = nm(0, 4) = nm(0, 6) = 0.f;
  EXPECT_TRUE(follows_pattern(Pattern::n_of_m(2, 4), nm.view()));
  nm(0, 6) = 3.f;
  EXPECT_FALSE(follows_pattern(Pattern::n_of_m(2, 4), nm.view()));
}

TEST(Mask, PatternLockAndApply) {
  MatrixF w = random_matrix(6, 6, 11);
  w(2, 3) = 0.f;
  const Mask lock = mask_of_nonzeros(w.view());
  EXPECT_EQ(lock(2, 3), 0);
  EXPECT_NEAR(mask_sparsity(lock), 1.0 / 36.0, 1e-12);
  MatrixF v = random_matrix(6, 6, 12);
  apply_mask(v.view(), lock);
  EXPECT_EQ(v(2, 3), 0.f);
  EXPECT_NE(v(0, 0), 0.f);
  EXPECT_THROW(apply_mask(v.view(), Mask(5, 6, 1)), Error);
}
