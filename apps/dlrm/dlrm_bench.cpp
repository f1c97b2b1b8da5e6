#include "dlrm/dlrm_bench.hpp"

#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <ostream>

#include "dlrm/dlrm_train.hpp"
#include "spruce/error.hpp"
#include "spruce/loadgen.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/threads.hpp"

namespace spruce::dlrm {
using namespace spruce::torch;

namespace {

struct Data {
  ClickData train, test;
};

Dlrm load_dlrm(const std::string& path, int64_t table_cap) {
  Dlrm model(table_cap);
  load_checkpoint(path, *model, nullptr, nullptr);
  return model;
}

// Trains and saves the model at `path` unless it is cached there already. The model is initialized
// from torch's global generator seeded with `seed`: LibTorch seeds that generator from a
// non-deterministic source at start-up, so without this the initial weights (and with them the
// trained model) differ from process to process.
void ensure_cached(const std::string& path, const DlrmBenchOptions& o, uint64_t seed, std::ostream& log,
                   const std::function<void(Dlrm&)>& train) {
  if (!o.retrain && std::filesystem::exists(path)) {
    log << "using the cached " << path << " (--retrain trains it again)\n";
    return;
  }
  ::torch::manual_seed(seed);
  Dlrm model(o.table_cap);
  train(model);
  save_checkpoint(path, *model, nullptr, nullptr, {});
  log << "saved " << path << "\n";
}

std::string fixed_ms(double ms) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1fms", ms);
  return text;
}

// Offline and Server figures for one variant; the model runs on slices of `pool`.
void measure(const std::string& variant, Dlrm& model, const ClickData& pool, const ClickMetrics& quality,
             double sparsity, const DlrmBenchOptions& o, uint64_t seed, std::ostream& log,
             std::vector<DlrmBenchRecord>& out) {
  ::torch::NoGradGuard no_grad;
  model->eval();
  // Each batch takes the next clicks of the pool, so embedding rows are as cold as in a stream of
  // new queries (the same first clicks each time would keep a small batch's rows in cache).
  int64_t next = 0;
  const BatchRunner run = [&](int64_t b) {
    b = std::min(b, pool.size());
    if (next + b > pool.size()) next = 0;
    const ClickData batch = pool.slice(next, b);
    next += b;
    return time_call([&] { model->forward(batch.dense, batch.sparse); });
  };
  const OfflineResult off = run_offline(run, o.batches, o.offline_seconds);
  log << variant << ": offline " << int64_t(off.qps) << " QPS at batch " << off.batch << "\n";
  // Warm every batch size the Server scenario can form, as a production server warms up: the
  // operator settles its per-size choices (sparse or oneDNN dense, and oneDNN's plans) here.
  for (int64_t b = 1; b <= o.server_max_batch; ++b) run(b);
  ServerOptions so;
  so.p99_bound_ms = o.p99_bound_ms;
  so.queries = o.server_queries;
  so.max_batch = o.server_max_batch;
  so.seed = seed;
  so.search_steps = 8;
  const ServerResult srv = run_server(run, off.qps, so);
  log << variant << ": server " << int64_t(srv.qps) << " QPS, p99 " << srv.p99_ms << " ms (tried";
  for (const auto& t : srv.trials) log << " " << int64_t(t.lambda) << ":" << fixed_ms(t.p99_ms);
  log << ")\n";
  out.push_back({variant, "offline", off.qps, off.batch_ms, off.batch, quality.accuracy, quality.auc, sparsity});
  out.push_back(
      {variant, "server", srv.qps, srv.p99_ms, int64_t(srv.mean_batch + 0.5), quality.accuracy, quality.auc, sparsity});
}

double mlp_sparsity(DlrmImpl& m) {
  int64_t zeros = 0, total = 0;
  for (auto* stack : {m.bottom.get(), m.top.get()})
    for (size_t i = 0; i < stack->size(); ++i)
      if (auto* lin = stack->linear(i)) {
        zeros += (lin->weight == 0).sum().item<int64_t>();
        total += lin->weight.numel();
      }
  return total ? double(zeros) / double(total) : 0.0;
}

}  // namespace

