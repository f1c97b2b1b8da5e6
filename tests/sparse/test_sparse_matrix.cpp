// Packed formats: pack/unpack round trip for every pattern, sizes, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "spruce/bench.hpp"
#include "spruce/error.hpp"
#include "spruce/quant.hpp"
#include "spruce/sparse_matrix.hpp"

namespace spruce {
namespace {

const char* kPatterns[] = {"1x1", "4x1", "1x4", "2x1", "4x16", "16x1", "3x5", "channelx1", "1xchannel", "2:4", "1:4", "3:8"};

template <typename T>
void round_trip(uint32_t seed) {
  std::mt19937 rng(seed);
  for (const char* ps : kPatterns)
    for (int64_t oc : {1, 5, 16, 33})
      for (int64_t ic : {1, 7, 16, 35})
        for (double s : {0.0, 0.5, 0.9, 1.0}) {
          const Pattern p = Pattern::parse(ps);
          auto w = bench::pruned_integers<T>(oc, ic, p, s, rng);
          auto packed = SparseMatrix<T>::pack(w.view(), p);
          auto back = packed.unpack();
          ASSERT_EQ(back.data, w.data) << "seed " << seed << " pattern " << ps << " " << oc << "x" << ic << " s=" << s;
          ASSERT_GT(packed.size_bytes(), 0u);
          int64_t nz = 0;
          for (T v : w.data) nz += v != T(0);
          ASSERT_EQ(packed.nonzeros(), nz);
        }
}

TEST(SparseMatrix, RoundTripF32) { round_trip<float>(11); }
TEST(SparseMatrix, RoundTripS8) { round_trip<int8_t>(12); }

TEST(SparseMatrix, CompressesBlocks) {
  std::mt19937 rng(13);
  auto w = bench::pruned_integers<int8_t>(768, 768, Pattern::parse("4x1"), 0.9, rng);
  auto packed = SparseMatrix<int8_t>::pack(w.view(), Pattern::parse("4x1"));
  EXPECT_GT(packed.compression(), 4.0);  // 10% values plus one int32 per 4-value block
  EXPECT_LT(packed.compression(), 10.0);
}

TEST(SparseMatrix, RejectsWeightsThatBreakNM) {
  Matrix<float> w(2, 8, 1.0f);  // every group of 4 is full
  EXPECT_THROW(SparseMatrix<float>::pack(w.view(), Pattern::parse("2:4")), Error);
  try {
    SparseMatrix<float>::pack(w.view(), Pattern::parse("2:4"));
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("2:4"), std::string::npos) << e.what();
  }
}

TEST(SparseMatrix, UnpackChecksShape) {
  Matrix<float> w(4, 4, 1.0f), out(3, 4);
  auto packed = SparseMatrix<float>::pack(w.view(), Pattern::parse("4x1"));
  EXPECT_THROW(packed.unpack_into(out.view()), Error);
}

// A NaN output (a NaN bias from a loaded file is enough) reached uint8_t(NaN), UB, in the scalar
// epilogue, which the AVX-512 kernels also use for the m rows past the last whole 16. It gives
// the lower bound now, as the vector epilogue's vmaxps does. (Same class as a NaN that
// tests/fuzz/model_file_fuzz found in quantize_u8.)
TEST(Quant, RequantizeClampsNanToTheLowerBoundLikeTheVectorEpilogue) {
  const float nan = std::nanf(""), inf = INFINITY;
  EXPECT_EQ(requantize_u8(nan, 2.0f, 100.0f), 0);
  EXPECT_EQ(requantize_s8(nan, 2.0f, 3.0f), -128);
  EXPECT_EQ(requantize_u8(inf, 2.0f, 100.0f), 255);
  EXPECT_EQ(requantize_s8(-inf, 2.0f, 3.0f), -128);
  EXPECT_EQ(requantize_u8(10.25f, 2.0f, 100.0f), 120);  // 120.5: ties to even
  EXPECT_EQ(requantize_s8(-1.25f, 2.0f, 3.0f), 0);      // 0.5: ties to even
}

}  // namespace
}  // namespace spruce
