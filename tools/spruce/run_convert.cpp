// spruce convert --model mlp --checkpoint DIR --variant int8-sparse --out FILE: a trained
// classifier converted for inference and saved as one file that `spruce eval --converted` loads.
// Its work, in spruce-torch; the flags are in cmd_convert.cpp.
#include <filesystem>
#include <iostream>

#include "cmd_convert.hpp"
#include "fashion_mnist/eval.hpp"
#include "flags.hpp"
#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/model_file.hpp"
#include "table.hpp"

namespace spruce::cli {

void run_convert(ConvertArgs& a) {
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
  check_not_inside("--out", a.out, a.checkpoint_dir, "the training run (--checkpoint)", kTrainRunFiles);
  check_not_inside("--out", a.out, a.o.data_dir, "the dataset (--data)", kFashionMnistFiles);
  check_output_file("--out", a.out);
  check_finished_run("--checkpoint", a.checkpoint_dir);
  // A run trained without pruning saves no masks: converted as sparse, its "sparse" model was dense.
  if (variant != torch::Variant::Int8Dense && std::filesystem::exists(a.checkpoint_dir + "/checkpoint.pt") &&
      !std::filesystem::exists(a.checkpoint_dir + "/masks.safetensors"))
    usage_error("--checkpoint " + in_quotes(a.checkpoint_dir) + " is a dense run (no masks.safetensors); convert it " +
                "with --variant int8-dense, or give a pruned run");
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

}  // namespace spruce::cli
