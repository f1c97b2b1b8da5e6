#include "minilm/bert.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <utility>

#include "spruce/attention.hpp"
#include "spruce/error.hpp"
#include "spruce/layer_norm.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/convert.hpp"

namespace minilm {

namespace F = ::torch::nn::functional;

namespace {
thread_local StageClock* active_clock = nullptr;

// norm(x + residual) (residual undefined: norm(x)). For inference, spruce's fused kernel
// (spruce/layer_norm.hpp): one pass over each row instead of LibTorch's sum tensor and its
// separate LayerNorm; in training or with gradients, LibTorch's ops.
::torch::Tensor add_and_norm(::torch::nn::LayerNorm& norm, const ::torch::Tensor& x, const ::torch::Tensor& residual,
                             bool training) {
  const bool fused =
      !training && !::torch::GradMode::is_enabled() && x.scalar_type() == ::torch::kFloat && x.device().is_cpu() &&
      x.dim() >= 1 && x.numel() > 0 && norm->options.normalized_shape() == std::vector<int64_t>{x.size(-1)} &&
      (!residual.defined() || (residual.sizes() == x.sizes() && residual.scalar_type() == x.scalar_type()));
  if (!fused) return norm(residual.defined() ? x + residual : x);
  const auto xc = x.contiguous();
  const auto rc = residual.defined() ? residual.contiguous() : ::torch::Tensor();
  const auto gamma = norm->weight.defined() ? norm->weight.contiguous() : ::torch::Tensor();
  const auto beta = norm->bias.defined() ? norm->bias.contiguous() : ::torch::Tensor();
  auto out = ::torch::empty_like(xc);
  spruce::LayerNormArgs a;
  a.width = x.size(-1), a.rows = x.numel() / a.width;
  a.x = xc.data_ptr<float>(), a.ld_x = a.width;
  if (rc.defined()) a.residual = rc.data_ptr<float>(), a.ld_residual = a.width;
  if (gamma.defined()) a.gamma = gamma.data_ptr<float>();
  if (beta.defined()) a.beta = beta.data_ptr<float>();
  a.eps = float(norm->options.eps());
  a.out = out.data_ptr<float>(), a.ld_out = a.width;
  a.threads = ::at::get_num_threads();
  spruce::layer_norm_f32(a);
  return out;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

const char* stage_name(Stage stage) {
  static const char* names[kStageCount] = {"embeddings",           "QKV projection",  "attention (QK, softmax, PV)",
                                           "attention output",     "FFN in (+ GELU)", "FFN out",
                                           "residual + LayerNorm", "mean pooling"};
  return names[static_cast<int>(stage)];
}

bool is_linear(Stage s) {
  return s == Stage::QkvProjection || s == Stage::AttentionOutput || s == Stage::FfnIn || s == Stage::FfnOut;
}

StageClock::StageClock() {
  if (active_clock) spruce::usage_error("internal: StageClocks do not nest");
  active_clock = this;
}
StageClock::~StageClock() { active_clock = nullptr; }

StageTimer::StageTimer(Stage stage) : stage_(stage) {
  if (active_clock) start_ns_ = now_ns();
}
StageTimer::~StageTimer() {
  if (start_ns_ >= 0 && active_clock) active_clock->add(stage_, 1e-6 * double(now_ns() - start_ns_));
}

namespace {
// A size in config.json: a JSON integer (384, not 384.5 or "384"); `fallback` where it may be absent.
int64_t size_field(const nlohmann::json& j, const char* key, std::optional<int64_t> fallback = {}) {
  if (fallback && !j.contains(key)) return *fallback;
  const nlohmann::json& v = j.at(key);
  if (!v.is_number_integer()) spruce::data_error(std::string(key) + " is " + v.dump() + ", not a whole number");
  return v.get<int64_t>();
}
}  // namespace

BertConfig BertConfig::read(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    spruce::usage_error("cannot read " + spruce::in_quotes(path) +
                        "; run scripts/install-deps.sh, which fetches all-MiniLM-L6-v2");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const std::exception& e) {
    spruce::data_error(path + " is not valid JSON: " + e.what());
  }
  if (!j.is_object()) spruce::data_error(path + " is not a JSON object of settings; is it a model's config.json?");
  BertConfig c;
  try {
    const char* only_bert = "; spruce runs BERT encoders only";
    if (j.value("model_type", "") != "bert") spruce::data_error(std::string("model_type is not \"bert\"") + only_bert);
    if (j.value("hidden_act", "gelu") != "gelu")
      spruce::data_error(std::string("hidden_act is not \"gelu\"") + only_bert);
    if (j.value("position_embedding_type", "absolute") != "absolute")
      spruce::data_error(std::string("position embeddings are not absolute") + only_bert);
    c.vocab_size = size_field(j, "vocab_size");
    c.hidden_size = size_field(j, "hidden_size");
    c.num_layers = size_field(j, "num_hidden_layers");
    c.num_heads = size_field(j, "num_attention_heads");
    c.intermediate_size = size_field(j, "intermediate_size");
    c.max_position_embeddings = size_field(j, "max_position_embeddings");
    c.type_vocab_size = size_field(j, "type_vocab_size", 2);
    c.layer_norm_eps = j.value("layer_norm_eps", 1e-12);
    c.dropout = j.value("hidden_dropout_prob", 0.1);
  } catch (const spruce::Error& e) {
    spruce::data_error(path + ": " + e.what());
  } catch (const std::exception& e) {
    spruce::data_error(path + ": " + e.what());
  }
  // Each size in its range, named when it is not.
  const auto in_range = [&](const char* field, int64_t v, int64_t lo, int64_t hi) {
    if (v < lo || v > hi)
      spruce::data_error(path + ": " + field + " is " + std::to_string(v) + ", outside " + std::to_string(lo) + ".." +
                         std::to_string(hi));
  };
  in_range("vocab_size", c.vocab_size, 1, 10'000'000);
  in_range("hidden_size", c.hidden_size, 1, 65536);
  in_range("num_hidden_layers", c.num_layers, 1, 256);
  in_range("num_attention_heads", c.num_heads, 1, c.hidden_size);
  in_range("intermediate_size", c.intermediate_size, 1, 262144);
  in_range("max_position_embeddings", c.max_position_embeddings, 2, 1 << 20);
  in_range("type_vocab_size", c.type_vocab_size, 1, 1 << 20);
  if (c.hidden_size % c.num_heads != 0)
    spruce::data_error(path + ": hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of " +
                       "num_attention_heads " + std::to_string(c.num_heads));
  // Every parameter is allocated before the weights are read: sizes that no weights file could
  // fill are refused here, not by the allocator.
  const double parameters = c.matrix_parameters();
  if (parameters > 4e9)
    spruce::data_error(path + ": sizes out of range (" + std::to_string(int64_t(parameters / 1e9)) +
                       " billion parameters; spruce runs BERT encoders of up to 4 billion)");
  if (!(c.layer_norm_eps >= 0 && c.layer_norm_eps < 1) || !(c.dropout >= 0 && c.dropout < 1))
    spruce::data_error(path + ": layer_norm_eps and hidden_dropout_prob must be in [0, 1)");
  return c;
}

double BertConfig::matrix_parameters() const {
  const double h = double(hidden_size);
  return h * (double(vocab_size) + double(max_position_embeddings) + double(type_vocab_size)) +
         double(num_layers) * (4 * h * h + 2 * h * double(intermediate_size));
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : heads_(c.num_heads), head_size_(c.hidden_size / c.num_heads), dropout_(c.dropout) {
  for (const char* name : {"query", "key", "value"}) add_linear(name, c.hidden_size, c.hidden_size, false, false);
  register_module("dropout", dropout_);
}

// Inference: spruce's fused kernel, per sequence and head in cache, reading the projections'
// [B*T][H] rows in place and writing [B*T][H].
::torch::Tensor BertSelfAttentionImpl::fused_attention(const ::torch::Tensor& q, const ::torch::Tensor& k,
                                                       const ::torch::Tensor& v, const ::torch::Tensor& mask_bias,
                                                       int64_t batch) const {
  const auto qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous();
  const auto bias = mask_bias.contiguous();
  auto out = ::torch::empty_like(qc);
  spruce::AttentionArgs a;
  a.batch = batch, a.tokens = q.size(0) / batch, a.heads = heads_, a.head_size = head_size_;
  a.q = qc.data_ptr<float>(), a.k = kc.data_ptr<float>(), a.v = vc.data_ptr<float>();
  a.ld_q = a.ld_k = a.ld_v = heads_ * head_size_;
  a.key_bias = bias.data_ptr<float>();
  a.out = out.data_ptr<float>(), a.ld_out = heads_ * head_size_;
  a.threads = ::at::get_num_threads();
  a.precision = precision_;
  spruce::attention_f32(a);
  return out;
}

::torch::Tensor BertSelfAttentionImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& mask_bias,
                                               int64_t batch) {
  ::torch::Tensor q, k, v;  // [B*T][H]
  {
    StageTimer timer(Stage::QkvProjection);
    // INT8: x quantized once for the three (they share its calibration), not once each.
    const auto shared = spruce::torch::quantize_shared_input({layer(0).get(), layer(1).get(), layer(2).get()}, x);
    const auto& in = shared.defined() ? shared : x;
    q = run_layer(0, in), k = run_layer(1, in), v = run_layer(2, in);
  }
  StageTimer timer(Stage::Attention);
  if (!::torch::GradMode::is_enabled() && !is_training() && !recording_)
    return fused_attention(q, k, v, mask_bias, batch);
  const int64_t tokens = x.size(0) / batch;
  auto heads = [&](const ::torch::Tensor& t) {  // [B*T][H] -> [B][heads][T][head_size]
    return t.view({batch, tokens, heads_, head_size_}).transpose(1, 2);
  };
  const double scale = 1 / std::sqrt(static_cast<double>(head_size_));
  const auto scores = ::torch::matmul(heads(q), heads(k).transpose(-1, -2)) * scale + mask_bias;
  ::torch::Tensor probs;
  if (recording_) {
    attention_log_probs = ::torch::log_softmax(scores, -1);
    value_relation_log_probs =
        ::torch::log_softmax(::torch::matmul(heads(v), heads(v).transpose(-1, -2)) * scale + mask_bias, -1);
    probs = attention_log_probs.exp();
  } else {
    probs = ::torch::softmax(scores, -1);
  }
  return ::torch::matmul(dropout_(probs), heads(v)).transpose(1, 2).reshape({batch * tokens, heads_ * head_size_});
}

BertDenseImpl::BertDenseImpl(const BertConfig& c, int64_t in, int64_t out, spruce::Activation activation,
                             bool residual_norm, Stage stage)
    : dropout_(c.dropout), stage_(stage) {
  add_linear("dense", in, out, activation, false);
  if (residual_norm)
    norm_ = register_module("LayerNorm",
                            ::torch::nn::LayerNorm(::torch::nn::LayerNormOptions({out}).eps(c.layer_norm_eps)));
  register_module("dropout", dropout_);
}

::torch::Tensor BertDenseImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& residual) {
  ::torch::Tensor y;
  {
    StageTimer timer(stage_);
    y = run_layer(0, x);
  }
  if (!norm_) return y;
  StageTimer timer(Stage::ResidualNorm);
  return add_and_norm(norm_, dropout_(y), residual, is_training());
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c)
    : self_attention(register_module("self", BertSelfAttention(c))),
      output(register_module("output", BertDense(c, c.hidden_size, c.hidden_size, spruce::Activation::None, true,
                                                 Stage::AttentionOutput))) {}

BertLayerImpl::BertLayerImpl(const BertConfig& c)
    : attention(register_module("attention", BertAttention(c))),
      intermediate(register_module("intermediate", BertDense(c, c.hidden_size, c.intermediate_size,
                                                             spruce::Activation::GELU, false, Stage::FfnIn))),
      output(register_module(
          "output", BertDense(c, c.intermediate_size, c.hidden_size, spruce::Activation::None, true, Stage::FfnOut))) {
  // INT8: the up-projection hands u8 (after GELU) straight to the down-projection.
  intermediate->set_feeds_host(output.get());
}

::torch::Tensor BertLayerImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& mask_bias, int64_t batch) {
  const auto attended = attention->output(attention->self_attention(x, mask_bias, batch), x);
  return output(intermediate(attended), attended);
}

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertConfig& c)
    : word_embeddings(register_module("word_embeddings", ::torch::nn::Embedding(c.vocab_size, c.hidden_size))),
      position_embeddings(
          register_module("position_embeddings", ::torch::nn::Embedding(c.max_position_embeddings, c.hidden_size))),
      token_type_embeddings(
          register_module("token_type_embeddings", ::torch::nn::Embedding(c.type_vocab_size, c.hidden_size))),
      norm(register_module(
          "LayerNorm", ::torch::nn::LayerNorm(::torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)))),
      dropout(register_module("dropout", ::torch::nn::Dropout(c.dropout))) {}

