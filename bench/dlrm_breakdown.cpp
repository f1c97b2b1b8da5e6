// Where one DLRM batch's time goes, per variant and stage: the fused INT8 path against the
// LibTorch ops it replaced (run on the same converted model). Medians of repeated runs.
// First, whole forwards of all seven configurations in turn (round robin), so that the ratios
// hold up on a machine shared with other jobs (the fused INT8 path with FP32 tables and with
// row-wise INT8 tables, DlrmImpl::quantize_tables()); then each variant's stages; then accuracy
// and AUC of both INT8 variants on bench-model's test set with either kind of table.
// Usage: dlrm_breakdown [WORK_DIR=out/dlrm] [BATCH=2048] [THREADS=2] [EVAL=1]; needs the models
// that `spruce bench-model dlrm` caches in WORK_DIR (its default seed and sizes are assumed).
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "dlrm/dlrm.hpp"
#include "dlrm/dlrm_train.hpp"
#include "spruce/interaction.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/threads.hpp"

using namespace spruce::torch;
using namespace spruce::dlrm;
namespace {

double median_ms(const std::function<void()>& f, int runs = 15) {
  std::vector<double> t;
  f();  // warm
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::nth_element(t.begin(), t.begin() + runs / 2, t.end());
  return t[size_t(runs / 2)];
}

void row(const char* variant, const char* stage, double ms) {
  std::printf("%-12s %-34s %8.2f ms\n", variant, stage, ms);
}

// `pool` holds several batches of fresh clicks; the fused interaction stages take the next batch's
// ids at every run, so that they gather rows as a stream of new clicks would, not the same
// (by then cached) rows again.
void breakdown(const char* name, Dlrm& m, const ClickData& d, const ClickData& pool) {
  ::torch::NoGradGuard g;
  const auto x = m->bottom->forward(d.dense);
  row(name, "whole forward", median_ms([&] { m->forward(d.dense, d.sparse); }));
  row(name, "bottom MLP", median_ms([&] { m->bottom->forward(d.dense); }));
  std::vector<::torch::Tensor> v{x};
  for (int64_t f = 0; f < kSparseFeatures; ++f) v.push_back(m->tables[size_t(f)]->forward(d.sparse.select(1, f)));
  const auto t = ::torch::stack(v, 1);
  const auto z = ::torch::bmm(t, t.transpose(1, 2));
  const auto tri = ::torch::tril_indices(27, 27, -1);
  const auto pairs = z.index({::torch::indexing::Slice(), tri[0], tri[1]});
  const auto cat = ::torch::cat({x, pairs}, 1);
  row(name, "  libtorch: 26 embedding gathers", median_ms([&] {
        for (int64_t f = 0; f < kSparseFeatures; ++f) m->tables[size_t(f)]->forward(d.sparse.select(1, f));
      }));
  row(name, "  libtorch: stack", median_ms([&] { ::torch::stack(v, 1); }));
  row(name, "  libtorch: bmm", median_ms([&] { ::torch::bmm(t, t.transpose(1, 2)); }));
  row(name, "  libtorch: index 351 pairs", median_ms([&] { z.index({::torch::indexing::Slice(), tri[0], tri[1]}); }));
  row(name, "  libtorch: cat", median_ms([&] { ::torch::cat({x, pairs}, 1); }));
  const auto* top0 = dynamic_cast<SparseLinearLayer*>(m->top->layer(0).get());
  if (top0 == nullptr || !top0->input_quant()) {
    row(name, "top MLP (f32 input)", median_ms([&] { m->top->forward(cat); }));
    return;
  }
  std::vector<uint8_t> u(size_t(cat.numel()));
  row(name, "  libtorch path: quantize_u8",
      median_ms([&] { spruce::quantize_u8(cat.data_ptr<float>(), cat.numel(), *top0->input_quant(), u.data()); }));
  m->fuse_int8_interaction = false;
  row(name, "whole forward, unfused", median_ms([&] { m->forward(d.dense, d.sparse); }));
  m->fuse_int8_interaction = true;
  std::vector<spruce::EmbeddingTable> tables;
  for (auto& e : m->tables) tables.push_back({e->weight.data_ptr<float>(), e->weight.size(0)});
  std::vector<std::vector<int8_t>> s8(tables.size());
  std::vector<std::vector<float>> scales(tables.size());
  std::vector<spruce::Int8EmbeddingTable> int8;
  for (size_t f = 0; f < tables.size(); ++f) {
    s8[f].resize(size_t(tables[f].size * 128));
    scales[f].resize(size_t(tables[f].size));
    spruce::quantize_embedding_rows(tables[f].rows, tables[f].size, 128, s8[f].data(), scales[f].data());
    int8.push_back({s8[f].data(), scales[f].data(), tables[f].size});
  }
  const auto xc = x.contiguous();
  auto q = ::torch::empty({x.size(0), 479}, ::torch::kByte);
  spruce::DotInteractionArgs a;
  a.batch = x.size(0), a.dim = 128, a.dense = xc.data_ptr<float>(), a.ld_dense = 128, a.tables = tables;
  a.ids = d.sparse.data_ptr<int64_t>(), a.ld_ids = 26, a.quant = *top0->input_quant();
  a.out = q.data_ptr<uint8_t>(), a.ld_out = 479, a.threads = at::get_num_threads();
  const auto ids = pool.sparse.contiguous();
  const int64_t batches = pool.size() / a.batch;
  int64_t next = 0;
  auto rotate = [&](spruce::DotInteractionArgs& args) {
    args.ids = ids.data_ptr<int64_t>() + (next++ % batches) * a.batch * 26;
    spruce::dot_interaction_u8(args);
  };
  row(name, "fused interaction, same batch", median_ms([&] { spruce::dot_interaction_u8(a); }));
  row(name, "fused interaction (u8 out)", median_ms([&] { rotate(a); }));
  auto a8 = a;
  a8.tables = {}, a8.int8_tables = int8;
  row(name, "fused interaction, INT8 tables", median_ms([&] { rotate(a8); }));
  row(name, "top MLP (u8 input)", median_ms([&] { m->top->forward(q); }));
}

struct Config {
  std::string name;
  Dlrm* model;
  bool fused;
  bool int8_tables = false;
};

// Medians of whole forwards, the configurations taking turns in every round; each round takes the
// next batch of the pool (all configurations the same one), as a stream of fresh clicks would.
void round_robin(const std::vector<Config>& configs, const ClickData& pool, int64_t batch, int rounds = 21) {
  ::torch::NoGradGuard g;
  std::vector<std::vector<double>> t(configs.size());
  for (int r = -1; r < rounds; ++r)  // round -1 warms
    for (size_t c = 0; c < configs.size(); ++c) {
      DlrmImpl& m = **configs[c].model;
      m.fuse_int8_interaction = configs[c].fused;
      m.use_int8_tables = configs[c].int8_tables;
      const ClickData d = pool.slice((r + 1) % (pool.size() / batch) * batch, batch);
      const auto t0 = std::chrono::steady_clock::now();
      m.forward(d.dense, d.sparse);
      if (r >= 0)
        t[c].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      m.fuse_int8_interaction = true;
      m.use_int8_tables = false;
    }
  std::vector<double> med;
  for (auto& v : t) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    med.push_back(v[v.size() / 2]);
  }
  std::printf("whole forward, batch %lld (%lld batches of fresh clicks in turn), medians of %d rounds taken in turn:\n",
              (long long)batch, (long long)(pool.size() / batch), rounds);
  for (size_t c = 0; c < configs.size(); ++c)
    std::printf("  %-30s %8.2f ms %9.0f QPS  %5.2fx fp32  %5.2fx int8-dense unfused  %5.2fx int8-dense fused\n",
                configs[c].name.c_str(), med[c], double(batch) / med[c] * 1e3, med[0] / med[c], med[1] / med[c],
                med[2] / med[c]);
  if (configs.size() >= 7)
    std::printf(
        "  int8-sparse / int8-dense, both fused: FP32 tables %.2fx, INT8 tables %.2fx; "
        "int8-sparse INT8 tables / int8-dense fused FP32 tables %.2fx\n",
        med[2] / med[5], med[3] / med[6], med[2] / med[6]);
}

}  // namespace

