// spruce train --dataset fashion-mnist --model mlp|cnn [--pattern P --sparsity S | --recipe R.yaml]
//              --epochs N --seed N [--save DIR] [--json FILE] [--threads N]
// Its flags, and the checks that need no LibTorch (both programs run them); the work is in run_train.cpp.
#include "cmd_train.hpp"

#include <cmath>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/criteria.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/recipe.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

// Whether the pruning flag given says what the resumed run's single recipe group already does (so
// that "the same settings" may be repeated when a stopped run is continued).
bool repeats_resumed(const TrainArgs& a, const std::string& flag) {
  if (a.resume.empty() || !a.options.recipe || a.options.recipe->groups.size() != 1) return false;
  const PruningGroup& g = a.options.recipe->groups[0];
  if (flag == "--scope") return parse_scope(a.scope) == g.scope;
  if (flag == "--criterion") return parse_criterion(a.criterion) == g.criterion;
  if (flag == "--group-lasso") return a.options.group_lasso == (g.group_lasso ? g.reg_coeff : 0.0);
  return false;
}

// Flags that would change nothing in this run are refused, saying why: a run with them silently
// ignored looked like an experiment that made no difference.
void refuse_flags_without_effect(const TrainArgs& a) {
  const bool resumed_recipe = !a.resume.empty() && a.recipe == a.resume + "/recipe.yaml";
  const std::pair<const char*, const char*> pruning_flags[] = {{"--scope", "pruning_scope"},
                                                               {"--criterion", "pruning_type"},
                                                               {"--group-lasso", "reg_type: group_lasso, reg_coeff"}};
  for (const auto& [flag, key] : pruning_flags) {
    if (a.cmd->count(flag) == 0) continue;
    if (resumed_recipe && repeats_resumed(a, flag)) continue;
    if (a.options.recipe)
      usage_error(std::string(flag) + " has no effect with " +
                  (resumed_recipe ? "--resume, which continues with " + in_quotes(a.recipe) : std::string("--recipe")) +
                  "; set " + key + " in the recipe");
    if (!a.options.pattern)
      usage_error(std::string(flag) + " needs --pattern (with --sparsity): this run prunes nothing");
  }
  if (a.teacher_dir.empty())
    for (const char* flag : {"--distill-weight", "--distill-temperature"})
      if (a.cmd->count(flag) > 0) usage_error(std::string(flag) + " acts only with --teacher; add one, or drop it");
}

// The flags that go into a run's recipe.yaml besides the pattern, given again on --resume: taken
// where the saved single-group recipe `g` (null: several groups) does the same (the resumed run
// follows the recipe), refused where it does not.
void take_repeated_recipe_flags(TrainArgs& a, const PruningGroup* g, const std::string& saved_recipe) {
  fashion_mnist::TrainOptions& o = a.options;
  auto take = [&](const char* flag, const char* key, bool same) {
    if (a.cmd->count(flag) == 0) return;
    if (!g || !same)
      usage_error(std::string(flag) + " differs from the run --resume continues (" + saved_recipe + ", " + key +
                  "); drop it, or start afresh in another folder");
  };
  take("--straight-through", "straight_through", g && o.straight_through == g->straight_through);
  take("--straight-through-decay", "straight_through_decay",
       g && std::abs(o.straight_through_decay - g->straight_through_decay) < 1e-12);
  take("--gradual-nm", "gradual_nm", g && o.gradual_nm == g->gradual_nm);
  // The recipe carries them: the checks of these flags against --pattern do not apply.
  o.straight_through = false;
  o.straight_through_decay = 0;
  o.gradual_nm = false;
}

