#include "minilm/distill_checkpoint.hpp"

#include <ATen/Context.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "spruce/error.hpp"
#include "spruce/torch/checkpoint.hpp"

namespace minilm {

std::string distill_fingerprint(const DistillOptions& o, const Corpus& corpus) {
  nlohmann::ordered_json j{{"recipe", o.recipe ? o.recipe->to_yaml() : std::string("none")},
                           {"steps", o.steps},
                           {"batch", o.batch},
                           {"learning_rate", o.learning_rate},
                           {"decay_lr", o.decay_lr},
                           {"hidden_weight", o.hidden_weight},
                           {"attention_weight", o.attention_weight},
                           {"similarity_weight", o.similarity_weight},
                           {"neighbour_weight", o.neighbour_weight},
                           {"neighbour_temperature", o.neighbour_temperature},
                           {"spread_weight", o.spread_weight},
                           {"train_embeddings", o.train_embeddings},
                           {"crop", o.crop},
                           {"dropout", o.dropout},
                           {"ema", o.ema},
                           {"extra_share", o.extra_share},
                           {"seed", o.seed},
                           {"evaluations", o.evaluations},
                           {"train_texts", corpus.train.size()},
                           {"extra_texts", corpus.extra.size()},
                           {"held_out_texts", corpus.held_out.size()}};
  return j.dump();
}

std::string checkpoint_path(const std::string& dir) { return (std::filesystem::path(dir) / "checkpoint.pt").string(); }

void save_distill_checkpoint(const std::string& dir, SentenceEncoder& student,
                             const ::torch::optim::Optimizer& optimizer, const spruce::torch::Pruner* pruner,
                             const DistillProgress& p, const std::string& fingerprint) {
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  for (const auto& h : p.history)
    history.push_back({h.step, h.sparsity, h.loss, h.fidelity.mean_cosine, h.fidelity.top10_overlap,
                       h.fidelity.spearman, h.fidelity.texts});
  const nlohmann::ordered_json state{{"settings", nlohmann::json::parse(fingerprint)},
                                     {"seconds", p.seconds},
                                     {"loss_sum", p.loss_sum},
                                     {"cosine_sum", p.cosine_sum},
                                     {"window", p.window},
                                     {"crop_rng", p.crop_rng},
                                     {"averaged", p.averaged.size()},
                                     {"history", history}};
  spruce::torch::LoopState loop{state.dump(), {{"torch_rng", p.torch_rng}}};
  for (size_t i = 0; i < p.averaged.size(); ++i) loop.tensors["average." + std::to_string(i)] = p.averaged[i];
  std::filesystem::create_directories(dir);
  spruce::torch::save_checkpoint(checkpoint_path(dir), *student.model(), &optimizer, pruner, {0, p.step}, &loop);
}

DistillProgress load_distill_checkpoint(const std::string& dir, SentenceEncoder& student,
                                        ::torch::optim::Optimizer& optimizer, spruce::torch::Pruner* pruner,
                                        const std::string& fingerprint) {
  const std::string path = checkpoint_path(dir);
  if (!std::filesystem::is_regular_file(path))
    spruce::usage_error("--resume: " + path + " does not exist; start the run without --resume");
  spruce::torch::LoopState loop;
  const auto position = spruce::torch::load_checkpoint(path, *student.model(), &optimizer, pruner,
                                                       spruce::torch::MaskSource::Checkpoint, &loop);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(loop.text);
    const auto expected = nlohmann::json::parse(fingerprint);
    for (const auto& [key, value] : expected.items())
      if (!state.at("settings").contains(key) || state["settings"][key] != value)
        spruce::usage_error(path + " was made with another " + key + " (" +
                            (state["settings"].contains(key) ? state["settings"][key].dump() : "none") + ", here " +
                            value.dump() + "); resume with the same settings, or start afresh in another folder");
    DistillProgress p;
    p.step = position.step;
    p.seconds = state.at("seconds").get<double>();
    p.loss_sum = state.at("loss_sum").get<double>();
    p.cosine_sum = state.at("cosine_sum").get<double>();
    p.window = state.at("window").get<int64_t>();
    p.crop_rng = state.at("crop_rng").get<std::string>();
    for (const auto& h : state.at("history"))
      p.history.push_back(
          {h.at(0).get<int64_t>(), h.at(1).get<double>(), h.at(2).get<double>(),
           Fidelity{h.at(3).get<double>(), h.at(4).get<double>(), h.at(5).get<double>(), h.at(6).get<int64_t>()}});
    const auto averaged = state.at("averaged").get<size_t>();
    for (size_t i = 0; i < averaged; ++i) p.averaged.push_back(loop.tensors.at("average." + std::to_string(i)));
    p.torch_rng = loop.tensors.at("torch_rng");
    return p;
  } catch (const nlohmann::json::exception& e) {
    spruce::data_error(path + ": not a distillation checkpoint (" + e.what() + ")");
  } catch (const std::out_of_range&) {
    spruce::data_error(path + ": not a distillation checkpoint (a tensor is missing)");
  }
}

}  // namespace minilm
