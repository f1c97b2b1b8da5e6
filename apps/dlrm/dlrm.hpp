// DLRM with MLPerf's Criteo Terabyte shapes, and a synthetic Criteo-shaped click data set.
//
//   13 dense features  -> bottom MLP 13-512-256-128 (ReLU) ------------------------------+
//   26 categorical ids -> 26 embedding tables, dim 128 -> dot interaction of the 27 vectors |
//                          (351 pairwise dot products) ++ bottom output = 479 -------------+
//   -> top MLP 479-1024-1024-512-256-1 (ReLU but the last) -> click logit
//
// Embedding tables are capped at `table_cap` rows (Criteo's cardinalities are up to 40M; ids are
// taken modulo the cap), so the model fits this machine.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>

#include <array>
#include <cstdint>
#include <vector>

#include "spruce/torch/layer_stack.hpp"

namespace spruce::dlrm {

inline constexpr int64_t kDenseFeatures = 13;
inline constexpr int64_t kSparseFeatures = 26;
inline constexpr int64_t kEmbeddingDim = 128;
inline constexpr int64_t kDefaultTableCap = 10000;

// Rows of each table: Criteo's per-feature cardinalities, capped.
std::vector<int64_t> dlrm_table_sizes(int64_t table_cap = kDefaultTableCap);

class DlrmImpl : public ::torch::nn::Module {
 public:
  explicit DlrmImpl(int64_t table_cap = kDefaultTableCap);
  // dense: float [B][13] (log-transformed counts); sparse: int64 [B][26]. Returns logits [B].
  // Once convert() made the top MLP's first layer INT8, the embeddings, the interaction and the
  // quantization of the top MLP's input run as one fused op (spruce/interaction.hpp) that writes
  // its u8 input directly; otherwise (FP32, or fuse_int8_interaction off) they run in LibTorch.
  ::torch::Tensor forward(const ::torch::Tensor& dense, const ::torch::Tensor& sparse);

  bool fuse_int8_interaction = true;  // false: the LibTorch path even when converted (for tests)

  // Builds row-wise INT8 copies of the embedding tables (s8 rows, one f32 scale per row:
  // spruce::quantize_embedding_rows), about a quarter of the FP32 tables' bytes, which the fused
  // INT8 path then gathers instead of the FP32 rows. Derived state: NOT parameters or buffers, so
  // saved models and checkpoints hold the FP32 tables only, and a loaded (or further trained)
  // model must call quantize_tables() again. The LibTorch path (FP32, or fuse_int8_interaction
  // off) never reads them; on an unconverted model this just prepares them for after convert().
  void quantize_tables();
  void drop_int8_tables() { int8_tables_.clear(); }
  bool has_int8_tables() const { return !int8_tables_.empty(); }
  bool use_int8_tables = true;  // false: the fused path reads the FP32 tables even if copies exist

  torch::LayerStack bottom{nullptr}, top{nullptr};
  std::vector<::torch::nn::Embedding> tables;
  int64_t table_cap() const { return cap_; }

 private:
  int64_t cap_;
  struct Int8Table {
    std::vector<int8_t> storage;  // rows plus up to 63 bytes, so that rows start on a cache line
    int8_t* rows = nullptr;       // [size][128] inside storage: each row exactly two cache lines
    std::vector<float> scales;    // [size]
  };
  std::vector<Int8Table> int8_tables_;
  ::torch::Tensor pair_i_, pair_j_;  // the 351 lower-triangle index pairs of the interaction
};
class Dlrm : public ::torch::nn::ModuleHolder<DlrmImpl> {
 public:
  using ::torch::nn::ModuleHolder<DlrmImpl>::ModuleHolder;
};

// Synthetic clicks, labelled by a fixed random "teacher" network so that they are learnable:
// dense counts are log-normal, ids are Zipf-like per table, and the label is a Bernoulli draw of
// the teacher's click probability (about 25% positives, like Criteo). SYNTHETIC: not Criteo.
struct ClickData {
  ::torch::Tensor dense;   // float [N][13], log(1 + count)
  ::torch::Tensor sparse;  // int64 [N][26]
  ::torch::Tensor labels;  // float [N], 0 or 1
  int64_t size() const { return labels.size(0); }
  ClickData slice(int64_t begin, int64_t n) const;
  ClickData gather(const ::torch::Tensor& indices) const;  // int64 row indices
};
// The teacher depends only on `teacher_seed`; the samples on `sample_seed`. Both seeds are the
// caller's (the benchmark and the tests use teacher 2026).
ClickData make_synthetic_clicks(int64_t n, uint64_t sample_seed, uint64_t teacher_seed, int64_t table_cap);

// Area under the ROC curve of `scores` against 0/1 `labels` (ties share their rank).
double roc_auc(const ::torch::Tensor& scores, const ::torch::Tensor& labels);  // NaN when all labels agree

}  // namespace spruce::dlrm
