// spruce convert --model mlp --checkpoint DIR --variant int8-sparse --out FILE: a trained
// classifier converted for inference and saved as one file that `spruce eval --converted` loads.
// Its flags; the work is in run_convert.cpp.
#include "cmd_convert.hpp"

#include <memory>

#include "command.hpp"
#include "flags.hpp"

namespace spruce::cli {
namespace {

void add(CLI::App& app) {
  auto a = std::make_shared<ConvertArgs>();
  auto* cmd = app.add_subcommand("convert", "Convert a trained classifier for inference and save it as one file");
  a->cmd = cmd;
  cmd->add_option("--model", a->o.model, "mlp or cnn (as trained)")->capture_default_str();
  cmd->add_option("--checkpoint", a->checkpoint_dir, "The --save folder of `spruce train`")
      ->check(non_empty())
      ->required();
  cmd->add_option("--variant", a->variant, "fp32-sparse, int8-sparse or int8-dense")->capture_default_str();
  cmd->add_option("--out", a->out, "The model file to write (safetensors)")->check(non_empty())->required();
  cmd->add_option("--data", a->o.data_dir, "Fashion-MNIST IDX folder (INT8 calibration images)")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--calibration", a->calibration, "minmax or percentile")->capture_default_str();
  cmd->add_option("--percentile", a->o.percentile, "Percentile for --calibration percentile")
      ->check(real_in(50, 100, true, false))
      ->capture_default_str();
  cmd->add_option("--calibration-samples", a->o.calibration_samples, "Training images to calibrate on")
      ->check(int_in(1, 60000))
      ->capture_default_str();
  cmd->add_option("--threads", a->o.threads, "Threads for calibration and the operators")
      ->check(thread_count())
      ->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "Batch size each layer times sparse against oneDNN for (the choice is saved)")
      ->check(int_in(1, 1 << 16))
      ->capture_default_str();
  add_fallback_option(cmd, a->fallback);
  cmd->callback([a] { run_convert(*a); });
}

const Command reg{"convert", add};

}  // namespace
}  // namespace spruce::cli
