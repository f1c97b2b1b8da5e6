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
  // How the encoder runs (SentenceEncoder::serve), and the INT8 variants' attention and calibration.
  std::string variant = "fp32-dense", attention = "f32", fortunes = minilm::MinilmBenchOptions{}.fortunes,
              fallback = "auto";
  int64_t calibration_texts = 256;
  bool progress = true;     // a progress line on a terminal
  CLI::App* cmd = nullptr;  // what was given, for the flags that act only with others
};

// The checks that need neither LibTorch nor the model's weights: the formats, the output's name and
// place, the input file and the model folder. Returns the output's format. `spruce` runs them before
// it hands over, so that a refusal takes milliseconds; run_embed runs them again.
minilm::EmbeddingFormat check_embed_args(const EmbedArgs& a);
void run_embed(const EmbedArgs& a);

}  // namespace spruce::cli
