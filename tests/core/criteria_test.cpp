#include <gtest/gtest.h>

#include <cmath>

#include "random_matrix.hpp"
#include "spruce/criteria.hpp"
#include "spruce/error.hpp"

using namespace spruce;
using spruce::test::random_matrix;

TEST(Criteria, ElementScoresFollowTheirDefinitions) {
  const MatrixF w = random_matrix(5, 7, 21), g = random_matrix(5, 7, 22);
  for (Criterion c : {Criterion::Magnitude, Criterion::Gradient, Criterion::Snip, Criterion::SnipMomentum}) {
    MatrixF s(5, 7);
    element_scores(c, w.view(), g.view(), s.view());
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t j = 0; j < 7; ++j) {
        const float want = c == Criterion::Magnitude  ? std::fabs(w(i, j))
                           : c == Criterion::Gradient ? std::fabs(g(i, j))
                                                      : std::fabs(w(i, j) * g(i, j));
        EXPECT_FLOAT_EQ(s(i, j), want) << to_string(c);
      }
    EXPECT_EQ(parse_criterion(to_string(c)), c);
  }
}

TEST(Criteria, GradientCriteriaNeedGradients) {
  const MatrixF w = random_matrix(3, 3, 1);
  MatrixF s(3, 3);
  EXPECT_THROW(element_scores(Criterion::Snip, w.view(), {}, s.view()), Error);
  EXPECT_NO_THROW(element_scores(Criterion::Magnitude, w.view(), {}, s.view()));
  const MatrixF g(3, 4);
  EXPECT_THROW(element_scores(Criterion::Gradient, w.view(), g.view(), s.view()), Error);
  EXPECT_THROW(parse_criterion("taylor"), Error);
  EXPECT_THROW(parse_reduce("median"), Error);
}

TEST(Criteria, SnipMomentumIsAnExponentialMovingAverage) {
  const MatrixF w = random_matrix(4, 4, 31);
  const MatrixF g1 = random_matrix(4, 4, 32), g2 = random_matrix(4, 4, 33);
  ScoreAccumulator acc(Criterion::SnipMomentum, 0.9);
  acc.update(w.view(), g1.view());
  acc.update(w.view(), g2.view());
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      const double s1 = 0.1 * std::fabs(w(i, j) * g1(i, j));
      const double s2 = 0.9 * s1 + 0.1 * std::fabs(w(i, j) * g2(i, j));
      EXPECT_NEAR(acc.scores()(i, j), s2, 1e-6);
    }
  ScoreAccumulator snip(Criterion::Snip);
  snip.update(w.view(), g1.view());
  snip.update(w.view(), g2.view());
  EXPECT_FLOAT_EQ(snip.scores()(1, 2), std::fabs(w(1, 2) * g2(1, 2)));
}

TEST(Criteria, BlockReductionsIncludingPartialBlocks) {
  MatrixF s(5, 3);
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t j = 0; j < 3; ++j) s(i, j) = float(i * 3 + j);
  const Pattern p = Pattern::block(4, 2);  // grid 2x2; edge blocks partial
  const MatrixF mean = block_scores(p, s.view(), Reduce::Mean);
  const MatrixF sum = block_scores(p, s.view(), Reduce::Sum);
  const MatrixF mx = block_scores(p, s.view(), Reduce::Max);
  ASSERT_EQ(mean.rows, 2);
  ASSERT_EQ(mean.cols, 2);
  // Block (0,0): rows 0-3, cols 0-1: values 0,1,3,4,6,7,9,10.
  EXPECT_FLOAT_EQ(sum(0, 0), 40.f);
  EXPECT_FLOAT_EQ(mean(0, 0), 5.f);
  EXPECT_FLOAT_EQ(mx(0, 0), 10.f);
  // Block (1,1): row 4, col 2 only.
  EXPECT_FLOAT_EQ(sum(1, 1), 14.f);
  EXPECT_FLOAT_EQ(mean(1, 1), 14.f);
  // Block (0,1): rows 0-3, col 2: 2,5,8,11.
  EXPECT_FLOAT_EQ(mean(0, 1), 6.5f);
}
