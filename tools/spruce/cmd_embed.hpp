// `spruce embed`: its arguments, parsed by both programs (cmd_embed.cpp), and run by
// spruce-torch (run_embed.cpp); `spruce` hands the command line over instead (hand_over.cpp).
#pragma once
#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "minilm/options.hpp"

namespace spruce::cli {

struct EmbedArgs {
  std::string model = minilm::default_model_dir(), input = "-", output, input_format = "auto", format = "auto";
  int64_t batch = 32, max_length = minilm::kMaxLength;
  int threads = 2;
};

void run_embed(const EmbedArgs& a);

}  // namespace spruce::cli
