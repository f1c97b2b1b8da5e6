// spruce eval --model mlp --dense DIR --sparse DIR [--converted FILE]: accuracy and speed of the
// converted variants, and of converted models loaded from files.
// Its flags and the checks that need no LibTorch (both programs run them); the work is in
// run_eval.cpp.
#include "cmd_eval.hpp"

#include <filesystem>
#include <memory>
#include <string>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/calibration.hpp"
#include "spruce/error.hpp"

namespace spruce::cli {
namespace {

std::string checkpoint_in(const std::string& dir) { return dir.empty() ? "" : dir + "/checkpoint.pt"; }

}  // namespace

void check_eval_args(EvalArgs& a) {
  check_finished_run("--dense", a.dense_dir);
  check_finished_run("--sparse", a.sparse_dir);
  a.o.dense_checkpoint = checkpoint_in(a.dense_dir);
  a.o.sparse_checkpoint = checkpoint_in(a.sparse_dir);
  // A pruned run saves its masks beside the checkpoint; without them the "sparse" rows would be dense.
  if (!a.sparse_dir.empty() && std::filesystem::exists(a.o.sparse_checkpoint) &&
      !std::filesystem::exists(a.sparse_dir + "/masks.safetensors"))
    usage_error("--sparse " + in_quotes(a.sparse_dir) +
                " is a dense run (no masks.safetensors); give it as --dense, and a pruned run as --sparse");
  a.o.calibration = parse_calibration(a.calibration);
  a.o.fallback = parse_fallback(a.fallback);
  if (a.cmd->count("--percentile") > 0 && a.o.calibration != CalibrationMethod::Percentile)
    usage_error("--percentile acts only with --calibration percentile; add it, or drop --percentile");
  // A --converted model runs as it was converted: these act only on the runs eval converts here.
  if (a.cmd->count("--fallback") > 0 && a.sparse_dir.empty())
    usage_error(
        "--fallback acts on the layers eval converts from a pruned run (--sparse); a --converted model "
        "keeps the choice it was converted with (convert it again with --fallback)");
  for (const char* flag : {"--calibration", "--percentile"})
    if (a.cmd->count(flag) > 0 && a.sparse_dir.empty() && a.dense_dir.empty())
      usage_error(std::string(flag) +
                  " acts on the runs eval converts (--dense, --sparse); a --converted model keeps the calibration "
                  "it was converted with (convert it again with " +
                  flag + ")");
  for (const auto& file : a.o.converted_files) check_not_input("--json", a.json, file, "a --converted model");
  const auto same_file = [](const std::string& a, const std::string& b) {
    std::error_code ec;
    return a == b || std::filesystem::equivalent(a, b, ec);
  };
  if (const auto i = first_repeat(a.o.converted_files, same_file))
    usage_error("--converted " + in_quotes(a.o.converted_files[*i]) + " is given twice; give it once");
  check_not_inside("--json", a.json, a.dense_dir, "the dense run (--dense)", kTrainRunFiles);
  check_not_inside("--json", a.json, a.sparse_dir, "the pruned run (--sparse)", kTrainRunFiles);
  check_not_inside("--json", a.json, a.o.data_dir, "the dataset (--data)", kFashionMnistFiles);
  check_output_file("--json", a.json, "JSON");
}

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
