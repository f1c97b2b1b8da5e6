// spruce prune IN.safetensors -o OUT.safetensors (--pattern P [--sparsity S] | --recipe R.yaml)
#include <algorithm>
#include <cmath>
#include <iostream>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/error.hpp"
#include "spruce/prune_checkpoint.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct PruneArgs {
  std::string input, output, pattern, recipe, scope, criterion = "magnitude", include, exclude;
  double sparsity = NAN;
  bool dry_run = false;
};

Recipe recipe_from(const PruneArgs& a) {
  if (!a.recipe.empty() && !a.pattern.empty()) usage_error("give either --recipe or --pattern, not both");
  if (!a.recipe.empty()) {
    if (!std::isnan(a.sparsity))
      usage_error("--sparsity comes from the recipe's target_sparsity; drop --sparsity or --recipe");
    const std::string text = Recipe::read_text(a.recipe);
    Recipe r = Recipe::parse(text, a.recipe);
    // A checkpoint holds no gradients or inputs: a pruning_type the recipe names must be magnitude;
    // where it names none (INC's default, snip_momentum, needs training), prune_checkpoint's
    // magnitude is used all the same.
    const std::vector<bool> named = Recipe::groups_setting(text, "pruning_type");
    for (size_t i = 0; i < r.groups.size(); ++i)
      if (const Criterion c = r.groups[i].criterion; named.at(i) && c != Criterion::Magnitude)
        usage_error(a.recipe + ": pruning_type " + to_string(c) +
                    (r.groups.size() > 1 ? " (pruning config " + std::to_string(i + 1) + ")" : "") +
                    (needs_inputs(c) ? " needs the layers' inputs" : " needs gradients") +
                    ", which a checkpoint does not hold; set pruning_type: magnitude, or prune while training "
                    "with `spruce train --recipe`");
    return r;
  }
  if (a.pattern.empty())
    usage_error("give --pattern P --sparsity S (e.g. --pattern 4x1 --sparsity 0.9) or --recipe R.yaml");
  Recipe r = Recipe::from_flags(a.pattern, a.sparsity);
  if (!r.groups[0].pattern.is_nm()) r.groups[0].scope = Scope::Local;  // each tensor to exactly its ratio
  return r;
}

void run(const PruneArgs& a) {
  if (a.output.empty() && !a.dry_run) usage_error("give the output file with -o OUT.safetensors, or --dry-run");
  if (const Criterion c = parse_criterion(a.criterion); c != Criterion::Magnitude)
    usage_error("criterion " + a.criterion + (needs_inputs(c) ? " needs the layers' inputs" : " needs gradients") +
                ", which a checkpoint does not hold; use magnitude here, or train with `spruce train`");
  CheckpointPruneOptions opt;
  opt.recipe = recipe_from(a);
  if (!a.scope.empty()) opt.scope = parse_scope(a.scope);
  if (opt.scope == Scope::Global)
    for (const auto& g : opt.recipe.groups) {
      if (g.pattern.is_nm() && !g.gradual_nm)
        usage_error("--scope global changes nothing for " + g.pattern.str() +
                    ", which prunes every group of every tensor alike; drop --scope");
      g.check_global_limits(a.recipe.empty() ? "--scope global" : a.recipe);
    }
  opt.include = a.include;
  opt.exclude = a.exclude;
  opt.source = a.input;
  check_not_input("-o", a.output, a.recipe, "--recipe, the recipe");
  if (!a.dry_run) check_output_file("-o", a.output, "safetensors");  // before the work, so a typo cannot cost it

  SafetensorsFile file = read_safetensors(a.input);
  refuse_converted_model(file, a.input);
  const auto reports = prune_checkpoint(file, opt);
  const auto chosen = std::find_if(reports.begin(), reports.end(), [](const auto& r) { return r.pruned; });
  if (chosen == reports.end())
    usage_error("none of the " + std::to_string(reports.size()) + " tensors of " + in_quotes(a.input) + " is pruned" +
                (reports.empty() ? "" : " (" + in_quotes(reports[0].name) + ": " + reports[0].reason + ")") +
                "; check --include, --exclude or the recipe's op_names");

  Table table({"tensor", "shape", "dtype", "pattern", "target", "achieved", "note"});
  int64_t weights = 0;
  double zeros = 0;
  int pruned = 0;
  for (const auto& r : reports) {
    table.add_row({r.name, shape_string(r.shape), to_string(r.dtype), r.pruned ? r.pattern : "-",
                   r.pruned ? percent(r.target, 2) : "-", percent(r.sparsity, 2), r.pruned ? r.note : r.reason});
    if (r.pruned) {
      int64_t n = 1;
      for (auto d : r.shape) n *= d;
      weights += n;
      zeros += r.sparsity * double(n);
      ++pruned;
    }
  }
  std::string scopes;
  for (const auto& g : opt.recipe.groups) {
    const std::string s = to_string(opt.scope.value_or(g.scope));
    if (scopes.find(s) == std::string::npos) scopes += (scopes.empty() ? "" : "/") + s;
  }
  std::cout << "spruce prune: " << a.input << " (criterion magnitude, scope " << scopes << ")\n\n";
  table.print(std::cout);
  std::cout << "\n"
            << pruned << " tensors pruned, " << weights << " weights, sparsity "
            << percent(weights ? zeros / double(weights) : 0.0, 2) << "\n";
  if (a.dry_run) {
    std::cout << "dry run: nothing written\n";
    return;
  }
  require_standard_output();  // a run that fails replaces nothing
  write_safetensors(a.output, file);
  std::cout << "wrote " << a.output << "\n";
}

void add(CLI::App& app) {
  auto args = std::make_shared<PruneArgs>();
  auto* cmd =
      app.add_subcommand("prune", "Prune the weights of a safetensors checkpoint to a sparsity pattern, by magnitude");
  cmd->add_option("input", args->input, "Input .safetensors file")->required();
  cmd->add_option("-o,--output", args->output, "Output .safetensors file (written atomically)")->check(non_empty());
  cmd->add_option("--pattern", args->pattern, "RxC (4x1, 1x4, 4x16, 1x1, channelx1, 1xchannel) or N:M (2:4)")
      ->check(non_empty());
  cmd->add_option("--sparsity", args->sparsity, "Fraction of zeros, e.g. 0.9 (implied by an N:M pattern)")
      ->check(fraction());
  cmd->add_option("--recipe", args->recipe,
                  "YAML recipe with Intel Neural Compressor's keys (pruned by magnitude: a pruning_type it names must "
                  "be magnitude)")
      ->check(non_empty());
  cmd->add_option("--scope", args->scope,
                  "local (exact ratio per tensor; the default without a recipe) or global (one threshold)")
      ->check(CLI::IsMember({"local", "global"}));
  cmd->add_option(
      "--criterion", args->criterion,
      "Score: magnitude (the others need gradients or the layers' inputs, which a checkpoint does not hold)");
  cmd->add_option("--include", args->include, "Only prune tensors whose names match this regex");
  cmd->add_option("--exclude", args->exclude, "Never prune tensors whose names match this regex");
  cmd->add_flag("--dry-run", args->dry_run, "Print the table, write nothing");
  cmd->callback([args] { run(*args); });
}

const Command reg{"prune", add};

}  // namespace
}  // namespace spruce::cli
