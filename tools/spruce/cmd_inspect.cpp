// spruce inspect FILE.safetensors [--pattern P] [--json]
#include <cmath>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "command.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/prune_checkpoint.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct InspectArgs {
  std::string file, pattern;
  bool json = false;
};

void run(const InspectArgs& a) {
  std::optional<Pattern> pattern;
  if (!a.pattern.empty()) pattern = Pattern::parse(a.pattern);
  const SafetensorsFile file = read_safetensors(a.file);

  nlohmann::ordered_json out = {{"file", a.file}, {"tensors", nlohmann::ordered_json::array()}};
  Table table({"tensor", "shape", "dtype", "sparsity", pattern ? "follows " + pattern->str() : "pattern"});
  int64_t weights = 0, all = 0;
  double weight_zeros = 0, all_zeros = 0;
  std::string non_finite;  // "name (count), ..." of the tensors holding NaN or Inf
  int64_t tensors_non_finite = 0;
  for (const auto& t : file.tensors) {
    const double s = tensor_sparsity(t);
    const std::vector<float> values = is_prunable(t.dtype) ? t.to_f32() : std::vector<float>();
    int64_t bad = 0;
    for (const float v : values) bad += !std::isfinite(v);
    if (bad > 0 && tensors_non_finite++ < 3)
      non_finite += (non_finite.empty() ? "" : ", ") + t.name + " (" + std::to_string(bad) + ")";
    std::optional<bool> ok;
    if (pattern && is_weight(t)) {
      const MatrixF w = to_matrix(values.data(), t.shape);
      ok = follows_pattern(*pattern, w.view());
    }
    all += t.numel();
    all_zeros += s * double(t.numel());
    if (is_weight(t)) weights += t.numel(), weight_zeros += s * double(t.numel());
    table.add_row({t.name, shape_string(t.shape), to_string(t.dtype), percent(s, 2), ok ? (*ok ? "yes" : "NO") : "-"});
    out["tensors"].push_back({{"name", t.name},
                              {"shape", t.shape},
                              {"dtype", to_string(t.dtype)},
                              {"sparsity", s},
                              {"non_finite", bad},
                              {"pattern_ok", ok ? nlohmann::ordered_json(*ok) : nlohmann::ordered_json(nullptr)}});
  }
  const double total = weights ? weight_zeros / double(weights) : 0.0;
  out["total_sparsity"] = total;
  out["weights"] = weights;
  out["all_tensors_sparsity"] = all ? all_zeros / double(all) : 0.0;
  if (pattern) out["pattern"] = pattern->str();
  if (!file.metadata.empty()) out["metadata"] = file.metadata;
  // A diagnosis first, then the error: the table or JSON shows where the NaNs sit.
  const auto refuse_non_finite = [&] {
    if (tensors_non_finite == 0) return;
    data_error(a.file + ": " + std::to_string(tensors_non_finite) + " tensor(s) hold NaN or Inf: " + non_finite +
               (tensors_non_finite > 3 ? ", ..." : "") + "; a model with them computes NaN");
  };
  if (a.json) {
    std::cout << json_text(out);
    return refuse_non_finite();
  }
  std::cout << a.file << ": " << file.tensors.size() << " tensors\n\n";
  table.print(std::cout);
  std::cout << "\nweights (F32/F16/BF16, rank 2 or 4): " << weights << ", sparsity " << percent(total, 2)
            << "; all tensors: " << all << " elements, sparsity "
            << percent(out["all_tensors_sparsity"].get<double>(), 2) << "\n";
  if (pattern && pattern->is_nm())
    std::cout << "N:M means at most " << pattern->n() << " nonzeros in every " << pattern->m()
              << " consecutive input channels\n";
  refuse_non_finite();
}

void add(CLI::App& app) {
  auto args = std::make_shared<InspectArgs>();
  auto* cmd = app.add_subcommand(
      "inspect",
      "Show each tensor's shape, dtype and sparsity, and whether its zeros follow a pattern; exit status 1 where a "
      "tensor holds NaN or Inf");
  cmd->add_option("file", args->file, "A .safetensors file")->required();
  cmd->add_option("--pattern", args->pattern, "Check each weight's zeros against this pattern (e.g. 4x1, 2:4)")
      ->check(non_empty());
  cmd->add_flag("--json", args->json, "Print one JSON object instead of the table");
  cmd->callback([args] { run(*args); });
}

const Command reg{"inspect", add};

}  // namespace
}  // namespace spruce::cli
