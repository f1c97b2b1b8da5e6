#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "spruce/error.hpp"
#include "spruce/schedule.hpp"

using namespace spruce;

TEST(Schedule, DecayCurvesMatchTheirClosedForms) {
  const double s0 = 0.1, sT = 0.9;
  for (double p : {0.0, 0.1, 0.25, 0.5, 0.75, 1.0}) {
    EXPECT_NEAR(decay_curve(Decay::Linear, s0, sT, p), s0 + (sT - s0) * p, 1e-12);
    EXPECT_NEAR(decay_curve(Decay::Cos, s0, sT, p), sT + (s0 - sT) * (1 + std::cos(std::numbers::pi * p)) / 2, 1e-12);
    EXPECT_NEAR(decay_curve(Decay::Cube, s0, sT, p), sT + (s0 - sT) * std::pow(1 - p, 3), 1e-12);
    EXPECT_NEAR(decay_curve(Decay::Exp, s0, sT, p), 1 - std::pow(0.9, 1 - p) * std::pow(0.1, p), 1e-12);
  }
  for (Decay d : {Decay::Exp, Decay::Cos, Decay::Linear, Decay::Cube}) {
    EXPECT_NEAR(decay_curve(d, s0, sT, 0.0), s0, 1e-12) << to_string(d);
    EXPECT_NEAR(decay_curve(d, s0, sT, 1.0), sT, 1e-12) << to_string(d);
    EXPECT_EQ(parse_decay(to_string(d)), d);
    double prev = s0;  // monotone from s0 to sT
    for (int i = 1; i <= 20; ++i) {
      const double s = decay_curve(d, s0, sT, i / 20.0);
      EXPECT_GE(s, prev - 1e-12) << to_string(d);
      prev = s;
    }
  }
  EXPECT_THROW(parse_decay("step"), Error);
}

TEST(Schedule, IterativeStepsOnTheFrequencyAndReachesTheTarget) {
  Schedule s;
  s.start_step = 100;
  s.end_step = 1100;
  s.frequency = 100;
  s.target = 0.9;
  s.decay = Decay::Linear;
  EXPECT_FALSE(s.oneshot());
  EXPECT_DOUBLE_EQ(s.target_at(0), 0.0);
  EXPECT_DOUBLE_EQ(s.target_at(99), 0.0);
  EXPECT_DOUBLE_EQ(s.target_at(100), 0.0);
  EXPECT_NEAR(s.target_at(150), 0.0, 1e-12);  // holds until the next pruning step
  EXPECT_NEAR(s.target_at(200), 0.09, 1e-12);
  EXPECT_NEAR(s.target_at(650), 0.45, 1e-12);
  EXPECT_DOUBLE_EQ(s.target_at(1100), 0.9);
  EXPECT_DOUBLE_EQ(s.target_at(5000), 0.9);
  EXPECT_TRUE(s.prunes_at(100));
  EXPECT_TRUE(s.prunes_at(300));
  EXPECT_FALSE(s.prunes_at(301));
  EXPECT_TRUE(s.prunes_at(1100));
  EXPECT_FALSE(s.prunes_at(1200));
}

TEST(Schedule, OneshotAppliesTheTargetAtOnce) {
  Schedule s;
  s.start_step = s.end_step = 10;
  s.target = 0.8;
  EXPECT_TRUE(s.oneshot());
  EXPECT_DOUBLE_EQ(s.target_at(9), 0.0);
  EXPECT_DOUBLE_EQ(s.target_at(10), 0.8);
  EXPECT_TRUE(s.prunes_at(10));
  EXPECT_FALSE(s.prunes_at(11));
}

TEST(Schedule, EndStepNotOnTheFrequencyStillPrunesAndReachesTarget) {
  Schedule s;
  s.start_step = 0;
  s.end_step = 95;
  s.frequency = 10;
  s.target = 0.5;
  EXPECT_TRUE(s.prunes_at(95));
  EXPECT_LT(s.target_at(94), 0.5);
  EXPECT_DOUBLE_EQ(s.target_at(95), 0.5);
}
