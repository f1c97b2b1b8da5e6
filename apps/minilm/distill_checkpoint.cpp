#include "minilm/distill_checkpoint.hpp"

#include <ATen/Context.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <sstream>

#include "spruce/checksum.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/torch/checkpoint.hpp"

namespace minilm {

// FNV-1a over the teacher's files (name, size, bytes) that the run reads or a saved model copies.
std::string teacher_checksum(const std::string& dir) {
  uint64_t hash = spruce::kFnv1aBasis;
  for (const char* name : {"config.json", "model.safetensors", "vocab.txt", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "modules.json", "sentence_bert_config.json",
                           "config_sentence_transformers.json", "1_Pooling/config.json"}) {
    const auto path = std::filesystem::path(dir) / name;
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec)) continue;
    const std::string bytes = spruce::read_file(path.string());
    hash = spruce::fnv1a(name, std::strlen(name) + 1, hash);
    const uint64_t size = bytes.size();
    hash = spruce::fnv1a(&size, sizeof size, hash);
    hash = spruce::fnv1a(bytes.data(), bytes.size(), hash);
  }
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(hash));
  return hex;
}

std::string distill_fingerprint(const DistillOptions& o, const Corpus& corpus, const std::string& teacher) {
  nlohmann::ordered_json j{{"teacher", teacher},
                           {"recipe", o.recipe ? o.recipe->to_yaml() : std::string("none")},
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
                           {"permute_channels", o.permute_channels},
                           {"extra_share", o.extra_share},
                           {"seed", o.seed},
                           {"evaluations", o.evaluations},
                           {"train_texts", corpus.train.size()},
                           {"extra_texts", corpus.extra.size()},
                           {"held_out_texts", corpus.held_out.size()}};
  return j.dump();
}

namespace {

// "A, here B" for two settings; for a recipe, its first YAML line that differs.
std::string first_difference(const nlohmann::json& saved, const nlohmann::json& here) {
  if (saved.is_string() && here.is_string()) {
    std::istringstream a(saved.get<std::string>()), b(here.get<std::string>());
    std::string line_a, line_b;
    while (true) {
      const bool more_a = bool(std::getline(a, line_a)), more_b = bool(std::getline(b, line_b));
      if (!more_a && !more_b) break;
      if (!more_a || !more_b || line_a != line_b)
        return (more_a ? line_a : "nothing") + ", here " + (more_b ? line_b : "nothing");
    }
  }
  return (saved.is_null() ? std::string("none") : saved.dump()) + ", here " + here.dump();
}

// A number as saved: JSON has no NaN or infinity, and nlohmann writes them as null (a diverged loss).
double number(const nlohmann::json& j) { return j.is_null() ? NAN : j.get<double>(); }

}  // namespace

void save_distill_checkpoint(const std::string& dir, SentenceEncoder& student,
                             const ::torch::optim::Optimizer& optimizer, const spruce::torch::Pruner* pruner,
                             const DistillProgress& p, const std::string& fingerprint) {
  nlohmann::ordered_json history = nlohmann::ordered_json::array();
  for (const auto& h : p.history)
    history.push_back({h.step, h.sparsity, h.loss, h.fidelity.mean_cosine, h.fidelity.top10_overlap,
                       h.fidelity.spearman, h.fidelity.texts});
  nlohmann::ordered_json state{{"settings", nlohmann::json::parse(fingerprint)},
                               {"seconds", p.seconds},
                               {"loss_sum", p.loss_sum},
                               {"cosine_sum", p.cosine_sum},
                               {"window", p.window},
                               {"crop_rng", p.crop_rng},
                               {"averaged", p.averaged.size()},
                               {"history", history}};
  if (p.channel_order) {
    const auto& c = *p.channel_order;
    state["channel_order"] = {c.layers, c.kept_before, c.kept_after, c.total, c.seconds};
  }
  spruce::torch::LoopState loop{state.dump(), {{"torch_rng", p.torch_rng}}};
  for (size_t i = 0; i < p.averaged.size(); ++i) loop.tensors["average." + std::to_string(i)] = p.averaged[i];
  std::filesystem::create_directories(dir);
  spruce::torch::save_checkpoint(checkpoint_path(dir), *student.model(), &optimizer, pruner, {0, p.step}, &loop);
}

