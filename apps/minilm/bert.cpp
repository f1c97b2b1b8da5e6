#include "minilm/bert.hpp"

#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"

namespace minilm {

namespace F = ::torch::nn::functional;

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
  BertConfig c;
  try {
    if (j.value("model_type", "") != "bert") spruce::data_error("model_type is not \"bert\"");
    if (j.value("hidden_act", "gelu") != "gelu") spruce::data_error("hidden_act is not \"gelu\"");
    if (j.value("position_embedding_type", "absolute") != "absolute")
      spruce::data_error("position embeddings are not absolute");
    c.vocab_size = j.at("vocab_size").get<int64_t>();
    c.hidden_size = j.at("hidden_size").get<int64_t>();
    c.num_layers = j.at("num_hidden_layers").get<int64_t>();
    c.num_heads = j.at("num_attention_heads").get<int64_t>();
    c.intermediate_size = j.at("intermediate_size").get<int64_t>();
    c.max_position_embeddings = j.at("max_position_embeddings").get<int64_t>();
    c.type_vocab_size = j.value("type_vocab_size", int64_t{2});
    c.layer_norm_eps = j.value("layer_norm_eps", 1e-12);
    c.dropout = j.value("hidden_dropout_prob", 0.1);
  } catch (const spruce::Error& e) {
    spruce::data_error(path + ": " + e.what() + "; spruce runs BERT encoders only");
  } catch (const std::exception& e) {
    spruce::data_error(path + ": " + e.what());
  }
  const bool sane = c.vocab_size > 0 && c.hidden_size > 0 && c.num_layers > 0 && c.num_heads > 0 &&
                    c.hidden_size % c.num_heads == 0 && c.intermediate_size > 0 && c.max_position_embeddings > 1 &&
                    c.type_vocab_size > 0 && c.hidden_size <= 65536 && c.intermediate_size <= 262144 &&
                    c.num_layers <= 256 && c.vocab_size <= 10'000'000;
  if (!sane) spruce::data_error(path + ": sizes out of range (hidden_size must divide into num_attention_heads)");
  return c;
}

BertSelfAttentionImpl::BertSelfAttentionImpl(const BertConfig& c)
    : heads_(c.num_heads), head_size_(c.hidden_size / c.num_heads), dropout_(c.dropout) {
  for (const char* name : {"query", "key", "value"}) add_linear(name, c.hidden_size, c.hidden_size, false, false);
  register_module("dropout", dropout_);
}

::torch::Tensor BertSelfAttentionImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& mask_bias,
                                               int64_t batch) {
  const int64_t tokens = x.size(0) / batch;
  auto heads = [&](const ::torch::Tensor& t) {  // [B*T][H] -> [B][heads][T][head_size]
    return t.view({batch, tokens, heads_, head_size_}).transpose(1, 2);
  };
  const auto q = heads(run_layer(0, x)), k = heads(run_layer(1, x)), v = heads(run_layer(2, x));
  auto scores = ::torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(head_size_));
  const auto probs = dropout_(::torch::softmax(scores + mask_bias, -1));
  return ::torch::matmul(probs, v).transpose(1, 2).reshape({batch * tokens, heads_ * head_size_});
}

BertDenseImpl::BertDenseImpl(const BertConfig& c, int64_t in, int64_t out, spruce::Activation activation,
                             bool residual_norm)
    : dropout_(c.dropout) {
  add_linear("dense", in, out, activation, false);
  if (residual_norm)
    norm_ = register_module("LayerNorm",
                            ::torch::nn::LayerNorm(::torch::nn::LayerNormOptions({out}).eps(c.layer_norm_eps)));
  register_module("dropout", dropout_);
}

::torch::Tensor BertDenseImpl::forward(const ::torch::Tensor& x, const ::torch::Tensor& residual) {
  auto y = run_layer(0, x);
  return norm_ ? norm_(dropout_(y) + residual) : y;
}

BertAttentionImpl::BertAttentionImpl(const BertConfig& c)
    : self_attention(register_module("self", BertSelfAttention(c))),
      output(register_module("output", BertDense(c, c.hidden_size, c.hidden_size, spruce::Activation::None, true))) {}

BertLayerImpl::BertLayerImpl(const BertConfig& c)
    : attention(register_module("attention", BertAttention(c))),
      intermediate(register_module("intermediate",
                                   BertDense(c, c.hidden_size, c.intermediate_size, spruce::Activation::GELU, false))),
      output(register_module("output",
                             BertDense(c, c.intermediate_size, c.hidden_size, spruce::Activation::None, true))) {}

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
  return dropout(norm(x));
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
  auto x = embeddings(ids).reshape({batch * tokens, config_.hidden_size});
  for (const auto& layer : *layers) {
    x = layer->as<BertLayer>()->forward(x, mask_bias, batch);
    out.hidden_states.push_back(x.view({batch, tokens, config_.hidden_size}));
  }
  out.last_hidden = out.hidden_states.back();
  return out;
}

void load_weights(::torch::nn::Module& model, const std::string& path) {
  const spruce::SafetensorsFile file = spruce::read_safetensors(path);
  ::torch::NoGradGuard no_grad;
  for (auto& item : model.named_parameters()) {
    const spruce::Tensor* t = file.find(item.key());
    if (!t) spruce::data_error(path + " has no tensor " + item.key() + "; is it this model's checkpoint?");
    auto& p = item.value();
    if (t->dtype != spruce::DType::F32 || t->shape != p.sizes().vec())
      spruce::data_error(path + ": tensor " + item.key() + " is " + spruce::to_string(t->dtype) +
                         " of another shape than the model's F32 " + c10::str(p.sizes()));
    std::memcpy(p.data_ptr<float>(), t->bytes.data(), t->bytes.size());
  }
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
  const auto m = mask.to(last_hidden.dtype()).unsqueeze(-1);
  const auto mean = (last_hidden * m).sum(1) / m.sum(1).clamp_min(1e-9);
  return F::normalize(mean, F::NormalizeFuncOptions().p(2).dim(1));
}

}  // namespace minilm
