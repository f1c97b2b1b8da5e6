#include "minilm/sentence_encoder.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numeric>

#include <omp.h>

#include <nlohmann/json.hpp>

#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/safetensors.hpp"

namespace minilm {

SentenceEncoder::SentenceEncoder(spruce::text::WordPieceTokenizer tokenizer, BertModel model, int64_t max_length,
                                 std::string dir)
    : tokenizer_(std::move(tokenizer)), model_(std::move(model)), max_length_(max_length), directory_(std::move(dir)) {}

namespace {

// A JSON file of the model folder, or null when it is absent.
nlohmann::json read_json_file(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) return nullptr;
  try {
    return nlohmann::json::parse(spruce::read_file(path.string()));
  } catch (const nlohmann::json::exception& e) {
    spruce::data_error(path.string() + " is not valid JSON (" + std::string(e.what()).substr(0, 120) + ")");
  }
}

[[noreturn]] void unsupported(const std::filesystem::path& file, const std::string& what) {
  spruce::data_error(file.string() + ": " + what +
                     "; spruce embeds as all-MiniLM-L6-v2 does (lower-cased WordPiece, "
                     "mean pooling, then L2 normalization), so this model would embed differently");
}

// The sentence-transformers settings that spruce does not read but follows: a folder asking for
// others (cased text, [CLS] pooling, no normalization, another vocabulary in tokenizer.json) got
// all-MiniLM-L6-v2's treatment, with no word said.
void check_sentence_transformers_settings(const std::string& dir, const spruce::text::WordPieceTokenizer& tokenizer,
                                          int64_t hidden_size) {
  namespace fs = std::filesystem;
  const fs::path folder(dir);
  if (const auto modules = read_json_file(folder / "modules.json"); !modules.is_null()) {
    std::vector<std::string> types;
    if (modules.is_array())
      for (const auto& m : modules)
        if (m.is_object() && m.contains("type") && m["type"].is_string()) types.push_back(m["type"]);
    const std::vector<std::string> expected{"sentence_transformers.models.Transformer",
                                            "sentence_transformers.models.Pooling",
                                            "sentence_transformers.models.Normalize"};
    if (types != expected) unsupported(folder / "modules.json", "its modules are not Transformer, Pooling, Normalize");
  }
  if (const auto pooling = read_json_file(folder / "1_Pooling" / "config.json"); !pooling.is_null()) {
    if (!pooling.is_object()) unsupported(folder / "1_Pooling" / "config.json", "it is not a JSON object");
    for (const auto& [key, value] : pooling.items())
      if (key.starts_with("pooling_mode_") && value.is_boolean() &&
          value.get<bool>() != (key == "pooling_mode_mean_tokens"))
        unsupported(folder / "1_Pooling" / "config.json", key + " is " + (value.get<bool>() ? "true" : "false"));
    if (pooling.contains("word_embedding_dimension") && pooling["word_embedding_dimension"] != hidden_size)
      unsupported(folder / "1_Pooling" / "config.json", "word_embedding_dimension is not config.json's hidden_size");
  }
  if (const auto config = read_json_file(folder / "tokenizer_config.json"); config.is_object())
    for (const char* key : {"do_lower_case", "tokenize_chinese_chars", "do_basic_tokenize"})
      if (config.contains(key) && config[key] == false)
        unsupported(folder / "tokenizer_config.json", key + std::string(" is false"));
  const auto fast = read_json_file(folder / "tokenizer.json");
  if (fast.is_null()) return;  // no tokenizer.json
  const fs::path file = folder / "tokenizer.json";
  if (!fast.is_object() || (fast.contains("model") && !fast["model"].is_object()))
    spruce::data_error(file.string() + " is not a tokenizer's settings (a JSON object, its \"model\" an object too)");
  if (const auto& n = fast.value("normalizer", nlohmann::json()); n.is_object()) {
    if (n.value("lowercase", true) == false) unsupported(file, "its normalizer does not lower-case");
    if (n.value("handle_chinese_chars", true) == false) unsupported(file, "its normalizer does not split Chinese");
  }
  // sentence-transformers' fast tokenizer reads this vocabulary, not vocab.txt.
  if (const auto& model = fast.value("model", nlohmann::json()); model.is_object() && model.contains("vocab")) {
    const auto& vocab = model["vocab"];
    bool same = vocab.is_object() && vocab.size() == tokenizer.vocabulary_size();
    for (auto it = vocab.begin(); same && it != vocab.end(); ++it)
      same = it.value().is_number_integer() && tokenizer.id_of(it.key()) == it.value().get<int64_t>();
    if (!same) unsupported(file, "its vocabulary is not vocab.txt's");
  }
}

}  // namespace

int64_t SentenceEncoder::folder_max_length(const std::string& dir) {
  const auto config = read_json_file(std::filesystem::path(dir) / "sentence_bert_config.json");
  return config.is_object() && config.contains("max_seq_length") && config["max_seq_length"].is_number_integer()
             ? config["max_seq_length"].get<int64_t>()
             : 0;
}

