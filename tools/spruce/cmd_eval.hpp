// `spruce eval`: its arguments, parsed by both programs (cmd_eval.cpp), and run by
// spruce-torch (run_eval.cpp); `spruce` hands the command line over instead (hand_over.cpp).
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "fashion_mnist/options.hpp"

namespace spruce::cli {

struct EvalArgs {
  fashion_mnist::EvalOptions o;
  std::string dense_dir, sparse_dir, calibration = "minmax", json, fallback = "auto";
  CLI::App* cmd = nullptr;
};

// The checks that need no LibTorch: the runs' folders, the calibration and fallback flags, and the
// JSON output. `spruce` runs them before it hands over; run_eval runs them again.
void check_eval_args(EvalArgs& a);
void run_eval(EvalArgs& a);

}  // namespace spruce::cli
