// `spruce convert`: its arguments, parsed by both programs (cmd_convert.cpp), and run by
// spruce-torch (run_convert.cpp); `spruce` hands the command line over instead (hand_over.cpp).
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "fashion_mnist/options.hpp"

namespace spruce::cli {

struct ConvertArgs {
  fashion_mnist::EvalOptions o;
  std::string checkpoint_dir, variant = "int8-sparse", calibration = "minmax", out, fallback = "auto";
  CLI::App* cmd = nullptr;
};

// The checks that need no LibTorch: the variant, the calibration flags, the output and the run's
// folder. `spruce` runs them before it hands over, so that a refusal takes milliseconds; run_convert
// runs them again.
void check_convert_args(ConvertArgs& a);
void run_convert(ConvertArgs& a);

}  // namespace spruce::cli