std::vector<DlrmBenchRecord> bench_dlrm(const std::string& work_dir, uint64_t seed, const DlrmBenchOptions& o,
                                        std::ostream& log) {
  if (o.threads < 1) usage_error("--threads must be at least 1");
  for (const int64_t b : o.batches)
    if (b < 1 || b > o.test_samples)
      usage_error("Offline batch " + std::to_string(b) + " is outside 1..--test-samples (" +
                  std::to_string(o.test_samples) + "): a batch cannot hold more clicks than the test set");
  if (o.server_max_batch > o.test_samples)
    usage_error("--server-max-batch " + std::to_string(o.server_max_batch) + " exceeds --test-samples (" +
                std::to_string(o.test_samples) + ")");
  if (!(o.p99_bound_ms > 0) || o.server_queries < 1)
    usage_error("the Server scenario needs --p99-ms > 0 and --server-queries >= 1");
  set_threads(o.threads);
  std::filesystem::create_directories(work_dir);
  log << "synthetic Criteo-shaped clicks: " << o.train_samples << " train, " << o.test_samples
      << " test (SYNTHETIC, teacher-labelled; not Criteo)\n";
  const Data data{make_synthetic_clicks(o.train_samples, seed, 2026, o.table_cap),
                  make_synthetic_clicks(o.test_samples, seed + 1, 2026, o.table_cap)};
  const std::string dense_path = work_dir + "/dense.pt", sparse_path = work_dir + "/sparse.pt";

  DlrmTrainOptions t;
  t.epochs = o.epochs;
  t.seed = seed;
  auto train_dense = [&](Dlrm& m) {
    log << "training DLRM dense, " << o.epochs << " epoch(s)\n";
    const auto r = train_dlrm(*m, data.train, data.test, t, log);
    log << "dense: accuracy " << r.test.accuracy << ", AUC " << r.test.auc << "\n";
  };
  ensure_cached(dense_path, o, seed, log, train_dense);
  ensure_cached(sparse_path, o, seed, log, [&](Dlrm& m) {
    load_checkpoint(dense_path, *m, nullptr, nullptr);  // prune by fine-tuning the dense model
    // Click logs are a stream, trained in one pass (as MLPerf's DLRM is): pruning fine-tunes on
    // fresh clicks, since more passes over the same ones overfit the embedding tables.
    const ClickData stream = make_synthetic_clicks(o.train_samples * o.prune_epochs, seed + 2, 2026, o.table_cap);
    DlrmTrainOptions p = t;
    const int64_t steps = (stream.size() + t.batch_size - 1) / t.batch_size;
    p.recipe = dlrm_recipe(o.pattern, o.sparsity, steps);
    log << "pruning DLRM to " << o.pattern.str() << " at " << o.sparsity << " over " << stream.size()
        << " fresh clicks\n";
    const auto r = train_dlrm(*m, stream, data.test, p, log);
    log << "sparse: accuracy " << r.test.accuracy << ", AUC " << r.test.auc << ", sparsity " << r.sparsity << "\n";
  });

  const ClickData calibration = data.train.slice(0, std::min(o.calibration_samples, data.train.size()));
  const ClickData& pool = data.test;
  std::vector<DlrmBenchRecord> records;

  Dlrm dense = load_dlrm(dense_path, o.table_cap);
  measure("fp32-dense", dense, pool, evaluate_clicks(*dense, data.test), mlp_sparsity(*dense), o, seed, log, records);
  for (const auto& [name, path, variant] : {std::tuple{"int8-dense", dense_path, Variant::Int8Dense},
                                            std::tuple{"int8-sparse", sparse_path, Variant::Int8Sparse}}) {
    Dlrm model = load_dlrm(path, o.table_cap);
    const double sparsity = mlp_sparsity(*model);
    ConvertOptions c;
    c.variant = variant;
    c.threads = o.threads;
    c.tune_m = o.batches;  // Offline batch sizes, then the Server's dynamic batches
    for (int64_t b = 1; b <= o.server_max_batch; b *= 2) c.tune_m.push_back(b);
    c.tune_m.push_back(o.server_max_batch);
    convert(*model, c, [&] { model->forward(calibration.dense, calibration.sparse); });
    model->quantize_tables();  // both INT8 variants gather row-wise INT8 embeddings
    measure(name, model, pool, evaluate_clicks(*model, data.test), sparsity, o, seed, log, records);
  }
  return records;
}

}  // namespace spruce::dlrm
