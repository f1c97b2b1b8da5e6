// spruce distill --pattern 4x1 --sparsity 0.8 --save out/minilm-4x1-80: prunes all-MiniLM-L6-v2's
// encoder by distillation from the dense model, on Debian's fortunes, and reports held-out fidelity.
// Its flags, and the checks that need no LibTorch (both programs run them); the work is in run_distill.cpp.
#include "cmd_distill.hpp"

#include <cmath>
#include <filesystem>
#include <memory>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/criteria.hpp"
#include "spruce/error.hpp"
#include "spruce/recipe.hpp"

namespace spruce::cli {
namespace {

void add(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  auto* cmd =
      app.add_subcommand("distill", "Prune all-MiniLM-L6-v2 by distillation from the dense model; held-out fidelity");
  a->cmd = cmd;
  cmd->add_option("--pattern", a->pattern,
                  "Pattern for every encoder Linear: 4x1, 2:4, 16x1, ... (without it: a dense distillation)");
  cmd->add_option("--sparsity", a->sparsity, "Target sparsity (an N:M pattern fixes its own)")->check(fraction());
  cmd->add_option("--criterion", a->criterion,
                  "Pruning scores: magnitude, gradient, snip, snip_momentum, wanda (|W| x input RMS) or sparsegpt "
                  "(OBS saliency; the kept weights are rewritten to make up for the pruned)")
      ->capture_default_str();
  cmd->add_option("--scope", a->scope,
                  "local: every layer at the target; global: one threshold over all the encoder's scores, so "
                  "that layers differ and the total meets the target")
      ->check(CLI::IsMember({"local", "global"}))
      ->capture_default_str();
  cmd->add_option("--max-layer-sparsity", a->max_layer_sparsity,
                  "With --scope global: no layer sparser than this (default 0.98)")
      ->check(fraction());
  cmd->add_flag("--straight-through", a->straight_through,
                "Pruned weights keep learning through the masked forward until 70% of the steps, and each of "
                "about 100 mask updates may bring them back (SR-STE); then the mask is final");
  cmd->add_flag("--gradual-nm", a->gradual_nm,
                "An N:M pattern grows like a block one: the share of weight groups pruned to N:M rises on the "
                "schedule to all of them at 70% of the steps, those that lose least first (default: whole at "
                "the start)");
  cmd->add_flag("--permute-channels", a->o.permute_channels,
                "With an N:M pattern: first reorder the input channels of every attention output and FFN output "
                "(and the rows of V and FFN in that produce them) so that the N:M masks keep more of the "
                "criterion's scores; the model computes the same function (Pool & Yu 2021)");
  cmd->add_option("--straight-through-decay", a->straight_through_decay,
                  "With --straight-through: the fraction by which pruned weights shrink each step, so that the "
                  "masks settle (SR-STE's refined term; 0: none)")
      ->check(real_in(0, 1, false, true))
      ->capture_default_str();
  cmd->add_option("--steps", a->o.steps, "Training steps")->check(int_in(1, 1'000'000))->capture_default_str();
  cmd->add_option("--batch", a->o.batch, "Texts per step")->check(int_in(1, 1024))->capture_default_str();
  cmd->add_option("--lr", a->o.learning_rate, "AdamW learning rate")->check(real_in(0, 1, true))->capture_default_str();
  cmd->add_flag("--decay-lr,!--no-decay-lr", a->o.decay_lr,
                "Decay the learning rate linearly to 0 over the steps after the last mask update (the default), "
                "or keep it constant");
  cmd->add_option("--hidden-weight", a->o.hidden_weight, "Weight of the hidden-state loss (0: embeddings only)")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--attention-weight", a->o.attention_weight,
                  "Weight of self-attention transfer (MiniLM): the KL between the teacher's and the student's "
                  "attention distributions and value relations in every layer (0: off)")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--similarity-weight", a->o.similarity_weight,
                  "Weight of the loss on in-batch pairwise similarities (0: off), for retrieval fidelity")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--neighbour-weight", a->o.neighbour_weight,
                  "Weight of the loss on each text's similarities to the teacher's embeddings of every training "
                  "text, a softmax at --neighbour-temperature (0: off), for retrieval fidelity")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_option("--neighbour-temperature", a->o.neighbour_temperature,
                  "Temperature of the neighbourhood loss: lower weighs the nearest neighbours more")
      ->check(real_in(0.001, 10))
      ->capture_default_str();
  cmd->add_option("--spread-weight", a->o.spread_weight,
                  "Weight of the embedding error weighted by how the training texts' embeddings vary, so that "
                  "errors which reorder neighbours cost most (0: off), for retrieval fidelity")
      ->check(real_in(0, 1000))
      ->capture_default_str();
  cmd->add_flag("--train-embeddings", a->o.train_embeddings,
                "Train the token, position and type embeddings too (not pruned; frozen by default)");
  cmd->add_option("--crop", a->o.crop,
                  "Share of training texts replaced, each time they are drawn, by a random run of 3 or more of "
                  "their words, so that repeated passes see new inputs")
      ->check(fraction())
      ->capture_default_str();
  cmd->add_option("--dropout", a->o.dropout,
                  "The student's dropout probability while it trains (0: off), a regularizer against memorizing "
                  "the training texts")
      ->check(real_in(0, 1, false, true))
      ->capture_default_str();
  cmd->add_option("--ema", a->o.ema,
                  "Keep an exponential moving average of the weights from the last mask update on, decaying by "
                  "this factor per step (e.g. 0.99), and return it (0: off)")
      ->check(real_in(0, 1, false, true))
      ->capture_default_str();
  cmd->add_option("--checkpoint", a->o.checkpoint_dir,
                  "Folder to keep the run in (DIR/checkpoint.pt), saved at each held-out check or every "
                  "--checkpoint-every steps, so that it can be resumed")
      ->check(non_empty());
  cmd->add_option("--checkpoint-every", a->o.checkpoint_every, "Steps between checkpoints (0: at each held-out check)")
      ->check(int_in(0, 100000000))
      ->capture_default_str();
  cmd->add_flag("--resume", a->o.resume,
                "Continue the run kept in --checkpoint DIR; every other setting must be the same as when it started");
  cmd->add_option("--stop-after", a->o.stop_after,
                  "End this sitting after this many of the steps (in all), leaving the checkpoint to --resume from")
      ->check(int_in(1, 100000000));
  cmd->add_option("--evaluations", a->o.evaluations, "Held-out fidelity reports during training")
      ->check(int_in(1, 1000))
      ->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "Seed for the text order")->check(uint_in(0, UINT64_MAX))->capture_default_str();
  cmd->add_option("--model", a->model, "The teacher: a sentence-transformers folder")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--fortunes", a->fortunes, "Folder of fortune files (Debian's fortunes)")
      ->check(non_empty())
      ->capture_default_str();
  auto* wordnet =
      cmd->add_option("--wordnet", a->wordnet,
                      "Also train on WordNet's definitions and example sentences, from this folder (Debian's "
                      "wordnet-base: /usr/share/wordnet); never held out")
          ->check(non_empty());
  cmd->add_option("--wordnet-share", a->o.extra_share, "Share of the training steps whose batch is WordNet's")
      ->check(real_in(0, 1))
      ->needs(wordnet)
      ->capture_default_str();
  cmd->add_option("--save", a->save,
                  "Write the pruned model here, as a sentence-transformers folder (a new folder, or one saved before, "
                  "which it replaces whole)")
      ->check(non_empty());
  cmd->add_option("--json", a->json, "Write the fidelity and settings")->check(non_empty());
  cmd->add_option("--threads", a->threads, "Threads")->check(thread_count())->capture_default_str();
  cmd->add_flag("!--no-progress", a->o.progress_bar, "No progress line");
  cmd->callback([a] { run_distill(*a); });
}