DistillProgress load_distill_checkpoint(const std::string& dir, SentenceEncoder& student,
                                        ::torch::optim::Optimizer& optimizer, spruce::torch::Pruner* pruner,
                                        const std::string& fingerprint, const std::string& defaults) {
  const std::string path = checkpoint_path(dir);
  if (!std::filesystem::is_regular_file(path))
    spruce::usage_error("--resume: " + path + " does not exist; start the run without --resume");
  // The settings first: a run with another recipe would otherwise fail on its masks, less clearly.
  const spruce::torch::LoopState loop = spruce::torch::read_loop_state(path);
  if (loop.text.empty())
    spruce::data_error(path + ": not a distillation checkpoint (it holds no run state, as `spruce train` writes)");
  nlohmann::json state, expected;
  try {
    state = nlohmann::json::parse(loop.text);
    expected = nlohmann::json::parse(fingerprint);
    const nlohmann::json fallback = nlohmann::json::parse(defaults);
    const nlohmann::json& settings = state.at("settings");
    for (const auto& [key, value] : expected.items()) {
      const nlohmann::json saved = settings.contains(key) ? settings.at(key) : fallback.value(key, nlohmann::json());
      if (saved != value && key == "teacher")
        spruce::usage_error(path +
                            " was made with another teacher: the files of --model differ from those the run "
                            "started with (checksum " +
                            first_difference(saved, value) +
                            "); resume with the same --model, or start afresh in another folder");
      if (saved != value)
        spruce::usage_error(path + " was made with another " + key + " (" + first_difference(saved, value) +
                            "); resume with the same settings, or start afresh in another folder");
    }
  } catch (const nlohmann::json::exception& e) {
    spruce::data_error(path + ": not a distillation checkpoint (" + e.what() + ")");
  }
  const auto position = spruce::torch::load_checkpoint(path, *student.model(), &optimizer, pruner);
  try {
    DistillProgress p;
    p.step = position.step;
    const auto steps = expected.at("steps").get<int64_t>();
    // Numbers as a run writes them, or the checkpoint is refused: what passed went into --json.
    auto damaged = [&](const std::string& what) {
      spruce::data_error(path + ": not a distillation checkpoint (" + what + ")");
    };
    auto integer = [&](const nlohmann::json& j, int64_t lo, int64_t hi, const char* what) {
      if (!j.is_number_integer() || j.get<int64_t>() < lo || j.get<int64_t>() > hi)
        damaged(std::string(what) + " " + j.dump() + " is not a whole number in [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
      return j.get<int64_t>();
    };
    auto within = [&](double v, double lo, double hi, const char* what, bool nan_ok = false) {
      if (!(v >= lo && v <= hi) && !(nan_ok && std::isnan(v)))
        damaged(std::string(what) + " " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                std::to_string(hi) + "]");
      return v;
    };
    if (p.step < 0 || p.step > steps)
      damaged("step " + std::to_string(p.step) + " of a run of " + std::to_string(steps) + " steps");
    p.seconds = within(state.at("seconds").get<double>(), 0, 1e12, "seconds");
    p.window = integer(state.at("window"), 0, p.step, "window");
    p.loss_sum = number(state.at("loss_sum"));  // NaN: a diverged loss
    p.cosine_sum = within(number(state.at("cosine_sum")), -double(p.window) - 1e-6, double(p.window) + 1e-6,
                          "the window's cosine sum", true);
    p.crop_rng = state.at("crop_rng").get<std::string>();
    int64_t last_step = 0;
    for (const auto& h : state.at("history")) {
      const int64_t at = integer(h.at(0), last_step + 1, p.step, "a held-out check's step");
      last_step = at;
      p.history.push_back({at, within(number(h.at(1)), 0, 1, "a sparsity"), number(h.at(2)),
                           Fidelity{within(number(h.at(3)), -1 - 1e-6, 1 + 1e-6, "a mean cosine", true),
                                    within(number(h.at(4)), 0, 1, "a top-10 overlap", true),
                                    within(number(h.at(5)), -1 - 1e-6, 1 + 1e-6, "a Spearman correlation", true),
                                    integer(h.at(6), 11, INT64_MAX, "a held-out text count")}});
    }
    if (state.contains("channel_order")) {
      const auto& c = state.at("channel_order");
      const int64_t layers = integer(c.at(0), 1, 2 * student.model()->config().num_layers, "the reordered layers");
      const double total = within(c.at(3).get<double>(), 0, 1e300, "the channel scores' total");
      p.channel_order = ChannelOrderReport{layers, within(c.at(1).get<double>(), 0, total, "the kept channel score"),
                                           within(c.at(2).get<double>(), 0, total, "the kept channel score"), total,
                                           within(c.at(4).get<double>(), 0, 1e12, "the reordering's seconds")};
    } else if (expected.value("permute_channels", false)) {
      damaged("its settings reorder the channels, and it does not say how that went");
    }
    const auto averaged = static_cast<size_t>(integer(state.at("averaged"), 0, 1'000'000, "the averaged tensors"));
    for (size_t i = 0; i < averaged; ++i) p.averaged.push_back(loop.tensors.at("average." + std::to_string(i)));
    p.torch_rng = loop.tensors.at("torch_rng");
    // What the loop would restore without a check: a weight average of other weights, generator
    // states that do not parse.
    const auto& trained = optimizer.param_groups().at(0).params();
    if (!p.averaged.empty() && p.averaged.size() != trained.size())
      spruce::data_error(path + ": not a distillation checkpoint (a weight average of " +
                         std::to_string(p.averaged.size()) + " tensors, for " + std::to_string(trained.size()) +
                         " trained ones)");
    for (size_t i = 0; i < p.averaged.size(); ++i)
      if (!p.averaged[i].sizes().equals(trained[i].sizes()) || p.averaged[i].scalar_type() != trained[i].scalar_type())
        spruce::data_error(path + ": not a distillation checkpoint (weight average " + std::to_string(i) +
                           " has another shape than its weight)");
    std::mt19937_64 crop;
    std::istringstream crop_state(p.crop_rng);
    const auto generator = at::globalContext().defaultGenerator(at::kCPU).get_state();
    if (!(crop_state >> crop) || !p.torch_rng.defined() || p.torch_rng.scalar_type() != generator.scalar_type() ||
        !p.torch_rng.sizes().equals(generator.sizes()))
      spruce::data_error(path + ": not a distillation checkpoint (a random generator's state is damaged)");
    return p;
  } catch (const nlohmann::json::exception& e) {
    spruce::data_error(path + ": not a distillation checkpoint (" + e.what() + ")");
  } catch (const std::out_of_range&) {
    spruce::data_error(path + ": not a distillation checkpoint (a tensor is missing)");
  }
}

}  // namespace minilm
