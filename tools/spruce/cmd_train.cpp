// spruce train --dataset fashion-mnist --model mlp|cnn [--pattern P --sparsity S | --recipe R.yaml]
//              --epochs N --seed N [--save DIR] [--json FILE] [--threads N]
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.hpp"
#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/threads.hpp"
#include "spruce/torch/trainer.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct TrainArgs {
  std::string dataset = "fashion-mnist", pattern, recipe, json, scope, criterion, resume;
  double sparsity = NAN;
  int threads = 0;
  bool no_progress = false;
  torch::TrainOptions options;
};

void resolve_pruning(TrainArgs& a) {
  torch::TrainOptions& o = a.options;
  const std::string saved_recipe = a.resume + "/recipe.yaml";
  if (!a.resume.empty() && a.recipe.empty() && std::filesystem::is_regular_file(saved_recipe)) {
    if (!a.pattern.empty() || !std::isnan(a.sparsity))
      usage_error("--resume continues with " + saved_recipe + "; drop --pattern and --sparsity");
    a.recipe = saved_recipe;  // the same schedule, in steps, whatever --epochs now says
  }
  if (!a.recipe.empty()) {
    if (!a.pattern.empty() || !std::isnan(a.sparsity))
      usage_error("give either --recipe or --pattern/--sparsity, not both");
    o.recipe = Recipe::load(a.recipe);
    return;
  }
  if (a.pattern.empty()) {
    if (!std::isnan(a.sparsity)) usage_error("--sparsity needs --pattern, e.g. --pattern 4x1 --sparsity 0.9");
    return;
  }
  o.pattern = Pattern::parse(a.pattern);
  if (o.pattern->is_nm()) {
    if (!std::isnan(a.sparsity) && std::abs(a.sparsity - o.pattern->natural_sparsity()) > 1e-9)
      usage_error("pattern " + o.pattern->str() + " (N:M: at most " + std::to_string(o.pattern->n()) +
                  " nonzeros in every " + std::to_string(o.pattern->m()) + " input channels) fixes the sparsity at " +
                  percent(o.pattern->natural_sparsity()) + "; drop --sparsity");
    o.sparsity = o.pattern->natural_sparsity();
  } else {
    if (std::isnan(a.sparsity)) usage_error("pattern " + o.pattern->str() + " needs --sparsity, the fraction of zeros (e.g. 0.9)");
    if (!(a.sparsity >= 0.0 && a.sparsity < 1.0)) usage_error("--sparsity must be a fraction of zeros in [0, 1), e.g. 0.9");
    o.sparsity = a.sparsity;
  }
  if (!a.scope.empty()) o.scope = parse_scope(a.scope);
  if (!a.criterion.empty()) o.criterion = parse_criterion(a.criterion);
}

