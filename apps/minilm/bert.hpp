// A BERT encoder in LibTorch whose parameters carry Hugging Face's names
// ("encoder.layer.0.attention.self.query.weight", ...), so weights load from and save to a
// `model.safetensors` as transformers writes it. Every Linear sits in a LayerHost, so the Pruner
// finds it under its Hugging Face name and convert() can swap it for a sparse layer.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>

#include <array>
#include <string>
#include <vector>

#include "spruce/attention.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/layer_stack.hpp"

namespace minilm {

// Where a forward pass spends its time. While a StageClock lives, the encoder on its thread adds
// each stage's wall time to it (LibTorch's CPU ops are synchronous, so wall time is the op's).
enum class Stage { Embeddings, QkvProjection, Attention, AttentionOutput, FfnIn, FfnOut, ResidualNorm, Pooling };
inline constexpr int kStageCount = 8;
const char* stage_name(Stage stage);  // "QKV projection", ...
bool is_linear(Stage stage);          // the stages that run the encoder's Linear layers

class StageClock {
 public:
  StageClock();  // starts recording on this thread; clocks do not nest
  ~StageClock();
  StageClock(const StageClock&) = delete;
  StageClock& operator=(const StageClock&) = delete;
  double ms(Stage stage) const { return ms_[static_cast<int>(stage)]; }
  void add(Stage stage, double ms) { ms_[static_cast<int>(stage)] += ms; }

 private:
  std::array<double, kStageCount> ms_{};
};

// Times one stage into the thread's StageClock, if there is one.
class StageTimer {
 public:
  explicit StageTimer(Stage stage);
  ~StageTimer();
  StageTimer(const StageTimer&) = delete;
  StageTimer& operator=(const StageTimer&) = delete;

 private:
  Stage stage_;
  int64_t start_ns_ = -1;  // -1: no clock
};

struct BertConfig {
  int64_t vocab_size = 30522, hidden_size = 384, num_layers = 6, num_heads = 12, intermediate_size = 1536;
  int64_t max_position_embeddings = 512, type_vocab_size = 2;
  double layer_norm_eps = 1e-12, dropout = 0.1;
  // Reads transformers' config.json; throws spruce::Error (data) for a model this encoder cannot
  // run (not BERT, an activation other than GELU, sizes that do not divide into heads).
  static BertConfig read(const std::string& path);
  // The embeddings' and the layers' weight matrices: a lower bound on the parameters (no biases
  // or LayerNorms), which a weights file for this configuration must hold at least.
  double matrix_parameters() const;
};

// Q, K and V projections and scaled dot-product attention over [B*T][H] rows.
class BertSelfAttentionImpl : public spruce::torch::LayerHost {
 public:
  explicit BertSelfAttentionImpl(const BertConfig& config);
  // `mask_bias` [B][1][1][T]: 0 for tokens, a large negative number for padding.
  // In training, or with gradients on, or recording, LibTorch's ops (differentiable); otherwise
  // spruce's fused kernel (spruce/attention.hpp).
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& mask_bias, int64_t batch);
  // While on, each forward keeps its attention's log-probabilities and value relations (below).
  void set_recording(bool on) { recording_ = on; }
  // The fused kernel's products (spruce::AttentionPrecision).
  void set_precision(spruce::AttentionPrecision p) { precision_ = p; }
  ::torch::Tensor attention_log_probs, value_relation_log_probs;  // [B][heads][T][T], the last forward's

 private:
  ::torch::Tensor fused_attention(const ::torch::Tensor& q, const ::torch::Tensor& k, const ::torch::Tensor& v,
                                  const ::torch::Tensor& mask_bias, int64_t batch) const;
  int64_t heads_, head_size_;
  bool recording_ = false;
  spruce::AttentionPrecision precision_ = spruce::AttentionPrecision::F32;
  ::torch::nn::Dropout dropout_;
};
TORCH_MODULE(BertSelfAttention);

