// spruce convert --model mlp --checkpoint DIR --variant int8-sparse --out FILE: a trained
// classifier converted for inference and saved as one file that `spruce eval --converted` loads.
#include <iostream>

#include "command.hpp"
#include "fashion_mnist/eval.hpp"
#include "flags.hpp"
#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/model_file.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct ConvertArgs {
  fashion_mnist::EvalOptions o;
  std::string checkpoint_dir, variant = "int8-sparse", calibration = "minmax", out, fallback = "auto";
  CLI::App* cmd = nullptr;
};

void run(ConvertArgs& a) {
  const torch::Variant variant = torch::parse_variant(a.variant);
  a.o.calibration = parse_calibration(a.calibration);
  a.o.fallback = parse_fallback(a.fallback);
  // Calibration flags that would change nothing are refused, saying why (the metadata said "none").
  if (variant == torch::Variant::F32Sparse)
    for (const char* flag : {"--calibration", "--percentile", "--calibration-samples"})
      if (a.cmd->count(flag) > 0)
        usage_error(std::string(flag) + " has no effect on --variant fp32-sparse, which is not quantized; drop it");
  if (a.cmd->count("--percentile") > 0 && a.o.calibration != CalibrationMethod::Percentile)
    usage_error("--percentile acts only with --calibration percentile; add it, or drop --percentile");
  check_not_inside("--out", a.out, a.checkpoint_dir, "the training run (--checkpoint)");
  check_not_inside("--out", a.out, a.o.data_dir, "the dataset (--data)");
  check_output_file("--out", a.out);
  const auto c = fashion_mnist::convert_checkpoint(a.o, a.checkpoint_dir + "/checkpoint.pt", variant);

  Table t({"layer", "shape (in->out)", "pattern", "sparsity", "kernel", "packed KiB", "dense KiB"});
  for (const auto& l : c.layers) {
    t.add_row({l.name, std::to_string(l.in_features) + "->" + std::to_string(l.out_features), l.pattern,
               percent(l.sparsity, 1), l.kernel, fixed(double(l.packed_bytes) / 1024, 1),
               fixed(double(l.dense_bytes) / 1024, 1)});
  }
  torch::save_converted_model(a.out, *c.model,
                              {{"model", a.o.model},
                               {"variant", a.variant},
                               {"checkpoint", a.checkpoint_dir + "/checkpoint.pt"},
                               {"calibration", a.variant == "fp32-sparse" ? "none" : a.calibration}});
  t.print(std::cout);
  std::cout << "\nwrote " << a.out << " (" << a.variant << "); evaluate it with: spruce eval --model " << a.o.model
            << " --converted " << a.out << "\n";
}

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
  cmd->callback([a] { run(*a); });
}

const Command reg{"convert", add};

}  // namespace
}  // namespace spruce::cli
