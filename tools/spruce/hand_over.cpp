// `spruce` parses the LibTorch commands' flags itself, so that a mistyped flag or `--help` is
// answered at once; a command line that parses runs in `spruce-torch`, which loads LibTorch.
#include "cmd_bench_model.hpp"
#include "cmd_convert.hpp"
#include "cmd_distill.hpp"
#include "cmd_embed.hpp"
#include "cmd_eval.hpp"
#include "cmd_train.hpp"
#include "command.hpp"

namespace spruce::cli {

void run_bench_model(BenchModelArgs& a) {
  check_bench_model_args(a);  // refused in milliseconds, before LibTorch loads
  hand_over_command_line();
}
void run_convert(ConvertArgs& a) {
  check_convert_args(a);  // refused in milliseconds, before LibTorch loads
  hand_over_command_line();
}
void run_distill(DistillArgs& a) {
  check_distill_args(a);  // refused in milliseconds, before LibTorch loads
  hand_over_command_line();
}
void run_embed(const EmbedArgs& a) {
  check_embed_args(a);  // refused in milliseconds, before LibTorch loads
  hand_over_command_line();
}
void run_eval(EvalArgs& a) {
  check_eval_args(a);  // refused in milliseconds, before LibTorch loads
  hand_over_command_line();
}
void run_train(TrainArgs& a) {
  check_train_args(a);  // refused in milliseconds, before LibTorch loads
  hand_over_command_line();
}

}  // namespace spruce::cli
