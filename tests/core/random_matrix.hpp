// Random matrices from fixed, printed seeds.
#pragma once
#include <gtest/gtest.h>

#include <random>

#include "spruce/matrix.hpp"

namespace spruce::test {

inline MatrixF random_matrix(int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  MatrixF m(rows, cols);
  for (auto& x : m.data) x = dist(rng);
  return m;
}

inline MatrixF abs_of(const MatrixF& m) {
  MatrixF out = m;
  for (auto& x : out.data) x = std::fabs(x);
  return out;
}

#define SPRUCE_SEED_TRACE(seed) SCOPED_TRACE(::testing::Message() << "seed=" << (seed))

}  // namespace spruce::test
