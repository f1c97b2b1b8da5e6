// How many randomized cases each registered kernel ran. At the end of a full run (no
// --gtest_filter), every kernel of the operation that this CPU and SPRUCE_MAX_ISA allow must have
// run at least `minimum` cases: a kernel whose accepts() broke would otherwise pass silently.
#pragma once
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <string>

#include "kernels/kernel.hpp"

namespace spruce::kernels::coverage {

inline std::map<std::string, int>& case_counts() {
  static std::map<std::string, int> counts;
  return counts;
}
inline void count_case(const Kernel& k) { ++case_counts()[k.name]; }

class KernelCoverage : public ::testing::Environment {
 public:
  KernelCoverage(Op op, int minimum) : op_(op), minimum_(minimum) {}
  void TearDown() override {
    if (::testing::GTEST_FLAG(filter) != "*") return;  // a partial run proves nothing either way
    std::printf("cases per kernel (ISA cap %s):\n", std::string(isa_name(max_isa())).c_str());
    for (const Kernel& k : registry()) {
      if (k.op != op_) continue;
      const bool runs = runs_here(k);
      const int n = case_counts()[k.name];
      std::printf("  %-40s %6d%s\n", k.name, n, runs ? "" : "  (not allowed here)");
      if (runs) {
        EXPECT_GE(n, minimum_) << k.name << " was exercised on too few cases";
      }
    }
  }

 private:
  Op op_;
  int minimum_;
};

}  // namespace spruce::kernels::coverage