SentenceEncoder SentenceEncoder::load(const std::string& dir, int64_t max_length) {
  require_model_folder(dir);
  auto tokenizer = spruce::text::WordPieceTokenizer::load(dir + "/vocab.txt");
  const BertConfig config = BertConfig::read(dir + "/config.json");
  if (tokenizer.vocabulary_size() > static_cast<size_t>(config.vocab_size))
    spruce::data_error(dir + "/vocab.txt has " + std::to_string(tokenizer.vocabulary_size()) +
                       " tokens, more than config.json's vocab_size " + std::to_string(config.vocab_size) +
                       "; the two files belong to different models");
  if (max_length < 2 || max_length > config.max_position_embeddings)
    spruce::usage_error(
        "the maximum length " + std::to_string(max_length) + " is outside 2.." +
        std::to_string(config.max_position_embeddings) + ", the positions " + dir +
        "/config.json gives (max_position_embeddings); give a length within it (--max-length, --seq-length)");
  // The weights first: sizes in config.json that the file cannot fill were allocated (16 GB for a
  // vocab_size of ten million) only to be refused.
  const std::string weights_path = dir + "/model.safetensors";
  const spruce::SafetensorsFile weights = spruce::read_safetensors(weights_path);
  double held = 0;
  for (const auto& t : weights.tensors) held += double(t.numel());
  if (config.matrix_parameters() > held)
    spruce::data_error(dir + "/config.json's sizes need at least " +
                       std::to_string(int64_t(config.matrix_parameters())) + " weights, and " + weights_path +
                       " holds " + std::to_string(int64_t(held)) + "; the two files belong to different models");
  check_sentence_transformers_settings(dir, tokenizer, config.hidden_size);
  BertModel model(config);
  load_weights(*model, weights, weights_path);
  model->eval();
  return SentenceEncoder(std::move(tokenizer), std::move(model), max_length, dir);
}

namespace {
Inputs to_inputs(const spruce::text::Batch& batch) {
  Inputs in;
  in.ids = ::torch::tensor(batch.ids, ::torch::kInt64).view({batch.rows, batch.max_length});
  in.mask = ::torch::tensor(batch.mask, ::torch::kInt64).view({batch.rows, batch.max_length});
  in.truncated = batch.truncated;
  return in;
}
}  // namespace

Inputs SentenceEncoder::tokenize(const std::vector<std::string>& texts) const {
  return to_inputs(tokenizer_.encode_batch(texts, static_cast<size_t>(max_length_)));
}

void SentenceEncoder::set_tokens_per_pass(int64_t tokens) {
  if (tokens < 0) spruce::usage_error("tokens per pass must be >= 0 (0: the whole batch at once)");
  tokens_per_pass_ = tokens;
}

SentenceEncoder::PassPlan SentenceEncoder::plan_passes(int64_t tokens_per_pass, int64_t length, int64_t rows,
                                                       int threads, bool parallel) {
  PassPlan plan;
  plan.sequences = tokens_per_pass > 0 ? std::clamp<int64_t>(tokens_per_pass / std::max<int64_t>(1, length), 1,
                                                             std::max<int64_t>(1, rows))
                                       : std::max<int64_t>(1, rows);
  if (!parallel || tokens_per_pass == 0 || threads < 2 || rows < 2) return plan;
  plan.workers = int(std::min<int64_t>(threads, rows));
  plan.sequences = std::min(plan.sequences, (rows + plan.workers - 1) / plan.workers);
  return plan;
}

::torch::Tensor SentenceEncoder::embed(const Inputs& inputs) {
  const auto pass = [&](const ::torch::Tensor& ids, const ::torch::Tensor& mask) {
    return mean_pool_normalized(model_->forward(ids, mask).last_hidden, mask);
  };
  const int64_t rows = inputs.ids.size(0);
  if (::torch::GradMode::is_enabled()) return pass(inputs.ids, inputs.mask);
  const PassPlan plan =
      plan_passes(tokens_per_pass_, inputs.ids.size(1), rows, ::at::get_num_threads(), parallel_passes_);
  const int64_t per = plan.sequences, passes = (rows + per - 1) / per;
  if (passes == 1) return pass(inputs.ids, inputs.mask);
  std::vector<::torch::Tensor> parts(static_cast<size_t>(passes));
  const auto run_pass = [&](int64_t p) {
    const int64_t r = p * per, n = std::min(per, rows - r);
    parts[size_t(p)] = pass(inputs.ids.narrow(0, r, n), inputs.mask.narrow(0, r, n));
  };
  if (plan.workers < 2) {
    for (int64_t p = 0; p < passes; ++p) run_pass(p);
    return ::torch::cat(parts);
  }
  // Side by side: inside the parallel region every operator (spruce's, oneDNN's, LibTorch's) runs
  // on its calling thread alone. The calling thread is worker 0, so a StageClock on it times its
  // own passes: about the batch's wall time, stage by stage.
  std::exception_ptr error;
#pragma omp parallel num_threads(plan.workers)
  {
    ::torch::NoGradGuard no_grad;  // grad mode is per thread
    // The team's own size: nested in a caller's parallel region it has one thread, which then
    // runs every pass.
    for (int64_t p = omp_get_thread_num(); p < passes; p += omp_get_num_threads()) {
      try {
        run_pass(p);
      } catch (...) {
#pragma omp critical(minilm_embed_error)
        if (!error) error = std::current_exception();
      }
    }
  }
  if (error) std::rethrow_exception(error);
  return ::torch::cat(parts);
}

