#include "dlrm/dlrm.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <span>

#include "spruce/error.hpp"
#include "spruce/interaction.hpp"
#include "spruce/torch/convert.hpp"

namespace spruce::dlrm {
using namespace spruce::torch;

namespace {
// The u8 input quantization of the top MLP's first layer, once convert() made it INT8.
std::optional<U8Quant> int8_top_input(const LayerStackImpl& top) {
  const auto* layer = dynamic_cast<const SparseLinearLayer*>(top.layer(0).get());
  return layer != nullptr ? layer->input_quant() : std::nullopt;
}

// The top MLP's u8 input [B][479] from the bottom MLP's output x [B][128] and the ids, in one pass;
// from the INT8 copies of the tables where int8 is not empty.
::torch::Tensor fused_interaction_u8(const ::torch::Tensor& x, const ::torch::Tensor& sparse,
                                     const std::vector<::torch::nn::Embedding>& tables,
                                     std::span<const Int8EmbeddingTable> int8, const U8Quant& quant) {
  const auto dense = x.to(::torch::kFloat).contiguous();
  const auto ids = sparse.to(::torch::kLong).contiguous();
  std::vector<EmbeddingTable> rows;
  if (int8.empty())
    for (const auto& t : tables) {
      const auto& w = t->weight;
      if (w.scalar_type() != ::torch::kFloat || !w.is_contiguous() || w.size(1) != kEmbeddingDim)
        data_error("DLRM's fused interaction needs contiguous float [rows][128] embedding tables");
      rows.push_back({w.data_ptr<float>(), w.size(0)});
    }
  const int64_t batch = dense.size(0), width = interaction_width(kEmbeddingDim, kSparseFeatures);
  auto out = ::torch::empty({batch, width}, ::torch::kByte);
  DotInteractionArgs a;
  a.batch = batch, a.dim = kEmbeddingDim, a.dense = dense.data_ptr<float>(), a.ld_dense = kEmbeddingDim;
  a.tables = rows, a.int8_tables = int8, a.ids = ids.data_ptr<int64_t>(), a.ld_ids = kSparseFeatures, a.quant = quant;
  a.out = out.data_ptr<uint8_t>(), a.ld_out = width, a.threads = at::get_num_threads();
  dot_interaction_u8(a);
  return out;
}

// Criteo (Kaggle Display Advertising) per-feature cardinalities.
constexpr std::array<int64_t, kSparseFeatures> kCriteoCardinality = {
    1460, 583,   10131227, 2202608, 305,  24,   12517, 633,     3,  93145, 5683,   8351593, 3194,
    27,   14992, 5461306,  10,      5652, 2173, 4,     7046547, 18, 15,    286181, 105,     142572};
}  // namespace

std::vector<int64_t> dlrm_table_sizes(int64_t cap) {
  if (cap < 1) usage_error("the embedding table cap must be at least 1 row");
  std::vector<int64_t> sizes;
  for (int64_t c : kCriteoCardinality) sizes.push_back(std::min(c, cap));
  return sizes;
}

DlrmImpl::DlrmImpl(int64_t cap) : cap_(cap) {
  bottom = register_module("bottom", LayerStack(std::vector<int64_t>{kDenseFeatures, 512, 256, kEmbeddingDim}, true));
  const int64_t vectors = kSparseFeatures + 1, pairs = vectors * (vectors - 1) / 2;
  top = register_module("top", LayerStack(std::vector<int64_t>{kEmbeddingDim + pairs, 1024, 1024, 512, 256, 1}, false));
  const auto sizes = dlrm_table_sizes(cap);
  for (int64_t f = 0; f < kSparseFeatures; ++f) {
    auto e = ::torch::nn::Embedding(sizes[size_t(f)], kEmbeddingDim);
    ::torch::nn::init::uniform_(e->weight, -0.05, 0.05);
    tables.push_back(register_module("emb" + std::to_string(f), e));
  }
  auto tri = ::torch::tril_indices(vectors, vectors, -1);
  pair_i_ = tri[0].contiguous();
  pair_j_ = tri[1].contiguous();
}

::torch::Tensor DlrmImpl::forward(const ::torch::Tensor& dense, const ::torch::Tensor& sparse) {
  if (dense.dim() != 2 || dense.size(1) != kDenseFeatures || sparse.dim() != 2 || sparse.size(1) != kSparseFeatures ||
      dense.size(0) != sparse.size(0))
    data_error("DLRM takes dense [B][13] and sparse [B][26] inputs of the same batch");
  const auto x = bottom->forward(dense);
  if (const auto quant = fuse_int8_interaction ? int8_top_input(*top) : std::nullopt) {
    std::vector<Int8EmbeddingTable> int8;
    if (use_int8_tables)
      for (const auto& t : int8_tables_) int8.push_back({t.rows, t.scales.data(), int64_t(t.scales.size())});
    return top->forward(fused_interaction_u8(x, sparse, tables, int8, *quant)).squeeze(1);
  }
  std::vector<::torch::Tensor> vecs;
  vecs.push_back(x);
  for (int64_t f = 0; f < kSparseFeatures; ++f) vecs.push_back(tables[size_t(f)]->forward(sparse.select(1, f)));
  const auto t = ::torch::stack(vecs, 1);                                      // [B][27][128]
  const auto z = ::torch::bmm(t, t.transpose(1, 2));                           // [B][27][27]
  const auto pairs = z.index({::torch::indexing::Slice(), pair_i_, pair_j_});  // [B][351]
  return top->forward(::torch::cat(std::vector<::torch::Tensor>{x, pairs}, 1)).squeeze(1);
}

void DlrmImpl::quantize_tables() {
  ::torch::NoGradGuard no_grad;
  std::vector<Int8Table> built;
  for (const auto& t : tables) {
    const auto w = t->weight.detach().to(::torch::kFloat).contiguous();
    if (w.dim() != 2 || w.size(1) != kEmbeddingDim) data_error("DLRM's embedding tables must be [rows][128]");
    Int8Table q;
    q.storage.resize(size_t(w.numel()) + 63);
    const auto addr = reinterpret_cast<uintptr_t>(q.storage.data());
    q.rows = q.storage.data() + ((64 - addr % 64) % 64);
    q.scales.resize(size_t(w.size(0)));
    quantize_embedding_rows(w.data_ptr<float>(), w.size(0), kEmbeddingDim, q.rows, q.scales.data());
    built.push_back(std::move(q));
  }
  int8_tables_ = std::move(built);
}

ClickData ClickData::slice(int64_t begin, int64_t n) const {
  return {dense.narrow(0, begin, n), sparse.narrow(0, begin, n), labels.narrow(0, begin, n)};
}

ClickData ClickData::gather(const ::torch::Tensor& rows) const {
  return {dense.index_select(0, rows), sparse.index_select(0, rows), labels.index_select(0, rows)};
}

ClickData make_synthetic_clicks(int64_t n, uint64_t sample_seed, uint64_t teacher_seed, int64_t cap) {
  if (n < 1) usage_error("the synthetic data set needs at least one sample");
  ::torch::NoGradGuard no_grad;
  const auto sizes = dlrm_table_sizes(cap);
  // The teacher's click logit: a linear effect of the dense features, a random effect per id,
  // and dot-product interactions between the first four categorical features (what DLRM's
  // interaction layer is built to find).
  auto teacher_gen = at::detail::createCPUGenerator(teacher_seed);
  const auto dense_weight = at::randn({kDenseFeatures}, teacher_gen) * 0.6;
  std::vector<::torch::Tensor> id_effect, id_vector;
  for (int64_t s : sizes) {
    id_effect.push_back(at::randn({s}, teacher_gen) * 0.5);
    id_vector.push_back(at::randn({s, 8}, teacher_gen) * 0.5);
  }

  auto gen = at::detail::createCPUGenerator(sample_seed);
  ClickData d;
  d.dense = ::torch::log1p(::torch::floor(::torch::exp(at::randn({n, kDenseFeatures}, gen) * 1.5 + 1.0)));
  auto logit = ((d.dense - 1.5) / 1.5).matmul(dense_weight);
  std::vector<::torch::Tensor> ids, vectors;
  for (int64_t f = 0; f < kSparseFeatures; ++f) {
    // Zipf-like: small ids are far more frequent, as in click logs.
    const auto u = at::rand({n}, gen);
    const auto id =
        ::torch::floor(u.pow(3.0) * double(sizes[size_t(f)])).to(::torch::kLong).clamp_max(sizes[size_t(f)] - 1);
    ids.push_back(id);
    logit = logit + id_effect[size_t(f)].index_select(0, id);
    if (f < 4) vectors.push_back(id_vector[size_t(f)].index_select(0, id));
  }
  for (size_t f = 0; f < vectors.size(); ++f)
    for (size_t g = 0; g < f; ++g) logit = logit + (vectors[f] * vectors[g]).sum(1);
  d.sparse = ::torch::stack(ids, 1);
  logit = logit - logit.mean() - 1.9;  // about a quarter positive, like Criteo
  d.labels = at::bernoulli(::torch::sigmoid(logit), gen).to(::torch::kFloat);
  return d;
}

double roc_auc(const ::torch::Tensor& scores, const ::torch::Tensor& labels) {
  const auto s = scores.detach().to(::torch::kDouble).contiguous();
  const auto y = labels.detach().to(::torch::kDouble).contiguous();
  const int64_t n = s.numel();
  std::vector<int64_t> order(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) order[size_t(i)] = i;
  const double* sp = s.data_ptr<double>();
  const double* yp = y.data_ptr<double>();
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return sp[a] < sp[b]; });
  double rank_sum = 0, positives = 0;
  for (int64_t i = 0; i < n;) {  // average ranks over ties
    int64_t j = i;
    while (j < n && sp[order[size_t(j)]] == sp[order[size_t(i)]]) ++j;
    const double rank = 0.5 * double(i + 1 + j);
    for (int64_t k = i; k < j; ++k)
      if (yp[order[size_t(k)]] > 0.5) rank_sum += rank, positives += 1;
    i = j;
  }
  const double negatives = double(n) - positives;
  if (positives == 0 || negatives == 0) return std::nan("");  // undefined: it ranks positives above negatives
  return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives);
}

}  // namespace spruce::dlrm
