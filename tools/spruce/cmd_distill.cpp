// spruce distill --pattern 4x1 --sparsity 0.8 --save out/minilm-4x1-80: prunes all-MiniLM-L6-v2's
// encoder by distillation from the dense model, on Debian's fortunes, and reports held-out fidelity.
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "minilm/distill.hpp"
#include "minilm/distill_checkpoint.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/torch/threads.hpp"

namespace spruce::cli {
namespace {

struct DistillArgs {
  minilm::DistillOptions o;
  std::string model = minilm::default_model_dir(), fortunes = "/usr/share/games/fortunes", wordnet, pattern, save, json,
              criterion = "wanda", scope = "local";
  double sparsity = NAN, max_layer_sparsity = NAN;  // NaN: not given (0.98 with --scope global)
  bool straight_through = false, gradual_nm = false;
  double straight_through_decay = 0.0;
  int threads = 2;
};

// The model folder as sentence-transformers reads it: the teacher's files, the student's weights.
const std::vector<std::string> kTeacherFiles{"config.json",
                                             "vocab.txt",
                                             "tokenizer.json",
                                             "tokenizer_config.json",
                                             "special_tokens_map.json",
                                             "modules.json",
                                             "sentence_bert_config.json",
                                             "config_sentence_transformers.json",
                                             "1_Pooling/config.json"};

void save_model(minilm::SentenceEncoder& student, const std::string& dir) {
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(dir) / "1_Pooling");
  for (const std::string& file : kTeacherFiles) {
    const auto from = fs::path(student.directory()) / file;
    if (fs::is_regular_file(from)) write_file_atomic((fs::path(dir) / file).string(), read_file(from.string()));
  }
  minilm::save_weights(*student.model(), (fs::path(dir) / "model.safetensors").string());
}

void run(DistillArgs& a) {
  const bool prune = !a.pattern.empty();
  if (!prune && !std::isnan(a.sparsity)) usage_error("--sparsity needs --pattern");
  if (!prune && a.straight_through) usage_error("--straight-through needs --pattern");
  if (!prune && !std::isnan(a.max_layer_sparsity)) usage_error("--max-layer-sparsity needs --pattern");
  if (!prune && a.gradual_nm) usage_error("--gradual-nm needs an N:M --pattern, such as 2:4");
  parse_criterion(a.criterion), parse_scope(a.scope);  // a misspelt name is refused, --pattern or not
  if (a.straight_through_decay > 0 && !a.straight_through)
    usage_error("--straight-through-decay acts only with --straight-through; add it, or drop the decay");
  spruce::torch::set_training_threads(a.threads);
  if (prune) {  // from_flags checks the pair (an N:M pattern fixes its sparsity); the encoder's recipe follows
    const double target = Recipe::from_flags(a.pattern, a.sparsity).groups[0].target();
    const Criterion criterion = parse_criterion(a.criterion);
    if (a.straight_through && criterion == Criterion::SparseGpt)
      usage_error(
          "--straight-through cannot be used with --criterion sparsegpt, which rewrites the kept weights "
          "at each update; use wanda or magnitude");
    a.o.recipe = minilm::encoder_recipe(Pattern::parse(a.pattern), target, a.o.steps, criterion, a.straight_through,
                                        a.straight_through_decay);
    PruningGroup& g = a.o.recipe->groups[0];
    if (a.gradual_nm && !g.pattern.is_nm())
      usage_error("--gradual-nm acts only on N:M patterns such as 2:4, not " + a.pattern +
                  ", whose sparsity follows the schedule already; drop --gradual-nm");
    if (a.gradual_nm && criterion == Criterion::SparseGpt)
      usage_error(
          "--gradual-nm cannot be used with --criterion sparsegpt, which sets N:M whole; use wanda or magnitude");
    g.gradual_nm = a.gradual_nm;
    g.scope = parse_scope(a.scope);
    if (g.scope == Scope::Local && !std::isnan(a.max_layer_sparsity))
      usage_error("--max-layer-sparsity needs --scope global (with --scope local every layer is at the target)");
    if (g.scope == Scope::Global && g.criterion == Criterion::SparseGpt)
      usage_error("--criterion sparsegpt prunes each layer to the target on its own; use --scope local");
    if (!std::isnan(a.max_layer_sparsity)) g.limits.max_ratio = a.max_layer_sparsity;
    if (g.scope == Scope::Global && g.limits.max_ratio < target)
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
  check_not_inside("--json", a.json, a.model, "the teacher model (--model)");
  check_not_inside("--json", a.json, a.fortunes, "the fortunes (--fortunes)");
  check_not_inside("--json", a.json, a.wordnet, "WordNet (--wordnet)");
  check_output_file("--json", a.json);
  minilm::check_draw_size(a.o);  // before anything loads
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
  std::error_code same_error;
  if (!a.save.empty() && std::filesystem::equivalent(a.save, a.model, same_error))
    usage_error("--save " + in_quotes(a.save) + " is the teacher's folder (--model); name another folder");
  minilm::Corpus corpus = minilm::read_fortunes(a.fortunes);
  minilm::check_held_out(corpus, "the fortunes in " + in_quotes(a.fortunes), "give a folder with more fortunes");
  if (!a.wordnet.empty()) minilm::add_wordnet(corpus, a.wordnet);
  if (!a.o.checkpoint_dir.empty()) make_output_folder("--checkpoint", a.o.checkpoint_dir, {"checkpoint.pt"});
  if (!a.save.empty()) {
    std::vector<std::string> files{"model.safetensors"};  // 1_Pooling/ is made when the model is saved
    for (const auto& file : kTeacherFiles)
      if (file.find('/') == std::string::npos) files.push_back(file);
    make_output_folder("--save", a.save, files);
  }
  auto teacher = minilm::SentenceEncoder::load(a.model);
  auto student = minilm::SentenceEncoder::load(a.model);
  std::cerr << "distil: " << corpus.train.size() << " training and " << corpus.held_out.size() << " held-out fortunes"
            << (corpus.extra.empty() ? ""
                                     : ", and " + std::to_string(corpus.extra.size()) + " WordNet texts (" +
                                           std::to_string(int(std::lround(100 * a.o.extra_share))) + "% of the steps)")
            << "; " << a.o.steps << " steps of " << a.o.batch << " texts; "
            << (prune
                    ? a.pattern + " to " + std::to_string(int(std::lround(100 * a.o.recipe->groups[0].target()))) + "%"
                    : std::string("no pruning"))
            << "\n";
  const auto result = minilm::distill(teacher, student, corpus, a.o, std::cerr);
  if (!result.finished) {
    std::cout << "stopped after step " << result.steps << " of " << a.o.steps << " (" << result.seconds
              << " s so far); continue with the same command and --resume ("
              << minilm::checkpoint_path(a.o.checkpoint_dir) << ")\n";
    return;
  }
  if (result.report) std::cout << spruce::torch::format_report(*result.report);
  const auto& f = result.fidelity;
  std::cout << "held-out fidelity over " << f.texts << " texts: mean cosine " << f.mean_cosine << ", top-10 overlap "
            << f.top10_overlap << ", Spearman " << f.spearman << " (" << result.seconds << " s)\n";
  if (!a.save.empty()) save_model(student, a.save);
  if (a.json.empty()) return;
  nlohmann::ordered_json j{
      {"model", "all-MiniLM-L6-v2"},
      {"pattern", prune ? a.pattern : "dense"},
      {"sparsity", result.report ? result.report->sparsity() : 0.0},
      {"criterion", prune ? a.criterion : "-"},
      {"scope", prune ? a.scope : "-"},
      {"straight_through", a.straight_through},
      {"straight_through_decay", a.straight_through_decay},
      {"gradual_nm", a.gradual_nm},
      {"max_layer_sparsity", prune && a.scope == "global" ? a.o.recipe->groups[0].limits.max_ratio : 1.0},
      {"steps", result.steps},
      {"batch", a.o.batch},
      {"learning_rate", a.o.learning_rate},
      {"lr_schedule", a.o.decay_lr ? "linear decay after the last mask update" : "constant"},
      {"hidden_weight", a.o.hidden_weight},
      {"attention_weight", a.o.attention_weight},
      {"similarity_weight", a.o.similarity_weight},
      {"neighbour_weight", a.o.neighbour_weight},
      {"neighbour_temperature", a.o.neighbour_temperature},
      {"spread_weight", a.o.spread_weight},
      {"train_embeddings", a.o.train_embeddings},
      {"crop", a.o.crop},
      {"dropout", a.o.dropout},
      {"ema", a.o.ema},
      {"seed", a.o.seed},
      {"train_texts", corpus.train.size()},
      {"extra_texts", corpus.extra.size()},
      {"extra_share", corpus.extra.empty() ? 0.0 : a.o.extra_share},
      {"held_out_texts", f.texts},
      {"mean_cosine", f.mean_cosine},
      {"top10_overlap", f.top10_overlap},
      {"spearman", f.spearman},
      {"final_loss", result.final_loss},
      {"seconds", result.seconds},
      {"threads", a.threads}};
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  for (const auto& h : result.history)
    history.push_back({{"step", h.step},
                       {"sparsity", h.sparsity},
                       {"loss", h.loss},
                       {"mean_cosine", h.fidelity.mean_cosine},
                       {"top10_overlap", h.fidelity.top10_overlap},
                       {"spearman", h.fidelity.spearman}});
  j["history"] = history;
  write_json(a.json, j);
}

void add(CLI::App& app) {
  auto a = std::make_shared<DistillArgs>();
  auto* cmd =
      app.add_subcommand("distill", "Prune all-MiniLM-L6-v2 by distillation from the dense model; held-out fidelity");
  cmd->add_option("--pattern", a->pattern, "Pattern for every encoder Linear: 4x1, 2:4, 16x1, ... (none: dense)");
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
      ->check(real_in(0, 10, true))
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
  cmd->add_option("--save", a->save, "Write the pruned model here, as a sentence-transformers folder")
      ->check(non_empty());
  cmd->add_option("--json", a->json, "Write the fidelity and settings")->check(non_empty());
  cmd->add_option("--threads", a->threads, "Threads")->check(thread_count())->capture_default_str();
  cmd->add_flag("!--no-progress", a->o.progress_bar, "No progress line");
  cmd->callback([a] { run(*a); });
}

const Command reg{"distill", add};

}  // namespace
}  // namespace spruce::cli