int main(int argc, char** argv) {
  const std::string dir = argc > 1 ? argv[1] : "out/dlrm";
  const int64_t batch = argc > 2 ? std::stoll(argv[2]) : 2048;
  const int threads = argc > 3 ? std::stoi(argv[3]) : 2;
  if (!std::filesystem::exists(dir + "/dense-finetuned.pt") || !std::filesystem::exists(dir + "/sparse-finetuned.pt")) {
    std::fprintf(stderr, "no cached models in %s: run `spruce bench-model dlrm` first\n", dir.c_str());
    return 1;
  }
  const bool eval = argc > 4 ? std::stoi(argv[4]) != 0 : true;
  set_threads(threads);
  std::printf("batch %lld, %d threads, interaction kernel %s\n", (long long)batch, threads,
              spruce::dot_interaction_kernel_name());
  // bench-model's calibration: the first 4096 of its 262,144 training clicks (seed 1).
  const ClickData calib = make_synthetic_clicks(1 << 18, 1, 2026, kDefaultTableCap).slice(0, 4096);
  // 16 batches of bench-model's test clicks (seed 2), taken in turn.
  const ClickData pool = make_synthetic_clicks(std::max<int64_t>(batch * 16, 1 << 16), 2, 2026, kDefaultTableCap);
  const ClickData d = pool.slice(0, batch);
  std::vector<Dlrm> models;
  using Int8 = std::optional<Variant>;  // none: LibTorch FP32, unconverted
  for (auto [file, variant] :
       {std::pair{"/dense-finetuned.pt", Int8{}}, std::pair{"/dense-finetuned.pt", Int8{Variant::Int8Dense}},
        std::pair{"/sparse-finetuned.pt", Int8{Variant::Int8Sparse}}}) {
    Dlrm m(kDefaultTableCap);
    load_checkpoint(dir + file, *m, nullptr, nullptr);
    if (variant) {
      ConvertOptions c;
      c.variant = *variant;
      c.threads = threads;
      c.tune_m = {batch};
      convert(*m, c, [&] { m->forward(calib.dense, calib.sparse); });
    }
    m->quantize_tables();  // derived state: a loaded model builds it again
    models.push_back(m);
  }
  round_robin({{"fp32-dense", &models[0], true},
               {"int8-dense unfused", &models[1], false},
               {"int8-dense fused", &models[1], true},
               {"int8-dense fused INT8 tables", &models[1], true, true},
               {"int8-sparse unfused", &models[2], false},
               {"int8-sparse fused", &models[2], true},
               {"int8-sparse fused INT8 tables", &models[2], true, true}},
              pool, batch);
  const char* names[] = {"fp32-dense", "int8-dense", "int8-sparse"};
  for (size_t i = 0; i < models.size(); ++i) breakdown(names[i], models[i], d, pool.slice(0, batch * 16));
  if (eval) {
    // bench-model's test set: 65,536 clicks, seed 2 (its seed + 1).
    const ClickData test = pool.size() == (1 << 16) ? pool : make_synthetic_clicks(1 << 16, 2, 2026, kDefaultTableCap);
    std::printf("accuracy / AUC on the 65,536 synthetic test clicks:\n");
    for (size_t i = 0; i < models.size(); ++i)
      for (bool int8 : {false, true}) {
        if (i == 0 && int8) continue;  // FP32 LibTorch never reads them
        models[i]->use_int8_tables = int8;
        const ClickMetrics r = evaluate_clicks(*models[i], test);
        std::printf("  %-12s %-12s accuracy %.4f%%  AUC %.4f  loss %.5f\n", names[i],
                    int8 ? "INT8 tables" : "FP32 tables", 100 * r.accuracy, r.auc, r.loss);
      }
    for (auto& m : models) m->use_int8_tables = false;
  }
  return 0;
}