const Command reg{"distill", add};

// --save replaces its folder whole, so that folder may hold a saved model and nothing else: the
// user's notes, the teacher or the fortunes kept inside it were deleted with it.
void check_save_folder(const DistillArgs& a) {
  namespace fs = std::filesystem;
  const std::string why = "the folder --save replaces whole";
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  if (!ec && is_within(cwd.string(), a.save))
    usage_error("--save " + in_quotes(a.save) +
                " holds the current folder, which cannot be replaced; name another folder");
  for (const auto& [flag, path] :
       {std::pair{"--json", a.json}, std::pair{"--checkpoint", a.o.checkpoint_dir}, std::pair{"--model", a.model},
        std::pair{"--fortunes", a.fortunes}, std::pair{"--wordnet", a.wordnet}})
    check_not_within(flag, path, a.save, why);
  if (!fs::is_directory(a.save, ec)) return;
  std::vector<std::string> others;
  for (auto it = fs::recursive_directory_iterator(a.save, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = fs::relative(it->path(), a.save, ec).generic_string();
    const bool model_file =
        std::find(kSentenceModelFiles.begin(), kSentenceModelFiles.end(), name) != kSentenceModelFiles.end();
    if (!model_file && !(name == "1_Pooling" && it->is_directory(ec))) others.push_back(name);
  }
  std::sort(others.begin(), others.end());
  if (!others.empty())
    usage_error("--save " + in_quotes(a.save) + " holds " + in_quotes(others.front()) +
                (others.size() > 1 ? " and " + std::to_string(others.size() - 1) + " more" : "") +
                ", not a saved model's; the model replaces the folder whole: name a new or empty folder");
}

}  // namespace

