// `spruce train`: its arguments, parsed by both programs (cmd_train.cpp), and run by
// spruce-torch (run_train.cpp); `spruce` hands the command line over instead (hand_over.cpp).
#pragma once
#include <CLI/CLI.hpp>

#include <cmath>
#include <string>

#include "fashion_mnist/options.hpp"

namespace spruce::cli {

struct TrainArgs {
  std::string dataset = "fashion-mnist", pattern, recipe, json, scope, criterion, resume, teacher_dir;
  double sparsity = NAN;
  int threads = 0;
  bool no_progress = false, overwrite = false;
  // Data parallel: --nproc launches local ranks; the rest join a job (flags over torchrun's variables).
  int nproc = 1, world_size = -1, rank = -1, master_port = -1, dist_timeout = 60;
  std::string master_addr;
  fashion_mnist::TrainOptions options;
  CLI::App* cmd = nullptr;  // what was given, for the flags that act only with others
};

// The checks that need neither LibTorch nor the data: flags that conflict or change nothing, the
// recipe (--recipe, --pattern/--sparsity or the --resume folder's), resolved into a.options,
// and the input files. `spruce` runs them before it hands over, so that a refusal takes milliseconds, not
// LibTorch's load; run_train runs them again.
void check_train_args(TrainArgs& a);
void run_train(TrainArgs& a);

}  // namespace spruce::cli
