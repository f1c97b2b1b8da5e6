#include <gtest/gtest.h>

#include "spruce/error.hpp"
#include "spruce/pattern.hpp"

using spruce::Pattern;

TEST(Pattern, ParsesAndFormatsEveryKind) {
  for (const char* s : {"4x1", "1x4", "2x1", "4x16", "1x1", "16x1", "channelx1", "1xchannel", "2:4", "1:4", "4:8"}) {
    const Pattern p = Pattern::parse(s);
    EXPECT_EQ(p.str(), s);
    EXPECT_EQ(Pattern::parse(p.str()), p) << s;
  }
  EXPECT_EQ(Pattern::parse("4X1"), Pattern::block(4, 1));
  EXPECT_TRUE(Pattern::parse("1x1").is_unstructured());
  EXPECT_TRUE(Pattern::parse("2:4").is_nm());
  EXPECT_DOUBLE_EQ(Pattern::parse("2:4").natural_sparsity(), 0.5);
  EXPECT_DOUBLE_EQ(Pattern::parse("1:4").natural_sparsity(), 0.75);
}

TEST(Pattern, ChannelSpansTheWholeDimension) {
  const Pattern c1 = Pattern::parse("channelx1");
  EXPECT_EQ(c1.block_rows(768), 768);
  EXPECT_EQ(c1.block_cols(3072), 1);
  const Pattern c2 = Pattern::parse("1xchannel");
  EXPECT_EQ(c2.block_rows(768), 1);
  EXPECT_EQ(c2.block_cols(3072), 3072);
}

TEST(Pattern, RejectsBadStringsWithAnExplanation) {
  for (const char* s : {"4x0", "3:2", "x4", "abc", "", "4x", "0x4", "2:2", "0:4", "-1x4", "4x1x2", "2:4:8", "1.5x2",
                        "channelxchannel", "99999999x1", "4 x1"}) {
    try {
      Pattern::parse(s);
      ADD_FAILURE() << "accepted '" << s << "'";
    } catch (const spruce::Error& e) {
      EXPECT_EQ(e.kind(), spruce::ErrorKind::Usage);
      EXPECT_NE(std::string(e.what()).find("RxC"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
    }
  }
}

TEST(Pattern, TooLargeDimensionsNameTheLimit) {
  for (const char* s : {"1x10000000", "2000000x1", "1:2000000", "1x00000000000000000009999999"}) {
    try {
      Pattern::parse(s);
      ADD_FAILURE() << "accepted '" << s << "'";
    } catch (const spruce::Error& e) {
      EXPECT_NE(std::string(e.what()).find("at most 1048576"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(Pattern::parse("1048576x1").str(), "1048576x1");
  EXPECT_EQ(Pattern::parse("004x01").str(), "4x1");
}

TEST(BlockGrid, HandlesPartialEdgeBlocks) {
  const auto g = spruce::block_grid(Pattern::block(4, 16), 10, 35);
  EXPECT_EQ(g.grid_rows(), 3);
  EXPECT_EQ(g.grid_cols(), 3);
  EXPECT_EQ(g.block_elems(0, 0), 64);
  EXPECT_EQ(g.block_elems(2, 2), 2 * 3);
  int64_t total = 0;
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j) total += g.block_elems(i, j);
  EXPECT_EQ(total, 10 * 35);
  const auto nm = spruce::block_grid(Pattern::n_of_m(2, 4), 3, 10);
  EXPECT_EQ(nm.block_rows, 1);
  EXPECT_EQ(nm.block_cols, 4);
  EXPECT_EQ(nm.grid_cols(), 3);
}
