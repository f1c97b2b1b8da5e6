// The options of `spruce distill`, `spruce embed` and `spruce bench-model minilm`, without LibTorch:
// the command line parses them in both programs (tools/spruce), and only spruce-torch runs them.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "spruce/attention.hpp"
#include "spruce/recipe.hpp"
#include "spruce/spmm.hpp"

namespace minilm {

// third_party/all-MiniLM-L6-v2 under the source tree, or $SPRUCE_MINILM_DIR when set.
std::string default_model_dir();
// A model folder's name for reports: "all-MiniLM-L6-v2" for the bundled one, else the folder's own name.
std::string model_label(const std::string& dir);
// " (from SPRUCE_MINILM_DIR)" when `dir` is the folder that variable names, else "": for messages.
std::string model_dir_origin(const std::string& dir);

inline constexpr int64_t kMaxLength = 128;  // tokens, [CLS] and [SEP] included

// Throws spruce::Error (usage, exit 2) unless `dir` holds a sentence-transformers model's
// config.json, model.safetensors and vocab.txt.
void require_model_folder(const std::string& dir);

// `spruce embed`'s formats.
enum class TextFormat { Lines, Jsonl };
// "text" or "jsonl"; "auto" picks jsonl for a *.jsonl path and text otherwise.
TextFormat parse_text_format(const std::string& name, const std::string& path);
enum class EmbeddingFormat { Jsonl, Npy };
EmbeddingFormat parse_embedding_format(const std::string& name);  // "jsonl" or "npy"

// SentenceEncoder's passes (set_tokens_per_pass) hold as many tokens as fit a core's L2 cache at
// kPassBytesPerToken each (a token's live activations in a layer: its f32 input, its Q/K/V
// outputs and its quantized copies, about 7.5 KB), in whole sequences of kMaxLength: 256 tokens
// for 2 MiB, 128 for 1 MiB or less, at most 1024. With passes side by side each core keeps its
// own: on an Intel Xeon (2 MiB L2) INT8 sparse ran 416-488 seq/s in passes of 256 tokens against
// 324-440 in passes of 1024 (docs/performance/xeon.md).
inline constexpr int64_t kPassBytesPerToken = 8 << 10;
int64_t tokens_per_pass_for_l2(int64_t l2_bytes);
int64_t default_tokens_per_pass();  // for this CPU's L2 (spruce::l2_cache_bytes)

// The defaults are the best 2:4 recipe measured (docs/results-minilm.md).
struct DistillOptions {
  std::optional<spruce::Recipe> recipe;  // none: distil without pruning (a dense baseline)
  int64_t steps = 1000, batch = 32;
  double learning_rate = 1e-3;
  // Linear decay of the learning rate to zero over the steps after the last mask update (the whole
  // run for a pattern applied at step 0, such as 2:4); false keeps it constant.
  bool decay_lr = true;
  double hidden_weight = 30.0;  // weight of the hidden-state loss beside the embedding loss
  // Weight of self-attention transfer: the KL between every layer's attention distributions, plus
  // that between its value relations (MiniLM), teacher to student.
  double attention_weight = 1.0;
  double similarity_weight = 0.0;  // weight of the in-batch pairwise-similarity loss (retrieval structure)
  // Weight of the loss on each text's similarities to the teacher's embeddings of all training
  // texts (neighbour_distillation), and its softmax temperature.
  double neighbour_weight = 0.0, neighbour_temperature = 0.05;
  // Weight of the embedding error weighted by the teacher's spread over the training texts
  // (spread_distillation): errors along directions in which texts differ reorder neighbours.
  double spread_weight = 0.0;
  // Train the token, position and type embeddings too (they are not pruned; frozen by default).
  bool train_embeddings = false;
  // The share of training texts replaced, each time they are drawn, by a random run of their words
  // (crop_words), so that later passes over the texts do not repeat the same inputs.
  double crop = 0.0;
  // The student's dropout probability while it trains (0: off; BERT trains at 0.1).
  double dropout = 0.0;
  // > 0: an exponential moving average of the trained weights, each step w_avg = ema w_avg + (1 -
  // ema) w, from the step after the last mask update (so pruned weights stay exactly zero); the
  // held-out checks and the returned student use the average (Polyak averaging). 0: off.
  double ema = 0.0;
  // For an N:M recipe: before training, reorder the input channels of the attention and FFN
  // outputs so that the N:M masks keep more of their scores (channel_order.hpp); the model computes
  // the same function.
  bool permute_channels = false;
  // The share of the batches drawn from Corpus::extra, when it has texts; the rest from train.
  double extra_share = 0.5;
  // Checkpoints: every checkpoint_every steps (0: at each held-out check) the run is saved to
  // checkpoint_dir/checkpoint.pt (none when empty), and `resume` continues from there. stop_after
  // > 0 ends this sitting once that many of the steps are done, with a checkpoint to resume from.
  std::string checkpoint_dir;
  int64_t checkpoint_every = 0, stop_after = 0;
  bool resume = false;
  uint64_t seed = 0;
  int64_t evaluations = 4;  // held-out fidelity is printed this many times during training
  bool progress_bar = true;
};

// Throws spruce::Error (usage) when options.steps x options.batch texts are more than a run can
// draw up front (100 million, 8 bytes each).
void check_draw_size(const DistillOptions& options);

// DIR/checkpoint.pt, where `spruce distill --checkpoint DIR` keeps its run.
std::string checkpoint_path(const std::string& dir);

struct MinilmBenchOptions {
  std::string dense_dir, sparse_dir;  // sentence-transformers folders: the teacher, a pruned copy
  std::string fortunes = "/usr/share/games/fortunes";
  std::vector<int64_t> batches{1, 8, 32};
  // Which of fp32-dense, int8-dense, fp32-sparse, int8-sparse to run, in this order.
  std::vector<std::string> variants{"fp32-dense", "int8-dense", "fp32-sparse", "int8-sparse"};
  int64_t seq_length = 128;
  int threads = 2;
  double min_seconds = 3.0;  // per variant and batch size, after warm-up
  int64_t calibration_texts = 256;
  int64_t tokens_per_pass = default_tokens_per_pass();  // SentenceEncoder::set_tokens_per_pass
  bool parallel_passes = true;                          // SentenceEncoder::set_parallel_passes
  spruce::Fallback fallback = spruce::Fallback::Auto;   // the sparse variants' (INT8 dense: Always)
  // The INT8 variants' attention products (bert.hpp); the FP32 variants' are always FP32.
  spruce::AttentionPrecision int8_attention = spruce::AttentionPrecision::F32;
};

}  // namespace minilm