void check_distill_args(const DistillArgs& a) {
  const bool prune = !a.pattern.empty();
  if (!prune && !std::isnan(a.sparsity)) usage_error("--sparsity needs --pattern");
  if (!prune && a.straight_through) usage_error("--straight-through needs --pattern");
  if (!prune && !std::isnan(a.max_layer_sparsity)) usage_error("--max-layer-sparsity needs --pattern");
  if (!prune && a.gradual_nm) usage_error("--gradual-nm needs an N:M --pattern, such as 2:4");
  if (!prune && a.o.permute_channels) usage_error("--permute-channels needs an N:M --pattern, such as 2:4");
  const Criterion criterion = parse_criterion(a.criterion);  // a misspelt name is refused, --pattern or not
  const Scope scope = parse_scope(a.scope);
  if (a.straight_through_decay > 0 && !a.straight_through)
    usage_error("--straight-through-decay acts only with --straight-through; add it, or drop the decay");
  // Flags that would change nothing are refused, saying why, as train refuses them.
  if (a.cmd->count("--neighbour-temperature") > 0 && a.o.neighbour_weight == 0)
    usage_error("--neighbour-temperature acts only with --neighbour-weight above 0; add one, or drop it");
  if (a.cmd->count("--checkpoint-every") > 0 && a.o.checkpoint_dir.empty())
    usage_error("--checkpoint-every acts only with --checkpoint DIR; add it, or drop --checkpoint-every");
  if (prune && !std::isnan(a.sparsity) && a.sparsity == 0)
    usage_error("--sparsity 0 prunes nothing; give a target above 0, or drop --pattern for a dense distillation");
  if (prune) {  // from_flags checks the pair (an N:M pattern fixes its sparsity)
    const PruningGroup g = Recipe::from_flags(a.pattern, a.sparsity).groups[0];
    const double target = g.target();
    if (a.straight_through && criterion == Criterion::SparseGpt)
      usage_error(
          "--straight-through cannot be used with --criterion sparsegpt, which rewrites the kept weights "
          "at each update; use wanda or magnitude");
    if (a.gradual_nm && !g.pattern.is_nm())
      usage_error("--gradual-nm acts only on N:M patterns such as 2:4, not " + a.pattern +
                  ", whose sparsity follows the schedule already; drop --gradual-nm");
    if (a.gradual_nm && criterion == Criterion::SparseGpt)
      usage_error(
          "--gradual-nm cannot be used with --criterion sparsegpt, which sets N:M whole; use wanda or magnitude");
    if (a.o.permute_channels && !g.pattern.is_nm())
      usage_error("--permute-channels acts on N:M patterns such as 2:4, not " + a.pattern +
                  ", whose blocks span output channels; drop --permute-channels");
    if (scope == Scope::Global && g.pattern.is_nm() && !a.gradual_nm)
      usage_error("--scope global changes nothing for " + a.pattern +
                  ", which prunes every group of every layer alike; drop --scope");
    if (scope == Scope::Local && !std::isnan(a.max_layer_sparsity))
      usage_error("--max-layer-sparsity needs --scope global (with --scope local every layer is at the target)");
    if (scope == Scope::Global && criterion == Criterion::SparseGpt)
      usage_error("--criterion sparsegpt prunes each layer to the target on its own; use --scope local");
    const double max_ratio = std::isnan(a.max_layer_sparsity) ? g.limits.max_ratio : a.max_layer_sparsity;
    if (scope == Scope::Global && max_ratio < target)
      usage_error("--max-layer-sparsity is below the target sparsity: no layer could make up for another");
  }
  // Outputs are checked before training, so a typo cannot cost the run.
  if (!a.json.empty() && !std::filesystem::is_directory(std::filesystem::absolute(a.json).parent_path()))
    usage_error("--json " + in_quotes(a.json) + ": its folder does not exist");
  if ((a.o.resume || a.o.stop_after > 0) && a.o.checkpoint_dir.empty())
    usage_error(std::string(a.o.resume ? "--resume" : "--stop-after") +
                " needs --checkpoint DIR, the folder the run is kept in");
  if (a.o.evaluations > a.o.steps)
    usage_error("--evaluations " + std::to_string(a.o.evaluations) + " is more than --steps " +
                std::to_string(a.o.steps) + ": fidelity is measured at most once a step");
  minilm::check_draw_size(a.o);
  check_not_inside("--json", a.json, a.model, "the teacher model (--model)", kSentenceModelFiles);
  check_not_inside("--json", a.json, a.fortunes, "the fortunes (--fortunes)");
  check_not_inside("--json", a.json, a.wordnet, "WordNet (--wordnet)");
  check_not_output("--json", a.json, a.o.checkpoint_dir, "--checkpoint", {"checkpoint.pt"});
  std::error_code same_error;
  if (!a.save.empty() && std::filesystem::equivalent(a.save, a.model, same_error))
    usage_error("--save " + in_quotes(a.save) + " is the teacher's folder (--model); name another folder");
  if (!a.save.empty()) check_save_folder(a);
  check_output_file("--json", a.json, "JSON");
  if (a.o.resume && std::filesystem::exists(a.o.checkpoint_dir) && !std::filesystem::is_directory(a.o.checkpoint_dir))
    usage_error("--checkpoint " + in_quotes(a.o.checkpoint_dir) + " is a file, not a folder; name the run's folder");
  if (a.o.resume && !std::filesystem::is_regular_file(minilm::checkpoint_path(a.o.checkpoint_dir)))
    usage_error("--resume: " + minilm::checkpoint_path(a.o.checkpoint_dir) + " does not exist; start without --resume");
  // A fresh start would replace the run kept there, which may have taken hours.
  if (!a.o.resume && !a.o.checkpoint_dir.empty() &&
      std::filesystem::exists(std::filesystem::symlink_status(minilm::checkpoint_path(a.o.checkpoint_dir))))
    usage_error("--checkpoint " + in_quotes(a.o.checkpoint_dir) + " already holds a run (" +
                in_quotes(minilm::checkpoint_path(a.o.checkpoint_dir)) +
                "); continue it with --resume, or name another folder (or remove it to start over)");
}

}  // namespace spruce::cli
