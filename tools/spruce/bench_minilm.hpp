// bench-model minilm's table and JSON (the command's flags live in cmd_bench_model.cpp).
#pragma once
#include <string>

#include "minilm/minilm_bench.hpp"
#include "minilm/sentence_encoder.hpp"

namespace spruce::cli {

// Runs the benchmark, prints the table (ratios against INT8 dense) and writes `json` if given.
void run_minilm_bench(const minilm::MinilmBenchOptions& options, const std::string& json);

}  // namespace spruce::cli