::torch::Tensor SentenceEncoder::encode(const std::vector<std::string>& texts, int64_t batch_size,
                                        const std::function<void(const Progress&)>& progress) {
  if (batch_size < 1) spruce::usage_error("the batch size must be at least 1");
  std::vector<spruce::text::Encoding> encodings;  // each text tokenized once
  encodings.reserve(texts.size());
  for (const auto& text : texts) encodings.push_back(tokenizer_.encode(text, static_cast<size_t>(max_length_)));
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return encodings[a].ids.size() > encodings[b].ids.size(); });
  ::torch::NoGradGuard no_grad;
  auto out = ::torch::empty({static_cast<int64_t>(texts.size()), model_->config().hidden_size});
  Progress done{0, static_cast<int64_t>(texts.size()), 0, 0};
  for (const auto& e : encodings) done.tokens += static_cast<int64_t>(e.ids.size());
  // A pass's attention scores take batch x heads x length^2 floats: longer texts go in smaller
  // passes, so that --batch 4096 at 512 tokens needs 1 GiB of them, not 51 GiB. (Texts are
  // independent: the embeddings do not depend on the pass.)
  constexpr double kScoreBytes = 1 << 30;
  const double heads = double(model_->config().num_heads);
  for (size_t begin = 0, end = 0; begin < order.size(); begin = end) {
    const double length = double(std::max<size_t>(encodings[order[begin]].ids.size(), 1));
    const auto fits = std::max<size_t>(1, size_t(kScoreBytes / (4 * heads * length * length)));
    end = std::min({order.size(), begin + static_cast<size_t>(batch_size), begin + fits});
    std::vector<const spruce::text::Encoding*> chunk;
    for (size_t i = begin; i < end; ++i) chunk.push_back(&encodings[order[i]]);
    const Inputs inputs = to_inputs(tokenizer_.pad(chunk));
    truncated_ += inputs.truncated;
    const auto e = embed(inputs);
    for (size_t i = begin; i < end; ++i) out[static_cast<int64_t>(order[i])] = e[static_cast<int64_t>(i - begin)];
    if (progress) {
      done.texts_done = static_cast<int64_t>(end);
      for (size_t i = begin; i < end; ++i) done.tokens_done += static_cast<int64_t>(encodings[order[i]].ids.size());
      progress(done);
    }
  }
  return out;
}

}  // namespace minilm

namespace minilm {

std::vector<spruce::torch::ConvertedLayer> SentenceEncoder::convert(const spruce::torch::ConvertOptions& options,
                                                                    const std::vector<std::string>& calibration_texts) {
  const bool int8 = options.variant != spruce::torch::Variant::F32Sparse;
  if (int8 && calibration_texts.empty()) spruce::usage_error("INT8 conversion of the encoder needs calibration texts");
  const int64_t truncated = truncated_;  // the count is of the caller's texts, not the calibration's
  // Calibration passes one at a time: the observers then see the texts in one order, so that the
  // reservoir behind a percentile, and with it the conversion, is the same from run to run.
  auto layers = spruce::torch::convert(*model_, options, [&] {
    struct OnePassAtATime {
      bool& parallel;
      const bool was = parallel;
      ~OnePassAtATime() { parallel = was; }
    } serial{parallel_passes_};
    parallel_passes_ = false;
    encode(calibration_texts, 32);
  });
  truncated_ = truncated;
  return layers;
}

std::string SentenceEncoder::Served::kernels() const {
  std::map<std::string, int> count;
  for (const auto& l : layers) ++count[l.kernel];
  std::string out;
  for (const auto& [kernel, n] : count) out += (out.empty() ? "" : ", ") + kernel + " x" + std::to_string(n);
  return out.empty() ? "libtorch" : out;
}

SentenceEncoder::Served SentenceEncoder::serve(const std::string& variant,
                                               const std::vector<std::string>& calibration_texts,
                                               const std::vector<int64_t>& batch_sizes, int64_t length, int threads,
                                               spruce::Fallback fallback, spruce::AttentionPrecision int8_attention) {
  Served served;
  const bool int8 = variant.starts_with("int8");
  if (variant != "fp32-dense") {
    spruce::torch::ConvertOptions c;
    c.threads = threads;
    c.variant = spruce::torch::parse_variant(variant);
    if (variant.ends_with("sparse")) c.fallback = fallback;
    for (int64_t b : batch_sizes)
      c.tune_m.push_back(plan_passes(tokens_per_pass_, length, b, threads, parallel_passes_).sequences * length);
    served.layers = convert(c, calibration_texts);
  }
  // Spruce's fused attention in every variant; BF16 or INT8 products only where asked, for INT8.
  served.attention = model_->set_attention_precision(int8 ? int8_attention : spruce::AttentionPrecision::F32);
  return served;
}

}  // namespace minilm
