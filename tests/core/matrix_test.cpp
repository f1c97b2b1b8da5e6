#include <gtest/gtest.h>

#include <numeric>

#include "spruce/error.hpp"
#include "spruce/matrix.hpp"

TEST(TensorMatrixMap, ConvIsViewedChannelsLast) {
  // W[OC=2][IC=3][KH=2][KW=2] stored row-major; the view is [OC][KH*KW*IC] with IC fastest.
  std::vector<int64_t> shape{2, 3, 2, 2};
  std::vector<float> w(24);
  std::iota(w.begin(), w.end(), 0.f);
  const auto m = spruce::to_matrix(w.data(), shape);
  ASSERT_EQ(m.rows, 2);
  ASSERT_EQ(m.cols, 12);
  for (int64_t oc = 0; oc < 2; ++oc)
    for (int64_t ic = 0; ic < 3; ++ic)
      for (int64_t khw = 0; khw < 4; ++khw) EXPECT_EQ(m(oc, khw * 3 + ic), w[size_t((oc * 3 + ic) * 4 + khw)]);
  std::vector<float> back(24, -1.f);
  spruce::from_matrix(m, back.data(), shape);
  EXPECT_EQ(back, w);
}

TEST(TensorMatrixMap, LinearIsItself) {
  std::vector<float> w(12);
  std::iota(w.begin(), w.end(), 0.f);
  const auto m = spruce::to_matrix(w.data(), {3, 4});
  EXPECT_EQ(m.data, w);
}

TEST(TensorMatrixMap, RejectsOtherRanks) {
  EXPECT_THROW(spruce::matrix_shape({3}), spruce::Error);
  EXPECT_THROW(spruce::matrix_shape({3, 4, 5}), spruce::Error);
}
