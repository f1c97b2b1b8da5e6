// spruce convert --model mlp --checkpoint DIR --variant int8-sparse --out FILE: a trained
// classifier converted for inference and saved as one file that `spruce eval --converted` loads.
// Its flags and the checks that need no LibTorch (both programs run them); the work is in
// run_convert.cpp.
#include "cmd_convert.hpp"

#include <filesystem>
#include <memory>
#include <string>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/calibration.hpp"
#include "spruce/error.hpp"

namespace spruce::cli {

void check_convert_args(ConvertArgs& a) {
  if (a.variant != "fp32-sparse" && a.variant != "int8-sparse" && a.variant != "int8-dense")
    usage_error("unknown variant '" + a.variant + "': valid are fp32-sparse, int8-sparse, int8-dense");
  a.o.calibration = parse_calibration(a.calibration);
  a.o.fallback = parse_fallback(a.fallback);
  // Calibration flags that would change nothing are refused, saying why (the metadata said "none").
  if (a.variant == "fp32-sparse")
    for (const char* flag : {"--calibration", "--percentile", "--calibration-samples"})
      if (a.cmd->count(flag) > 0)
        usage_error(std::string(flag) + " has no effect on --variant fp32-sparse, which is not quantized; drop it");
  if (a.cmd->count("--percentile") > 0 && a.o.calibration != CalibrationMethod::Percentile)
    usage_error("--percentile acts only with --calibration percentile; add it, or drop --percentile");
  check_not_inside("--out", a.out, a.checkpoint_dir, "the training run (--checkpoint)", kTrainRunFiles);
  check_not_inside("--out", a.out, a.o.data_dir, "the dataset (--data)", kFashionMnistFiles);
  check_output_file("--out", a.out, "safetensors");
  check_finished_run("--checkpoint", a.checkpoint_dir);
  // A run trained without pruning saves no masks: converted as sparse, its "sparse" model was dense.
  if (a.variant != "int8-dense" && std::filesystem::exists(a.checkpoint_dir + "/checkpoint.pt") &&
      !std::filesystem::exists(a.checkpoint_dir + "/masks.safetensors"))
    usage_error("--checkpoint " + in_quotes(a.checkpoint_dir) + " is a dense run (no masks.safetensors); convert it " +
                "with --variant int8-dense, or give a pruned run");
}

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