void run(TrainArgs& a) {
  if (a.dataset != "fashion-mnist") usage_error("unknown dataset '" + a.dataset + "'; the one dataset is fashion-mnist");
  resolve_pruning(a);
  if (a.options.group_lasso < 0) usage_error("--group-lasso is a coefficient >= 0, e.g. 1e-4");
  if (!a.resume.empty()) a.options.resume_from = a.resume + "/checkpoint.pt";
  a.options.progress_bar = !a.no_progress;
  const int threads = a.threads > 0 ? a.threads : int(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_threads(threads);
  std::cerr << "spruce train: " << a.options.model << " on fashion-mnist, "
            << (a.options.recipe ? "recipe " + a.recipe
                : a.options.pattern ? a.options.pattern->str() + " at " + percent(a.options.sparsity) : std::string("dense"))
            << ", " << a.options.epochs << " epochs, seed " << a.options.seed << ", " << threads << " threads\n";

  const torch::TrainResult r = torch::train(a.options, std::cerr);

  if (!r.report.layers.empty()) std::cout << '\n' << torch::format_report(r.report);
  Table table({"Model", "Sparsity Pattern", "Sparsity Ratio", "Dataset", "Accuracy", "Epochs", "Seconds"});
  table.add_row({a.options.model, a.options.recipe ? "recipe" : a.options.pattern ? a.options.pattern->str() : "dense",
                 percent(r.sparsity, 2), "Fashion-MNIST", percent(r.test_accuracy, 2), std::to_string(r.epochs),
                 fixed(r.seconds, 1)});
  std::cout << '\n';
  table.print(std::cout);
  if (!a.options.save_dir.empty())
    std::cout << "\nsaved " << a.options.save_dir << "/{checkpoint.pt, model.safetensors"
              << (r.report.layers.empty() ? "" : ", masks.safetensors, recipe.yaml") << "}\n";
  if (!a.json.empty()) {
    nlohmann::ordered_json j = {{"test_accuracy", r.test_accuracy}, {"sparsity", r.sparsity}, {"epochs", r.epochs},
                                {"seconds", r.seconds},           {"model", a.options.model},  {"seed", a.options.seed},
                                {"steps", r.steps}};
    j["pattern"] = a.options.pattern ? a.options.pattern->str() : a.options.recipe ? "recipe" : "dense";
    j["history"] = nlohmann::ordered_json::array();
    for (const auto& e : r.history)
      j["history"].push_back({{"epoch", e.epoch}, {"loss", e.loss}, {"train_accuracy", e.train_accuracy},
                              {"test_accuracy", e.test_accuracy}, {"sparsity", e.sparsity}});
    write_file_atomic(a.json, j.dump(2) + "\n");
  }
}

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  torch::TrainOptions& o = args->options;
  auto* cmd = app.add_subcommand("train", "Train a Fashion-MNIST model, dense or pruned during training");
  cmd->add_option("--dataset", args->dataset, "Dataset (fashion-mnist)")->capture_default_str();
  cmd->add_option("--model", o.model, "Model: mlp (784-1024-1024-10) or cnn (2 conv + linear head)")
      ->check(CLI::IsMember({"mlp", "cnn"}))->capture_default_str();
  auto* pattern = cmd->add_option("--pattern", args->pattern, "Sparsity pattern: RxC blocks (4x1, 2x1, 4x16, 1x1) or N:M (2:4)");
  cmd->add_option("--sparsity", args->sparsity, "Target fraction of zeros, e.g. 0.9 (not with N:M)");
  cmd->add_option("--recipe", args->recipe, "Pruning recipe YAML (Intel Neural Compressor's keys)")->excludes(pattern);
  cmd->add_option("--epochs", o.epochs, "Training epochs")->capture_default_str();
  cmd->add_option("--seed", o.seed, "Seed of initialization and shuffling")->capture_default_str();
  cmd->add_option("--save", o.save_dir, "Folder for checkpoint.pt, masks.safetensors and model.safetensors");
  cmd->add_option("--json", args->json, "Write the final metrics as JSON to this file");
  cmd->add_option("--threads", args->threads, "Intra-op threads (default: all cores)");
  cmd->add_option("--batch-size", o.batch_size, "Batch size")->capture_default_str();
  cmd->add_option("--lr", o.learning_rate, "Adam's peak learning rate (cosine decay to 0)")->capture_default_str();
  cmd->add_option("--data", o.data_dir, "Folder of the Fashion-MNIST IDX .gz files")->capture_default_str();
  cmd->add_option("--train-limit", o.train_limit, "Use only the first N training examples");
  cmd->add_option("--test-limit", o.test_limit, "Use only the first N test examples");
  cmd->add_option("--scope", args->scope, "With --pattern: local or global (default global)");
  cmd->add_option("--criterion", args->criterion, "With --pattern: magnitude, gradient, snip or snip_momentum (default)");
  cmd->add_option("--group-lasso", o.group_lasso, "With --pattern: group-lasso coefficient (default 0: off)");
  cmd->add_option("--resume", args->resume, "Continue from DIR/checkpoint.pt with DIR/recipe.yaml (same --model)");
  cmd->add_option("--init", o.init_from, "Start from the weights of a .safetensors file");
  cmd->add_flag("--lock-pattern", o.lock_pattern, "Keep the loaded weights' zeros as masks when they come without masks");
  cmd->add_flag("--no-progress", args->no_progress, "Print one line per epoch instead of a progress bar");
  cmd->callback([args] { run(*args); });
}

const Command reg{"train", add_train};

}  // namespace
}  // namespace spruce::cli