void resolve_pruning(TrainArgs& a) {
  fashion_mnist::TrainOptions& o = a.options;
  const std::string saved_recipe = a.resume + "/recipe.yaml";
  if (!a.resume.empty() && a.recipe.empty() && std::filesystem::is_regular_file(saved_recipe)) {
    a.recipe = saved_recipe;  // the same schedule, in steps, whatever --epochs now says
    o.recipe = Recipe::load(saved_recipe);
    const PruningGroup* g = o.recipe->groups.size() == 1 ? &o.recipe->groups[0] : nullptr;
    if (!a.pattern.empty() || !std::isnan(a.sparsity)) {
      // The run's own --pattern and --sparsity may be repeated; others are refused.
      const bool same = g && !a.pattern.empty() && [&] {
        const PruningGroup flags = Recipe::from_flags(a.pattern, a.sparsity).groups[0];
        return flags.pattern == g->pattern && std::abs(flags.target() - g->target()) < 1e-9;
      }();
      if (!same)
        usage_error("--resume continues with " + saved_recipe +
                    (g ? ", which prunes " + g->pattern.str() + " to " + percent(g->target(), 2)
                       : std::string(", a recipe of ") + std::to_string(o.recipe->groups.size()) + " groups") +
                    "; drop --pattern and --sparsity" +
                    (a.pattern.empty() ? " (--sparsity alone names no pattern)" : ""));
      a.pattern.clear();
      a.sparsity = NAN;
    }
    take_repeated_recipe_flags(a, g, saved_recipe);
    return;
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
  const PruningGroup flags = Recipe::from_flags(a.pattern, a.sparsity).groups[0];
  o.pattern = flags.pattern;
  o.sparsity = flags.schedule.target;
  if (!a.scope.empty()) o.scope = parse_scope(a.scope);
  if (!a.criterion.empty()) o.criterion = parse_criterion(a.criterion);
  // The group recipe_for_flags builds: under global scope a target past the per-layer cap stopped
  // at the cap (0.99 gave 98%), as a recipe or `spruce prune` refuses.
  PruningGroup group = flags;
  if (o.scope) group.scope = *o.scope;
  if (group.scope == Scope::Global)
    group.check_global_limits(std::string("--sparsity under global scope") + (o.scope ? "" : " (the default)"));
}

void add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  fashion_mnist::TrainOptions& o = args->options;
  auto* cmd = app.add_subcommand("train", "Train a Fashion-MNIST model, dense or pruned during training");
  args->cmd = cmd;
  cmd->add_option("--dataset", args->dataset, "Dataset (fashion-mnist)")->capture_default_str();
  cmd->add_option("--model", o.model, "Model: mlp (784-1024-1024-10) or cnn (2 conv + linear head)")
      ->check(CLI::IsMember({"mlp", "cnn"}))
      ->capture_default_str();
  auto* pattern =
      cmd->add_option("--pattern", args->pattern, "Sparsity pattern: RxC blocks (4x1, 2x1, 4x16, 1x1) or N:M (2:4)")
          ->check(non_empty());
  cmd->add_option("--sparsity", args->sparsity, "Target fraction of zeros, e.g. 0.9 (an N:M pattern sets its own)")
      ->check(fraction());
  cmd->add_option("--recipe", args->recipe, "Pruning recipe YAML (Intel Neural Compressor's keys)")
      ->check(non_empty())
      ->excludes(pattern);
  cmd->add_option("--epochs", o.epochs, "Training epochs")->check(int_in(1, 10000))->capture_default_str();
  cmd->add_option("--stop-after", o.stop_after,
                  "End this sitting after epoch N, its checkpoint in --save; --resume continues it as if never "
                  "stopped")
      ->check(int_in(1, 10000));
  cmd->add_option("--seed", o.seed, "Seed of initialization and shuffling")
      ->check(uint_in(0, UINT32_MAX))
      ->capture_default_str();
  cmd->add_option("--save", o.save_dir, "Folder for checkpoint.pt, masks.safetensors and model.safetensors")
      ->check(non_empty());
  cmd->add_option("--json", args->json, "Write the final metrics as JSON to this file")->check(non_empty());
  cmd->add_option("--threads", args->threads, "Intra-op threads (default: all cores)")->check(thread_count());
  cmd->add_option("--batch-size", o.batch_size, "Batch size")->check(int_in(1, 1 << 16))->capture_default_str();
  cmd->add_option("--lr", o.learning_rate, "Adam's peak learning rate (cosine decay to 0)")
      ->check(real_in(0, 10, true))
      ->capture_default_str();
  cmd->add_option("--data", o.data_dir, "Folder of the Fashion-MNIST IDX .gz files")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--train-limit", o.train_limit, "Use only the first N training examples")
      ->check(int_in(1, INT32_MAX));
  cmd->add_option("--test-limit", o.test_limit, "Use only the first N test examples")->check(int_in(1, INT32_MAX));
  cmd->add_option("--scope", args->scope, "With --pattern: local or global (default global)")
      ->check(CLI::IsMember({"local", "global"}));
  cmd->add_option("--criterion", args->criterion,
                  "With --pattern: magnitude, gradient, snip, snip_momentum (default), wanda (|W| x input RMS) or "
                  "sparsegpt (Linear layers, --scope local; the kept weights make up for the pruned)");
  cmd->add_option("--group-lasso", o.group_lasso, "With --pattern: group-lasso coefficient (default 0: off)")
      ->check(real_in(0, 1e3));
  cmd->add_flag("--straight-through", o.straight_through,
                "With --pattern: pruned weights keep learning through the masked forward until the ramp ends, "
                "and mask updates may bring them back (SR-STE)");
  cmd->add_flag("--gradual-nm", o.gradual_nm,
                "With an N:M --pattern: the share of weight groups pruned to N:M grows on the schedule, those "
                "that lose least first (default: N:M whole at the ramp's start)");
  cmd->add_option("--straight-through-decay", o.straight_through_decay,
                  "With --straight-through: the fraction by which pruned weights shrink each step (0: none)")
      ->check(real_in(0, 1, false, true));
  cmd->add_option("--resume", args->resume,
                  "Continue from DIR/checkpoint.pt with DIR/recipe.yaml (same --model, --batch-size, --lr, --seed, "
                  "--train-limit)")
      ->check(non_empty());
  cmd->add_option("--init", o.init_from, "Start from the weights of a .safetensors file")->check(non_empty());
  cmd->add_option("--teacher", args->teacher_dir,
                  "Distil from a trained model of the same architecture: the --save folder of a `spruce train`")
      ->check(non_empty());
  cmd->add_option("--distill-weight", o.distill_weight, "With --teacher: share of the distillation loss")
      ->check(real_in(0, 1, true, false))
      ->capture_default_str();
  cmd->add_option("--distill-temperature", o.distill_temperature, "With --teacher: softmax temperature")
      ->check(real_in(0.01, 100))
      ->capture_default_str();
  cmd->add_flag("--lock-pattern", o.lock_pattern,
                "Keep the loaded weights' zeros as masks when they come without masks");
  cmd->add_flag("--no-progress", args->no_progress, "Print one line per epoch instead of a progress bar");
  cmd->add_flag("--overwrite", args->overwrite, "Replace a run already saved in the --save folder");
  auto* nproc = cmd->add_option("--nproc", args->nproc,
                                "Data-parallel: start N local ranks (threads split between them), Gloo over loopback")
                    ->check(int_in(1, 256))
                    ->capture_default_str();
  cmd->add_option("--world-size", args->world_size, "Data-parallel job: number of ranks (env WORLD_SIZE)")
      ->check(int_in(1, 1 << 16))
      ->excludes(nproc);
  cmd->add_option("--rank", args->rank, "Data-parallel job: this process's rank, 0 to world size - 1 (env RANK)")
      ->check(int_in(0, 1 << 16))
      ->excludes(nproc);
  cmd->add_option("--master-addr", args->master_addr, "Data-parallel job: rank 0's address (env MASTER_ADDR)")
      ->check(non_empty())
      ->excludes(nproc);
  cmd->add_option("--master-port", args->master_port, "Data-parallel: rank 0's TCP port (env MASTER_PORT; 29500)")
      ->check(int_in(1, 65535));
  cmd->add_option("--dist-timeout", args->dist_timeout,
                  "Data-parallel: seconds a rank waits for the others before it fails")
      ->check(int_in(1, 86400))
      ->capture_default_str();
  cmd->callback([args] { run_train(*args); });
}

