// Name patterns: std::regex_search's meaning, RE2's linear time, and one-line errors.
#include <gtest/gtest.h>

#include "spruce/error.hpp"
#include "spruce/name_pattern.hpp"

using spruce::NamePattern;

TEST(NamePattern, SearchesAnywhereInTheName) {
  const NamePattern fc("fc[0-9]+", "--include");
  EXPECT_TRUE(fc.found_in("model.fc1.weight"));
  EXPECT_FALSE(fc.found_in("model.conv1.weight"));
  EXPECT_TRUE(NamePattern("^head$", "x").found_in("head"));
  EXPECT_FALSE(NamePattern("^head$", "x").found_in("head.bias"));
  EXPECT_TRUE(NamePattern("", "x").found_in("anything"));
}

TEST(NamePattern, HostileNamesAndPatternsTakeLinearTime) {
  const std::string name(1 << 20, 'a');
  EXPECT_FALSE(NamePattern("(a|aa)*b", "x").found_in(name));  // exponential for a backtracker
  EXPECT_TRUE(NamePattern("(a*)*$", "x").found_in(name));
  const std::string deep = std::string(1000, '(') + "a" + std::string(1000, ')');
  EXPECT_TRUE(NamePattern(deep, "x").found_in("a"));
}

TEST(NamePattern, BadPatternsNameTheirFlag) {
  for (const std::string& bad : {std::string("(a"), std::string("a{2,1}"), std::string(5000, 'a')}) {
    try {
      NamePattern p(bad, "--exclude");
      ADD_FAILURE() << bad.substr(0, 20) << " was accepted";
    } catch (const spruce::Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      EXPECT_EQ(std::string(e.what()).rfind("--exclude '", 0), 0u) << e.what();
      EXPECT_LT(std::string(e.what()).size(), 300u);
    }
  }
}
