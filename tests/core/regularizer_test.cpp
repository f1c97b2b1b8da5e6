#include <gtest/gtest.h>

#include <cmath>

#include "random_matrix.hpp"
#include "spruce/regularizer.hpp"

using namespace spruce;
using spruce::test::random_matrix;

TEST(GroupLasso, GradientMatchesFiniteDifferences) {
  uint64_t seed = 500;
  for (const char* ps : {"4x1", "1x4", "4x16", "2:4", "3x5", "2x1"}) {
    SPRUCE_SEED_TRACE(seed);
    const Pattern p = Pattern::parse(ps);
    MatrixF w = random_matrix(9, 21, seed++);
    const double alpha = 0.37;
    MatrixF grad(w.rows, w.cols, 0.f);
    add_group_lasso_grad(p, w.view(), alpha, grad.view());
    const float h = 1e-2f;
    for (int64_t r = 0; r < w.rows; r += 2)
      for (int64_t c = 0; c < w.cols; c += 3) {
        const float keep = w(r, c);
        w(r, c) = keep + h;
        const double up = group_lasso_penalty(p, w.view(), alpha);
        w(r, c) = keep - h;
        const double down = group_lasso_penalty(p, w.view(), alpha);
        w(r, c) = keep;
        EXPECT_NEAR(grad(r, c), (up - down) / (2 * h), 2e-3) << ps << " at " << r << "," << c;
      }
  }
}

TEST(GroupLasso, PenaltyIsAlphaTimesSumOfBlockNorms) {
  MatrixF w(4, 2, 0.f);
  w(0, 0) = 3.f;
  w(1, 0) = 4.f;   // block column 0: norm 5
  w(2, 1) = 12.f;  // block column 1: norm 12
  EXPECT_NEAR(group_lasso_penalty(Pattern::block(4, 1), w.view(), 0.5), 0.5 * 17, 1e-9);
}

TEST(GroupLasso, StepsShrinkBlockNormsAndLeaveZeroBlocksAlone) {
  MatrixF w = random_matrix(8, 8, 77);
  for (int64_t r = 0; r < 4; ++r) w(r, 0) = 0.f;
  const Pattern p = Pattern::block(4, 1);
  const double before = group_lasso_penalty(p, w.view(), 1.0);
  for (int step = 0; step < 10; ++step) {
    MatrixF grad(8, 8, 0.f);
    add_group_lasso_grad(p, w.view(), 1.0, grad.view());
    for (int64_t r = 0; r < 4; ++r) EXPECT_EQ(grad(r, 0), 0.f);
    for (size_t i = 0; i < w.data.size(); ++i) w.data[i] -= 0.01f * grad.data[i];
  }
  EXPECT_LT(group_lasso_penalty(p, w.view(), 1.0), before - 0.01 * 10 * 15 * 0.9);
}