::torch::Tensor BertEmbeddingsImpl::forward(const ::torch::Tensor& ids) {
  const int64_t tokens = ids.size(1);
  if (tokens > position_embeddings->weight.size(0))
    spruce::usage_error("a sequence of " + std::to_string(tokens) + " tokens is longer than the model's " +
                        std::to_string(position_embeddings->weight.size(0)) + " positions");
  const auto positions = ::torch::arange(tokens, ids.options()).unsqueeze(0);
  // One segment: token type 0 everywhere, as sentence-transformers encodes single texts.
  const auto x = word_embeddings(ids) + position_embeddings(positions) + token_type_embeddings->weight[0];
  return dropout(add_and_norm(norm, x, {}, is_training()));
}

BertModelImpl::BertModelImpl(const BertConfig& c)
    : embeddings(register_module("embeddings", BertEmbeddings(c))), config_(c) {
  auto encoder = register_module("encoder", std::make_shared<::torch::nn::Module>("BertEncoder"));
  layers = encoder->register_module("layer", ::torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_layers; ++i) layers->push_back(BertLayer(c));
}

EncoderOutput BertModelImpl::forward(const ::torch::Tensor& ids, const ::torch::Tensor& mask) {
  if (ids.dim() != 2 || !ids.sizes().equals(mask.sizes()))
    spruce::usage_error("the encoder takes ids and a mask of the same shape [batch][tokens]");
  const int64_t batch = ids.size(0), tokens = ids.size(1);
  const float lowest = std::numeric_limits<float>::lowest();
  const auto mask_bias = (1.0 - mask.to(::torch::kFloat)).mul(lowest).view({batch, 1, 1, tokens});
  EncoderOutput out;
  ::torch::Tensor x;
  {
    StageTimer timer(Stage::Embeddings);
    x = embeddings(ids).reshape({batch * tokens, config_.hidden_size});
  }
  for (const auto& layer : *layers) {
    auto* l = layer->as<BertLayer>();
    x = l->forward(x, mask_bias, batch);
    out.hidden_states.push_back(x.view({batch, tokens, config_.hidden_size}));
    if (record_attention_) {
      auto& self = *l->attention->self_attention;
      out.attention_log_probs.push_back(std::exchange(self.attention_log_probs, {}));
      out.value_relation_log_probs.push_back(std::exchange(self.value_relation_log_probs, {}));
    }
  }
  out.last_hidden = out.hidden_states.back();
  return out;
}

