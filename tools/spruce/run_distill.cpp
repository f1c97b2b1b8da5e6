// spruce distill --pattern 4x1 --sparsity 0.8 --save out/minilm-4x1-80: prunes all-MiniLM-L6-v2's
// encoder by distillation from the dense model, on Debian's fortunes, and reports held-out fidelity.
// Its work, in spruce-torch; the flags are in cmd_distill.cpp.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cmd_distill.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "minilm/bert.hpp"
#include "minilm/distill.hpp"
#include "minilm/distill_checkpoint.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/torch/threads.hpp"

namespace spruce::cli {
namespace {

// Written whole or not at all: a folder holding the teacher's files but no weights looked like a model.
void save_model(minilm::SentenceEncoder& student, const std::string& dir) {
  namespace fs = std::filesystem;
  write_folder_atomic(dir, [&](const std::string& temp) {
    fs::create_directories(fs::path(temp) / "1_Pooling");
    for (const std::string& file : kSentenceModelFiles) {  // the teacher's, but its weights
      const auto from = fs::path(student.directory()) / file;
      if (file != "model.safetensors" && fs::is_regular_file(from))
        write_file_atomic((fs::path(temp) / file).string(), read_file(from.string()));
    }
    minilm::save_weights(*student.model(), (fs::path(temp) / "model.safetensors").string());
  });
}

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

void run_distill(DistillArgs& a) {
  const bool prune = !a.pattern.empty();
  if (!prune && !std::isnan(a.sparsity)) usage_error("--sparsity needs --pattern");
  if (!prune && a.straight_through) usage_error("--straight-through needs --pattern");
  if (!prune && !std::isnan(a.max_layer_sparsity)) usage_error("--max-layer-sparsity needs --pattern");
  if (!prune && a.gradual_nm) usage_error("--gradual-nm needs an N:M --pattern, such as 2:4");
  if (!prune && a.o.permute_channels) usage_error("--permute-channels needs an N:M --pattern, such as 2:4");
  parse_criterion(a.criterion), parse_scope(a.scope);  // a misspelt name is refused, --pattern or not
  if (a.straight_through_decay > 0 && !a.straight_through)
    usage_error("--straight-through-decay acts only with --straight-through; add it, or drop the decay");
  // Flags that would change nothing are refused, saying why, as train refuses them.
  if (a.cmd->count("--neighbour-temperature") > 0 && a.o.neighbour_weight == 0)
    usage_error("--neighbour-temperature acts only with --neighbour-weight above 0; add one, or drop it");
  if (a.cmd->count("--checkpoint-every") > 0 && a.o.checkpoint_dir.empty())
    usage_error("--checkpoint-every acts only with --checkpoint DIR; add it, or drop --checkpoint-every");
  if (prune && !std::isnan(a.sparsity) && a.sparsity == 0)
    usage_error("--sparsity 0 prunes nothing; give a target above 0, or drop --pattern for a dense distillation");
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
    if (a.o.permute_channels && !g.pattern.is_nm())
      usage_error("--permute-channels acts on N:M patterns such as 2:4, not " + a.pattern +
                  ", whose blocks span output channels; drop --permute-channels");
    g.gradual_nm = a.gradual_nm;
    g.scope = parse_scope(a.scope);
    if (g.scope == Scope::Global && g.pattern.is_nm() && !g.gradual_nm)
      usage_error("--scope global changes nothing for " + a.pattern +
                  ", which prunes every group of every layer alike; drop --scope");
    if (g.scope == Scope::Local && !std::isnan(a.max_layer_sparsity))
      usage_error("--max-layer-sparsity needs --scope global (with --scope local every layer is at the target)");
    if (g.scope == Scope::Global && g.criterion == Criterion::SparseGpt)
      usage_error("--criterion sparsegpt prunes each layer to the target on its own; use --scope local");
    if (!std::isnan(a.max_layer_sparsity)) g.limits.max_ratio = a.max_layer_sparsity;
    if (g.scope == Scope::Global && g.limits.max_ratio < target)
      usage_error("--max-layer-sparsity is below the target sparsity: no layer could make up for another");
  }
  // Every Linear layer of the encoder is pruned: a pattern that misfits one failed after the model
  // had loaded, offering flags that distill does not have.
  if (prune && std::filesystem::is_regular_file(a.model + "/config.json")) {
    const auto config = minilm::BertConfig::read(a.model + "/config.json");
    const int64_t hidden = config.hidden_size, inner = config.intermediate_size;
    for (const auto& [oc, ic] : {std::pair{hidden, hidden}, std::pair{inner, hidden}, std::pair{hidden, inner}})
      require_blocks_fit(a.o.recipe->groups[0].pattern, oc, ic,
                         "the encoder's " + std::to_string(ic) + "->" + std::to_string(oc) + " Linear layers");
    // Channels move within an attention head and within the FFN: each must hold whole groups of M.
    const int m = a.o.recipe->groups[0].pattern.is_nm() ? a.o.recipe->groups[0].pattern.m() : 1;
    const int64_t head_size = hidden / config.num_heads;
    if (a.o.permute_channels && (head_size % m != 0 || inner % m != 0))
      usage_error("--permute-channels moves channels within an attention head (" + std::to_string(head_size) +
                  " channels in " + in_quotes(a.model) + ") and within the FFN (" + std::to_string(inner) +
                  "), and each must hold whole groups of " + std::to_string(m) + " for " + a.pattern +
                  "; drop --permute-channels");
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
  check_not_inside("--json", a.json, a.model, "the teacher model (--model)", kSentenceModelFiles);
  check_not_inside("--json", a.json, a.fortunes, "the fortunes (--fortunes)");
  check_not_inside("--json", a.json, a.wordnet, "WordNet (--wordnet)");
  check_not_output("--json", a.json, a.o.checkpoint_dir, "--checkpoint", {"checkpoint.pt"});
  std::error_code same_error;
  if (!a.save.empty() && std::filesystem::equivalent(a.save, a.model, same_error))
    usage_error("--save " + in_quotes(a.save) + " is the teacher's folder (--model); name another folder");
  if (!a.save.empty()) check_save_folder(a);
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
  minilm::Corpus corpus = minilm::read_fortunes(a.fortunes);
  minilm::check_held_out(corpus, "the fortunes in " + in_quotes(a.fortunes), "give a folder with more fortunes");
  if (!a.wordnet.empty()) minilm::add_wordnet(corpus, a.wordnet);
  if (!a.o.checkpoint_dir.empty()) {
    make_output_folder("--checkpoint", a.o.checkpoint_dir, {"checkpoint.pt"});
    lock_folder("--checkpoint", a.o.checkpoint_dir);  // to the end: one run at a time keeps it
    if (!a.o.resume && std::filesystem::exists(minilm::checkpoint_path(a.o.checkpoint_dir)))
      usage_error("--checkpoint " + in_quotes(a.o.checkpoint_dir) + " has just been given a run by another command");
  }
  std::error_code ec;
  const bool new_save_folder = !a.save.empty() && !std::filesystem::exists(a.save, ec);
  if (!a.save.empty()) {
    std::vector<std::string> files;  // 1_Pooling/ is made when the model is saved
    for (const auto& file : kSentenceModelFiles)
      if (file.find('/') == std::string::npos) files.push_back(file);
    make_output_folder("--save", a.save, files);
    // To the end: a second run saving there replaced the first's model, both reporting success.
    lock_folder("--save", a.save);
  }
  // The folder was made above to check it; a run that fails leaves it no more than it found it.
  struct RemoveIfEmpty {
    std::string dir;
    ~RemoveIfEmpty() {
      std::error_code ignored;
      if (!dir.empty() && std::filesystem::is_empty(dir, ignored)) std::filesystem::remove(dir, ignored);
    }
  } remove_if_empty{new_save_folder ? a.save : std::string()};
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
      {"model", minilm::model_label(a.model)},
      {"model_dir", a.model},
      {"pattern", prune ? a.pattern : "dense"},
      {"sparsity", result.report ? result.report->sparsity() : 0.0},
      {"criterion", prune ? a.criterion : "-"},
      {"scope", prune ? a.scope : "-"},
      {"straight_through", a.straight_through},
      {"straight_through_decay", a.straight_through_decay},
      {"gradual_nm", a.gradual_nm},
      {"permute_channels", a.o.permute_channels},
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
  if (result.channel_order) {  // the shares of the scores kept; null where every score was zero
    const auto& c = *result.channel_order;
    auto share = [&](double kept) { return c.total > 0 ? nlohmann::ordered_json(kept / c.total) : nullptr; };
    j["channel_order"] = {{"layers", c.layers},
                          {"kept_before", share(c.kept_before)},
                          {"kept_after", share(c.kept_after)},
                          {"seconds", c.seconds}};
  }
  j["history"] = history;
  write_json(a.json, j);
}

}  // namespace spruce::cli
