// `spruce distill`: its arguments, parsed by both programs (cmd_distill.cpp), and run by
// spruce-torch (run_distill.cpp); `spruce` hands the command line over instead (hand_over.cpp).
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <string>

#include "minilm/options.hpp"

namespace spruce::cli {

struct DistillArgs {
  minilm::DistillOptions o;
  std::string model = minilm::default_model_dir(), fortunes = "/usr/share/games/fortunes", wordnet, pattern, save, json,
              criterion = "wanda", scope = "local";
  double sparsity = NAN, max_layer_sparsity = NAN;  // NaN: not given (0.98 with --scope global)
  bool straight_through = false, gradual_nm = false;
  double straight_through_decay = 0.0;
  int threads = 2;
  CLI::App* cmd = nullptr;  // what was given, for the flags that act only with others
};

// The checks that need neither LibTorch nor the model: flags that conflict or change nothing, the
// outputs (--json, --save, --checkpoint) and a run to resume. `spruce` runs them before it hands over, so that a
// refusal takes milliseconds, not LibTorch's load; run_distill runs them again.
void check_distill_args(const DistillArgs& a);
void run_distill(DistillArgs& a);

}  // namespace spruce::cli