std::string BertModelImpl::set_attention_precision(spruce::AttentionPrecision p) {
  for (const auto& layer : *layers) layer->as<BertLayer>()->attention->self_attention->set_precision(p);
  return spruce::attention_kernel_name(config_.hidden_size / config_.num_heads, p);
}

void BertModelImpl::set_record_attention(bool on) {
  record_attention_ = on;
  for (const auto& layer : *layers) layer->as<BertLayer>()->attention->self_attention->set_recording(on);
}

void load_weights(::torch::nn::Module& model, const std::string& path) {
  load_weights(model, spruce::read_safetensors(path), path);
}

void load_weights(::torch::nn::Module& model, const spruce::SafetensorsFile& file, const std::string& path) {
  ::torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const spruce::Tensor* t = file.find(item.key());
    if (!t) spruce::data_error(path + " has no tensor " + item.key() + "; is it this model's checkpoint?");
    auto& p = item.value();
    if (t->dtype != spruce::DType::F32)
      spruce::data_error(path + ": tensor " + item.key() + " is " + spruce::to_string(t->dtype) +
                         "; spruce reads F32 weights (save the model in float32)");
    if (t->shape != p.sizes().vec())
      spruce::data_error(path + ": tensor " + item.key() + " is of another shape than the model's " +
                         c10::str(p.sizes()) + "; does config.json belong to these weights?");
    const std::vector<float> values = t->to_f32();
    spruce::require_finite(path, *t, values, "the model's embeddings would be NaN");
    std::memcpy(p.data_ptr<float>(), values.data(), values.size() * sizeof(float));
  }
  // Encoder weights the model has no place for: config.json declares fewer layers (or heads'
  // parts) than were trained, and the embeddings would silently skip them.
  std::set<std::string> used;
  for (const auto& item : model.named_parameters()) used.insert(item.key());
  for (const auto& t : file.tensors)
    if (t.name.starts_with("encoder.") && !used.contains(t.name))
      spruce::data_error(path + " holds " + t.name +
                         ", which the model of config.json has no place for; does config.json (num_hidden_layers) "
                         "belong to these weights?");
}

void save_weights(const ::torch::nn::Module& model, const std::string& path) {
  spruce::SafetensorsFile file;
  file.metadata["format"] = "pt";
  for (const auto& item : model.named_parameters()) {
    const auto p = item.value().detach().contiguous();
    file.tensors.push_back(spruce::Tensor::from_f32(item.key(), p.sizes().vec(), p.data_ptr<float>()));
  }
  spruce::write_safetensors(path, file);
}

::torch::Tensor mean_pool_normalized(const ::torch::Tensor& last_hidden, const ::torch::Tensor& mask) {
  StageTimer timer(Stage::Pooling);
  const auto m = mask.to(last_hidden.dtype()).unsqueeze(-1);
  const auto mean = (last_hidden * m).sum(1) / m.sum(1).clamp_min(1e-9);
  return F::normalize(mean, F::NormalizeFuncOptions().p(2).dim(1));
}

}  // namespace minilm
