// spruce distill --pattern 4x1 --sparsity 0.8 --save out/minilm-4x1-80: prunes all-MiniLM-L6-v2's
// encoder by distillation from the dense model, on Debian's fortunes, and reports held-out fidelity.
// Its work, in spruce-torch; the flags and the checks that need no LibTorch are in cmd_distill.cpp.
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

}  // namespace

void run_distill(DistillArgs& a) {
  check_distill_args(a);
  const bool prune = !a.pattern.empty();
  spruce::torch::set_training_threads(a.threads);
  if (prune) {  // the encoder's recipe for the checked flags
    const double target = Recipe::from_flags(a.pattern, a.sparsity).groups[0].target();
    a.o.recipe = minilm::encoder_recipe(Pattern::parse(a.pattern), target, a.o.steps, parse_criterion(a.criterion),
                                        a.straight_through, a.straight_through_decay);
    PruningGroup& g = a.o.recipe->groups[0];
    g.gradual_nm = a.gradual_nm;
    g.scope = parse_scope(a.scope);
    if (!std::isnan(a.max_layer_sparsity)) g.limits.max_ratio = a.max_layer_sparsity;
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
