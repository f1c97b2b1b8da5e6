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
namespace {

std::string checkpoint_in(const std::string& dir) { return dir.empty() ? "" : dir + "/checkpoint.pt"; }

}  // namespace

void run_eval(EvalArgs& a) {
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
  check_output_file("--json", a.json);
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
