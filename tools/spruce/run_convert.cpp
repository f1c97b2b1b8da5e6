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
  check_convert_args(a);
  const torch::Variant variant = torch::parse_variant(a.variant);
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
