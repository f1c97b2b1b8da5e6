// spruce eval --model mlp --dense DIR --sparse DIR [--converted FILE]: accuracy and speed of the
// converted variants, and of converted models loaded from files.
// Its work, in spruce-torch; the flags are in cmd_eval.cpp.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cmd_eval.hpp"
#include "fashion_mnist/eval.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"
#include "table.hpp"

namespace spruce::cli {
void run_eval(EvalArgs& a) {
  check_eval_args(a);
  const auto rows = fashion_mnist::evaluate_variants(a.o, std::cerr);

  std::vector<std::string> header{""}, acc{"Accuracy"}, speed{"Throughput (images/s)"},
      sparsity{"Sparsity (converted layers)"};
  const fashion_mnist::EvalRow* base = nullptr;
  const fashion_mnist::EvalRow *f32s = nullptr, *i8s = nullptr;
  for (const auto& r : rows) {
    if (!base) base = &r;
    if (r.variant == "fp32-sparse" && r.file.empty()) f32s = &r;
    if (r.variant == "int8-sparse" && r.file.empty()) i8s = &r;
    header.push_back(r.file.empty() ? r.variant : r.variant + " (loaded)");
    acc.push_back(percent(r.accuracy, 2) +
                  (base->accuracy > 0 ? " (" + percent(r.accuracy / base->accuracy, 2) + ")" : ""));
    speed.push_back(fixed(r.images_per_second, 0) + " (" + fixed(r.images_per_second / base->images_per_second, 2) +
                    "x)");
    sparsity.push_back(r.variant.ends_with("dense") && r.sparsity == 0 ? "-" : percent(r.sparsity, 1));
  }
  Table t(header);
  t.add_row(acc);
  t.add_row(speed);
  t.add_row(sparsity);
  std::cout << "\n"
            << a.o.model << " on Fashion-MNIST, " << a.o.threads << " threads, batch " << a.o.batch
            << "; ratios against " << base->variant << "\n\n";
  t.print(std::cout);
  if (f32s && i8s)
    std::cout << "\nINT8 sparse vs FP32 sparse: " << fixed(100 * (i8s->accuracy - f32s->accuracy), 2)
              << " points (target: within 0.3)\n";
  if (a.json.empty()) return;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : rows)
    out.push_back({{"variant", r.variant},
                   {"accuracy", r.accuracy},
                   {"correct", r.correct},
                   {"test_images", r.test_images},
                   {"images_per_second", r.images_per_second},
                   {"sparsity", r.sparsity},
                   {"threads", a.o.threads},
                   {"batch", a.o.batch}});
  for (size_t i = 0; i < rows.size(); ++i)
    if (!rows[i].file.empty()) out[i]["file"] = rows[i].file;
  write_json(a.json, out);
}

}  // namespace spruce::cli
