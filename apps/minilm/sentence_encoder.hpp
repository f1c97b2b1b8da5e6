// A sentence-transformers model in C++: tokenizer, BERT encoder, mean pooling, L2 normalization,
// loaded from a folder as sentence-transformers saves one (config.json, model.safetensors,
// vocab.txt). The default is all-MiniLM-L6-v2 as scripts/install-deps.sh fetches it.
//
//   auto encoder = minilm::SentenceEncoder::load(minilm::default_model_dir());
//   torch::Tensor e = encoder.encode({"A cat sat.", "A dog ran."});  // [2][384], unit rows
#pragma once
#include <torch/types.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "minilm/bert.hpp"
#include "minilm/options.hpp"
#include "spruce/text/wordpiece.hpp"
#include "spruce/torch/convert.hpp"

namespace minilm {

struct Inputs {
  ::torch::Tensor ids, mask;  // [B][T] int64
  int64_t truncated = 0;      // texts cut at the maximum length
};

class SentenceEncoder {
 public:
  static constexpr int64_t kMaxLength = minilm::kMaxLength;
  // Throws spruce::Error naming the missing or malformed file and the fix.
  static SentenceEncoder load(const std::string& model_dir, int64_t max_length = kMaxLength);
  // The folder's own truncation length (sentence_bert_config.json's max_seq_length), or 0.
  static int64_t folder_max_length(const std::string& model_dir);

  Inputs tokenize(const std::vector<std::string>& texts) const;
  // Unit-length embeddings [N][H], computed in batches of similar lengths (sorted, as
  // sentence-transformers does, so little is padding), returned in the input's order.
  // `progress`, where given, is called after each batch with how far the work is.
  struct Progress {
    int64_t texts_done = 0, texts = 0, tokens_done = 0, tokens = 0;
  };
  ::torch::Tensor encode(const std::vector<std::string>& texts, int64_t batch_size = 32,
                         const std::function<void(const Progress&)>& progress = {});
  // One padded batch, with gradients if enabled: the pooled, normalized embeddings. Without
  // gradients the batch runs in passes of whole sequences, at most tokens_per_pass() tokens each.
  ::torch::Tensor embed(const Inputs& inputs);
  // Passes of at most this many tokens (at least one sequence each; 0: the whole batch at once;
  // default: default_tokens_per_pass(), sized to the L2 cache). Between layers a pass's
  // activations stay in cache: at 32 x 128 tokens one f32 [tokens][1152] Q/K/V output is 19 MB
  // and streams through memory, and INT8 sparse ran 505 seq/s in one pass against 680 at batch 8
  // (Zen 4, 2 threads).
  void set_tokens_per_pass(int64_t tokens);
  int64_t tokens_per_pass() const { return tokens_per_pass_; }
  // How many passes run side by side, one thread each (no gradients, batches of two or more
  // sequences, tokens_per_pass() > 0): up to LibTorch's thread count, the passes made smaller
  // where the batch would give a thread none. Each thread then keeps its own pass in its caches,
  // with no barrier between operators: INT8 sparse at 32 x 128 ran 11% faster than with each
  // operator split over 2 threads (Intel Xeon, docs/performance/xeon.md). false: one pass at a time
  // on all threads.
  void set_parallel_passes(bool on) { parallel_passes_ = on; }
  bool parallel_passes() const { return parallel_passes_; }
  // A batch of `rows` sequences of `length` tokens in passes: `sequences` each (as many as
  // tokens_per_pass holds, at least one; 0: the whole batch), `workers` of them side by side.
  struct PassPlan {
    int64_t sequences = 1;
    int workers = 1;
  };
  static PassPlan plan_passes(int64_t tokens_per_pass, int64_t length, int64_t rows, int threads, bool parallel);

  // Swaps every encoder Linear for spruce's operator (spruce::torch::convert): FP32 or INT8,
  // sparse or dense. INT8 calibrates each layer's input on `calibration_texts`. Attention,
  // LayerNorm, GELU and the embeddings stay in LibTorch.
  std::vector<spruce::torch::ConvertedLayer> convert(const spruce::torch::ConvertOptions& options,
                                                     const std::vector<std::string>& calibration_texts);

  // The encoder as a runtime serves it: `variant` "fp32-dense" (LibTorch's Linear, nothing
  // converted), "int8-dense", "fp32-sparse" or "int8-sparse" (convert() with `threads`, the sparse
  // ones with `fallback`), each operator tuned for this encoder's passes of `batch_sizes` sequences
  // of `length` tokens; INT8 calibrates on `calibration_texts` and runs its attention products at
  // `int8_attention`. Returns the converted layers (none for fp32-dense) and the attention kernel.
  struct Served {
    std::vector<spruce::torch::ConvertedLayer> layers;
    std::string attention;
    std::string kernels() const;  // "s8-spmm-4x1-avx512vnni x36": each kernel, counted; or "libtorch"
  };
  Served serve(const std::string& variant, const std::vector<std::string>& calibration_texts,
               const std::vector<int64_t>& batch_sizes, int64_t length, int threads, spruce::Fallback fallback,
               spruce::AttentionPrecision int8_attention);

  BertModel& model() { return model_; }
  const spruce::text::WordPieceTokenizer& tokenizer() const { return tokenizer_; }
  int64_t max_length() const { return max_length_; }
  const std::string& directory() const { return directory_; }
  int64_t truncated() const { return truncated_; }  // texts truncated by encode() so far

 private:
  SentenceEncoder(spruce::text::WordPieceTokenizer tokenizer, BertModel model, int64_t max_length, std::string dir);
  spruce::text::WordPieceTokenizer tokenizer_;
  BertModel model_;
  int64_t max_length_;
  std::string directory_;
  int64_t truncated_ = 0;
  int64_t tokens_per_pass_ = default_tokens_per_pass();
  bool parallel_passes_ = true;
};

}  // namespace minilm
