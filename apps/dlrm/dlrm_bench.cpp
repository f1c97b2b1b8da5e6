#include "dlrm/dlrm_bench.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <ostream>

#include "dlrm/dlrm_train.hpp"
#include "spruce/error.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/threads.hpp"

namespace spruce::dlrm {
using namespace spruce::torch;

namespace {

Dlrm load_dlrm(const std::string& path, int64_t table_cap) {
  Dlrm model(table_cap);
  load_checkpoint(path, *model, nullptr, nullptr);
  return model;
}

// Trains and saves the model at `path` unless it is cached there already, trained with the same
// `settings` (kept in the checkpoint). The model is initialized from torch's global generator
// seeded with `seed`: LibTorch seeds that generator from a non-deterministic source at start-up,
// so without this the initial weights (and with them the trained model) differ between processes.
void ensure_cached(const std::string& path, const std::string& settings, const DlrmBenchOptions& o, uint64_t seed,
                   std::ostream& log, const std::function<void(Dlrm&)>& train) {
  if (!o.retrain && std::filesystem::exists(path)) {
    std::string cached;
    try {
      cached = read_loop_state(path).text;
      if (cached == settings) load_dlrm(path, o.table_cap);  // checked whole now, not after the first timings
    } catch (const Error& e) {
      throw Error(e.kind(), std::string(e.what()) + "; add --retrain to train it again");
    }
    if (cached == settings) {
      log << "using the cached " << path << " (--retrain trains it again)\n";
      return;
    }
    log << path << " was trained with " << (cached.empty() ? "unrecorded settings" : cached)
        << "; training it again with " << settings << "\n";
  }
  ::torch::manual_seed(seed);
  Dlrm model(o.table_cap);
  train(model);
  const LoopState state{settings, {}};
  save_checkpoint(path, *model, nullptr, nullptr, {}, &state);
  log << "saved " << path << "\n";
}

std::string fixed(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return text;
}

mlperf::Settings loadgen_settings(const DlrmBenchOptions& o, int64_t offline_batch, const std::string& log_dir) {
  mlperf::Settings s;
  s.model = "dlrm-v2";
  s.sample_count = o.test_samples;
  s.offline_batch = offline_batch;
  s.server_max_batch = o.server_max_batch;
  s.min_duration_s = o.min_duration_s;
  s.target_latency_ms = o.p99_bound_ms;
  s.log_dir = log_dir;
  return s;
}

// The Offline batch: each candidate runs 3 batches of spread-out test clicks after one warm-up,
// and the fastest per sample wins. Not a LoadGen figure: it configures the system under test, and
// its rate sizes LoadGen's Offline query.
struct OfflineBatch {
  int64_t batch = 0;
  double rate = 0;
};
OfflineBatch pick_offline_batch(const mlperf::BatchFn& run, const DlrmBenchOptions& o, std::ostream& log) {
  OfflineBatch best;
  std::vector<int64_t> rows;
  log << "  Offline batch probe:";
  for (const int64_t b : o.batches) {
    rows.resize(size_t(b));
    for (int64_t i = 0; i < b; ++i) rows[size_t(i)] = (i * 7919) % o.test_samples;
    run(rows);
    const auto t0 = std::chrono::steady_clock::now();
    for (int rep = 0; rep < 3; ++rep) run(rows);
    const double rate = 3.0 * double(b) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    log << " " << b << ": " << int64_t(rate) << "/s";
    if (rate > best.rate) best = {b, rate};
  }
  log << " -> batch " << best.batch << "\n";
  return best;
}

std::string run_line(const mlperf::RunResult& r) {
  std::string line = r.scenario + " offered " + fixed(r.target_qps, 0) + " QPS: " + fixed(r.qps, 0) + " QPS, p99 " +
                     fixed(r.p99_ms, 2) + " ms, " + (r.valid ? "VALID" : "INVALID");
  if (!r.valid && !r.invalid_reason.empty()) line += " (" + r.invalid_reason + ")";
  return line;
}

// Offline and Server through LoadGen for one variant; each batch gathers its clicks from `pool`.
void measure(const std::string& variant, Dlrm& model, const ClickData& pool, const ClickMetrics& quality,
             double sparsity, const DlrmBenchOptions& o, std::ostream& log, std::vector<DlrmBenchRecord>& out) {
  model->eval();
  // LoadGen calls this from its worker thread: grad mode and the thread count are per thread.
  const mlperf::BatchFn run = [&](std::span<const int64_t> samples) {
    thread_local bool configured = false;
    if (!configured) set_threads(o.threads), configured = true;
    ::torch::NoGradGuard no_grad;
    const auto rows =
        ::torch::from_blob(const_cast<int64_t*>(samples.data()), {int64_t(samples.size())}, ::torch::kLong);
    const ClickData batch = pool.gather(rows);
    model->forward(batch.dense, batch.sparse);
  };
  log << variant << ":\n";
  const auto [offline_batch, offline_rate] = pick_offline_batch(run, o, log);
  // Warm every batch size the Server scenario can form, as a production server warms up: the
  // operator settles its per-size choices (sparse or oneDNN dense, and oneDNN's plans) here.
  // LibTorch's FP32 layers keep no per-size plans: powers of two warm it.
  std::vector<int64_t> rows;
  for (int64_t b = 1; b <= o.server_max_batch; ++b) {
    rows.push_back(b - 1);
    if (variant != "fp32-dense" || (b & (b - 1)) == 0) run(rows);
  }

  const mlperf::Settings s = loadgen_settings(o, offline_batch, o.log_dir + "/" + variant);
  const mlperf::RunResult offline = mlperf::run_offline(run, s, offline_rate);
  log << "  " << run_line(offline) << "\n";
  out.push_back({variant,
                 "offline",
                 quality.accuracy,
                 quality.auc,
                 sparsity,
                 offline_batch,
                 offline,
                 {},
                 offline.valid ? "VALID" : "INVALID: " + offline.invalid_reason});

  const mlperf::ServerSearch server = mlperf::find_server_qps(
      run, s, offline.qps, o.server_probes, [&](const mlperf::RunResult& r) { log << "  " << run_line(r) << "\n"; });
  log << "  " << server.verdict << "\n";
  out.push_back({variant, "server", quality.accuracy, quality.auc, sparsity, o.server_max_batch, server.best,
                 server.probes, server.verdict});
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

std::string loadgen_log_dir(const DlrmBenchOptions& o, const std::string& work_dir) {
  return o.log_dir.empty() ? work_dir + "/loadgen" : o.log_dir;
}

void check_bench_options(const DlrmBenchOptions& o, const std::string& work_dir) {
  if (o.threads < 1) usage_error("--threads must be at least 1");
  if (o.batches.empty()) usage_error("--batches needs at least one Offline batch size");
  for (const int64_t b : o.batches)
    if (b < 1 || b > o.test_samples)
      usage_error("Offline batch " + std::to_string(b) + " is outside 1..--test-samples (" +
                  std::to_string(o.test_samples) + "): a batch cannot hold more clicks than the sample library");
  if (o.server_probes < 1) usage_error("--server-probes must be at least 1");
  if (o.server_max_batch < 1 || o.server_max_batch > o.test_samples)
    usage_error("--server-max-batch " + std::to_string(o.server_max_batch) + " is outside 1..--test-samples (" +
                std::to_string(o.test_samples) + "): a batch cannot hold more clicks than the sample library");
  // The bound and duration.
  mlperf::validate(loadgen_settings(o, o.batches.front(), loadgen_log_dir(o, work_dir)));
}

DlrmBenchReport bench_dlrm(const std::string& work_dir, uint64_t seed, const DlrmBenchOptions& options,
                           std::ostream& log) {
  DlrmBenchOptions o = options;
  o.log_dir = loadgen_log_dir(options, work_dir);
  check_bench_options(o, work_dir);  // before any training: a bad setting costs nothing
  set_threads(o.threads);
  std::filesystem::create_directories(work_dir);
  log << "synthetic Criteo-shaped clicks: " << o.train_samples << " train, " << o.test_samples
      << " test (SYNTHETIC, teacher-labelled; not Criteo)\n";
  const ClickData train = make_synthetic_clicks(o.train_samples, seed, 2026, o.table_cap);
  const ClickData test = make_synthetic_clicks(o.test_samples, seed + 1, 2026, o.table_cap);
  const std::string pretrained = work_dir + "/" + kPretrainedFile, dense_path = work_dir + "/" + kDenseFile,
                    sparse_path = work_dir + "/" + kSparseFile;

  DlrmTrainOptions t;
  t.epochs = o.epochs;
  t.seed = seed;
  // What each cached model was trained with; each one builds on the one before.
  const std::string pretrained_settings = "seed " + std::to_string(seed) + ", " + std::to_string(o.train_samples) +
                                          " clicks, " + std::to_string(o.epochs) + " epoch(s), tables of " +
                                          std::to_string(o.table_cap) + " rows";
  const std::string dense_settings =
      pretrained_settings + ", fine-tuned " + std::to_string(o.finetune_epochs) + " epoch(s)' worth";
  const std::string sparse_settings = dense_settings + ", " + o.pattern.str() + " at " + fixed(o.sparsity, 4);
  ensure_cached(pretrained, pretrained_settings, o, seed, log, [&](Dlrm& m) {
    log << "pre-training DLRM dense, " << o.epochs << " epoch(s) of " << train.size() << " clicks\n";
    const auto r = train_dlrm(*m, train, test, t, log);
    log << "pre-trained: accuracy " << r.test.accuracy << ", AUC " << r.test.auc << "\n";
  });
  // Click logs are a stream, trained in one pass (as MLPerf's DLRM is): both models continue on
  // fresh clicks, since more passes over the same ones overfit the embedding tables.
  std::optional<ClickData> stream;
  auto finetune = [&](Dlrm& m, std::optional<Recipe> recipe) {
    if (!stream) stream = make_synthetic_clicks(o.train_samples * o.finetune_epochs, seed + 2, 2026, o.table_cap);
    load_checkpoint(pretrained, *m, nullptr, nullptr);
    DlrmTrainOptions f = t;
    f.epochs = 1;
    f.recipe = std::move(recipe);
    const auto r = train_dlrm(*m, *stream, test, f, log);
    log << (f.recipe ? "sparse" : "dense") << ": accuracy " << r.test.accuracy << ", AUC " << r.test.auc
        << (f.recipe ? ", sparsity " + fixed(r.sparsity, 4) : "") << "\n";
  };
  const int64_t finetune_clicks = o.train_samples * o.finetune_epochs;
  const int64_t finetune_steps = (finetune_clicks + t.batch_size - 1) / t.batch_size;
  ensure_cached(dense_path, dense_settings, o, seed, log, [&](Dlrm& m) {
    log << "fine-tuning DLRM dense over " << finetune_clicks << " fresh clicks (the sparse model's budget)\n";
    finetune(m, std::nullopt);
  });
  ensure_cached(sparse_path, sparse_settings, o, seed, log, [&](Dlrm& m) {
    log << "pruning DLRM to " << o.pattern.str() << " at " << o.sparsity << " over the same " << finetune_clicks
        << " fresh clicks\n";
    finetune(m, dlrm_recipe(o.pattern, o.sparsity, finetune_steps));
  });

  DlrmBenchReport report;
  report.pretrain_clicks = o.train_samples * o.epochs;
  report.finetune_clicks = finetune_clicks;
  report.steps = o.epochs * ((o.train_samples + t.batch_size - 1) / t.batch_size) + finetune_steps;
  const ClickData calibration = train.slice(0, std::min(o.calibration_samples, train.size()));

  Dlrm dense = load_dlrm(dense_path, o.table_cap);
  measure("fp32-dense", dense, test, evaluate_clicks(*dense, test), mlp_sparsity(*dense), o, log, report.records);
  for (const auto& [name, path, variant] : {std::tuple{"int8-dense", dense_path, Variant::Int8Dense},
                                            std::tuple{"int8-sparse", sparse_path, Variant::Int8Sparse}}) {
    Dlrm model = load_dlrm(path, o.table_cap);
    const double sparsity = mlp_sparsity(*model);
    ConvertOptions c;
    c.variant = variant;
    c.threads = o.threads;
    if (variant == Variant::Int8Sparse) c.fallback = o.fallback;
    c.tune_m = o.batches;  // Offline batch sizes, then the Server's dynamic batches
    for (int64_t b = 1; b <= o.server_max_batch; b *= 2) c.tune_m.push_back(b);
    c.tune_m.push_back(o.server_max_batch);
    {
      ::torch::NoGradGuard no_grad;
      convert(*model, c, [&] { model->forward(calibration.dense, calibration.sparse); });
    }
    model->quantize_tables();  // both INT8 variants gather row-wise INT8 embeddings
    measure(name, model, test, evaluate_clicks(*model, test), sparsity, o, log, report.records);
  }
  return report;
}

}  // namespace spruce::dlrm
