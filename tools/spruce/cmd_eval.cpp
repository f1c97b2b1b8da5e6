// spruce eval --model mlp --dense DIR --sparse DIR [--converted FILE]: accuracy and speed of the
// converted variants, and of converted models loaded from files.
// Its flags; the work is in run_eval.cpp.
#include "cmd_eval.hpp"

#include <memory>

#include "command.hpp"
#include "flags.hpp"

namespace spruce::cli {
namespace {

void add(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Accuracy and throughput of a trained classifier as FP32/INT8, dense/sparse");
  a->cmd = cmd;
  cmd->add_option("--model", a->o.model, "mlp or cnn (as trained)")->capture_default_str();
  cmd->add_option("--dense", a->dense_dir, "The --save folder of a dense `spruce train`")->check(non_empty());
  cmd->add_option("--sparse", a->sparse_dir, "The --save folder of a pruned `spruce train`")->check(non_empty());
  cmd->add_option("--converted", a->o.converted_files, "Also evaluate models saved by `spruce convert`, as loaded")
      ->check(CLI::ExistingFile);
  cmd->add_option("--data", a->o.data_dir, "Fashion-MNIST IDX folder")->check(non_empty())->capture_default_str();
  cmd->add_option("--threads", a->o.threads, "Threads for every variant")->check(thread_count())->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "Batch size for the throughput")
      ->check(int_in(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--calibration", a->calibration, "minmax or percentile")->capture_default_str();
  cmd->add_option("--percentile", a->o.percentile, "Percentile for --calibration percentile")
      ->check(real_in(50, 100, true, false))
      ->capture_default_str();
  cmd->add_option("--json", a->json, "Write one record per variant")->check(non_empty());
  add_fallback_option(cmd, a->fallback);
  cmd->callback([a] { run_eval(*a); });
}

const Command reg{"eval", add};

}  // namespace
}  // namespace spruce::cli