const Command reg{"train", add_train};

}  // namespace

void check_train_args(TrainArgs& a) {
  if (a.dataset != "fashion-mnist")
    usage_error("unknown dataset '" + a.dataset + "'; the one dataset is fashion-mnist");
  resolve_pruning(a);
  if (!a.criterion.empty()) parse_criterion(a.criterion);  // a misspelt name is refused, --pattern or not
  if (a.options.group_lasso < 0) usage_error("--group-lasso is a coefficient >= 0, e.g. 1e-4");
  refuse_flags_without_effect(a);
  if (a.options.straight_through && !a.options.pattern)
    usage_error("--straight-through needs --pattern (in a recipe, set straight_through: true)");
  if (a.options.straight_through_decay > 0 && !a.options.straight_through)
    usage_error("--straight-through-decay acts only with --straight-through; add it, or drop the decay");
  if (a.options.straight_through && a.options.criterion == Criterion::SparseGpt)
    usage_error("--straight-through cannot be used with --criterion sparsegpt, which rewrites the kept weights");
  if (a.options.gradual_nm && !(a.options.pattern && a.options.pattern->is_nm()))
    usage_error("--gradual-nm needs an N:M --pattern, such as 2:4 (in a recipe, set gradual_nm: true)");
  if (a.options.gradual_nm && a.options.criterion == Criterion::SparseGpt)
    usage_error("--gradual-nm cannot be used with --criterion sparsegpt, which sets N:M whole");
  if (!a.resume.empty() && std::filesystem::is_regular_file(a.resume))
    usage_error("--resume " + in_quotes(a.resume) + " is a file; it takes the --save folder of a spruce train run, " +
                "whose checkpoint.pt continues");
  if (!a.resume.empty()) a.options.resume_from = a.resume + "/checkpoint.pt";
  if (!a.resume.empty() && !a.options.init_from.empty())
    usage_error("--init has no effect with --resume, which continues from " + a.options.resume_from + "; drop one");
  if (a.options.lock_pattern && a.resume.empty() && a.options.init_from.empty())
    usage_error("--lock-pattern keeps the zeros of loaded weights; add --init (or --resume), or drop it");
  if (a.overwrite && a.options.save_dir.empty()) usage_error("--overwrite acts only with --save; add it, or drop it");
  if (a.options.stop_after > 0 && a.options.save_dir.empty())
    usage_error("--stop-after needs --save DIR, where the checkpoint to resume from is kept");
  if (a.options.stop_after >= a.options.epochs)
    usage_error("--stop-after " + std::to_string(a.options.stop_after) + " is not before the last epoch (--epochs " +
                std::to_string(a.options.epochs) + "); give an earlier one, or drop it");
  // Input files are checked before the run starts, so a bad one is the only line printed.
  if (!a.teacher_dir.empty() && std::filesystem::is_regular_file(a.teacher_dir))
    usage_error("--teacher " + in_quotes(a.teacher_dir) + " is a file; it takes the --save folder of a spruce train " +
                "run, whose model.safetensors teaches");
  if (!a.teacher_dir.empty()) a.options.teacher = a.teacher_dir + "/model.safetensors";
  for (const std::string* file : {&a.options.resume_from, &a.options.init_from, &a.options.teacher})
    if (!file->empty()) require_regular_file(*file);
}

}  // namespace spruce::cli