// "dense" and its activation (+ dropout, the residual and "LayerNorm" when `residual_norm`); used
// three times per layer: attention output, FFN in (GELU, erf form, as BERT), FFN out.
class BertDenseImpl : public spruce::torch::LayerHost {
 public:
  BertDenseImpl(const BertConfig& config, int64_t in, int64_t out, spruce::Activation activation, bool residual_norm,
                Stage stage);
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& residual = {});

 private:
  ::torch::nn::LayerNorm norm_{nullptr};
  ::torch::nn::Dropout dropout_;
  Stage stage_;  // the Linear's, for a StageClock
};
TORCH_MODULE(BertDense);

class BertAttentionImpl : public ::torch::nn::Module {
 public:
  explicit BertAttentionImpl(const BertConfig& config);
  BertSelfAttention self_attention;  // registered as "self"
  BertDense output;
};
TORCH_MODULE(BertAttention);

class BertLayerImpl : public ::torch::nn::Module {
 public:
  explicit BertLayerImpl(const BertConfig& config);
  ::torch::Tensor forward(const ::torch::Tensor& x, const ::torch::Tensor& mask_bias, int64_t batch);
  BertAttention attention;
  BertDense intermediate, output;
};
TORCH_MODULE(BertLayer);

class BertEmbeddingsImpl : public ::torch::nn::Module {
 public:
  explicit BertEmbeddingsImpl(const BertConfig& config);
  ::torch::Tensor forward(const ::torch::Tensor& ids);  // [B][T] int64 -> [B][T][H]
  ::torch::nn::Embedding word_embeddings, position_embeddings, token_type_embeddings;
  ::torch::nn::LayerNorm norm;
  ::torch::nn::Dropout dropout;
};
TORCH_MODULE(BertEmbeddings);

struct EncoderOutput {
  ::torch::Tensor last_hidden;                 // [B][T][H]
  std::vector<::torch::Tensor> hidden_states;  // after each layer, [B][T][H]
  // With set_record_attention(true), per layer [B][heads][T][T]: log softmax(Q K^T / sqrt(d) + mask),
  // the attention distributions, and log softmax(V V^T / sqrt(d) + mask), the value relations (MiniLM).
  std::vector<::torch::Tensor> attention_log_probs, value_relation_log_probs;
};

class BertModelImpl : public ::torch::nn::Module {
 public:
  explicit BertModelImpl(const BertConfig& config);
  // `ids` and `mask` [B][T] int64 (mask 1 = token, 0 = padding).
  EncoderOutput forward(const ::torch::Tensor& ids, const ::torch::Tensor& mask);
  // Whether forward() also returns each layer's attention distributions and value relations.
  void set_record_attention(bool on);
  // Inference only: attention's QK and PV products in BF16 or INT8 where the CPU can
  // (spruce::AttentionPrecision); for INT8 models. Returns the kernel that runs.
  std::string set_attention_precision(spruce::AttentionPrecision p);
  const BertConfig& config() const { return config_; }
  BertEmbeddings embeddings;
  ::torch::nn::ModuleList layers;  // registered as "encoder.layer"

 private:
  BertConfig config_;
  bool record_attention_ = false;
};
TORCH_MODULE(BertModel);

// Copies every parameter of `model` from the safetensors file by its name. Throws spruce::Error
// (data) naming the first tensor that is missing, not F32, or of another shape. Tensors the model
// does not use (the pooler, position_ids) are ignored.
void load_weights(::torch::nn::Module& model, const std::string& safetensors_path);
// The same from a file already read; `path` names it in errors.
void load_weights(::torch::nn::Module& model, const spruce::SafetensorsFile& file, const std::string& path);
// Writes every parameter under its name (F32), atomically, so transformers can load the result.
void save_weights(const ::torch::nn::Module& model, const std::string& safetensors_path);

// Sentence embeddings: the mean of the token vectors under the mask, L2-normalized ([B][H]).
::torch::Tensor mean_pool_normalized(const ::torch::Tensor& last_hidden, const ::torch::Tensor& mask);

}  // namespace minilm
