// `spruce bench-model`: its arguments, parsed by both programs (cmd_bench_model.cpp), and run by
// spruce-torch (run_bench_model.cpp); `spruce` hands the command line over instead (hand_over.cpp).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "dlrm/dlrm_bench.hpp"
#include "minilm/options.hpp"

namespace spruce::cli {

struct BenchModelArgs {
  std::string model, pattern = "4x16", json, fallback = "auto", attention = "f32";
  bool bf16_attention = false;        // --bf16-attention, the same as --attention bf16
  std::string work_dir = "out/dlrm";  // trained models are cached here
  uint64_t seed = 1;
  dlrm::DlrmBenchOptions o;
  minilm::MinilmBenchOptions minilm;  // --sparse-model, --dense-model, --seq-length; shares --batches, --threads
  CLI::App* cmd = nullptr;
};

// The checks that need neither LibTorch nor a model: flags for the other model, settings that
// disagree or act on no variant run, and --json. `spruce` runs them before it hands over, so that a
// refusal takes milliseconds, not LibTorch's load; run_bench_model runs them again.
void check_bench_model_args(BenchModelArgs& a);
void run_bench_model(BenchModelArgs& a);

}  // namespace spruce::cli
