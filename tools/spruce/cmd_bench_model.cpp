// spruce bench-model dlrm: whole-model Offline and Server throughput, in the seed's table form.
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.hpp"
#include "dlrm/dlrm_bench.hpp"
#include "flags.hpp"
#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct BenchModelArgs {
  std::string model, pattern = "4x16", json;
  std::string work_dir = "out/dlrm";  // trained models are cached here
  uint64_t seed = 1;
  dlrm::DlrmBenchOptions o;
};

const dlrm::DlrmBenchRecord* find(const std::vector<dlrm::DlrmBenchRecord>& rs, const std::string& v,
                                  const std::string& s) {
  for (const auto& r : rs)
    if (r.variant == v && r.scenario == s) return &r;
  return nullptr;
}

void print_table(const std::vector<dlrm::DlrmBenchRecord>& rs, const dlrm::DlrmBenchOptions& o) {
  const char* variants[] = {"fp32-dense", "int8-dense", "int8-sparse"};
  Table t({"", "Dense Model (FP32)", "Dense Model (INT8)", "Sparse Model (INT8)"});
  const auto* base = find(rs, "fp32-dense", "offline");
  std::vector<std::string> acc{"Accuracy"}, auc{"AUC"}, off{"Offline QPS"}, srv{"Server QPS"},
      fp32x{"vs FP32 dense (offline)"};
  for (const char* v : variants) {
    const auto* a = find(rs, v, "offline");
    const auto* s = find(rs, v, "server");
    const auto* i8 = find(rs, "int8-dense", "offline");
    const auto* i8s = find(rs, "int8-dense", "server");
    acc.push_back(percent(a->accuracy, 2) + " (" + percent(a->accuracy / base->accuracy, 2) + ")");
    auc.push_back(fixed(a->auc, 4));
    const bool int8 = std::string(v) != "fp32-dense";
    off.push_back(fixed(a->qps, 0) + (int8 ? " (" + fixed(a->qps / i8->qps, 2) + "x)" : "") + ", batch " +
                  std::to_string(a->batch));
    srv.push_back(fixed(s->qps, 0) + (int8 && i8s->qps > 0 ? " (" + fixed(s->qps / i8s->qps, 2) + "x)" : "") +
                  ", p99 " + fixed(s->p99_ms, 1) + " ms");
    fp32x.push_back(fixed(a->qps / base->qps, 2) + "x");
  }
  for (auto* row : {&acc, &auc, &off, &srv, &fp32x}) t.add_row(*row);
  std::cout << "\nDLRM (MLPerf shapes; SYNTHETIC Criteo-shaped data), sparse " << o.pattern.str() << " at "
            << percent(o.sparsity, 0) << ", " << o.threads << " threads; Server bound p99 <= " << o.p99_bound_ms
            << " ms; ratios in parentheses are against INT8 dense\n\n";
  t.print(std::cout);
}

void run(BenchModelArgs& a) {
  if (a.model != "dlrm") usage_error("unknown model '" + a.model + "': valid is dlrm");
  a.o.pattern = Pattern::parse(a.pattern);
  if (!(a.o.sparsity > 0 && a.o.sparsity < 1)) usage_error("--sparsity must be in (0, 1), e.g. 0.85");
  if (a.o.epochs < 1 || a.o.prune_epochs < 1) usage_error("--epochs and --prune-epochs must be at least 1");
  const auto records = dlrm::bench_dlrm(a.work_dir, a.seed, a.o, std::cerr);
  print_table(records, a.o);
  if (a.json.empty()) return;
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const auto& r : records)
    out.push_back({{"variant", r.variant},
                   {"scenario", r.scenario},
                   {"qps", r.qps},
                   {"p99_ms", r.p99_ms},
                   {"batch", r.batch},
                   {"accuracy", r.accuracy},
                   {"auc", r.auc},
                   {"sparsity", r.sparsity},
                   {"threads", a.o.threads},
                   {"data", "synthetic"}});
  write_file_atomic(a.json, out.dump(2) + "\n");
  std::cout << "wrote " << a.json << "\n";
}

void add(CLI::App& app) {
  auto a = std::make_shared<BenchModelArgs>();
  auto* cmd = app.add_subcommand(
      "bench-model", "Train, convert and measure a whole model: LibTorch FP32 dense, INT8 dense, INT8 sparse");
  cmd->add_option("model", a->model, "The model: dlrm (MLPerf shapes, synthetic data)")->required();
  cmd->add_option("--work-dir", a->work_dir, "Where trained models are cached")->capture_default_str();
  cmd->add_flag("--retrain", a->o.retrain, "Train again even when the cache has the models");
  cmd->add_option("--train-samples", a->o.train_samples, "Synthetic training samples")
      ->check(int_in(1, 1 << 26))
      ->capture_default_str();
  cmd->add_option("--test-samples", a->o.test_samples, "Synthetic test samples")
      ->check(int_in(1, 1 << 26))
      ->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "Dense training epochs")->check(int_in(1, 1000))->capture_default_str();
  cmd->add_option("--prune-epochs", a->o.prune_epochs,
                  "Pruning fine-tunes the dense model on this many epochs of fresh clicks")
      ->check(int_in(1, 1000))
      ->capture_default_str();
  cmd->add_option("--table-cap", a->o.table_cap, "Rows per embedding table at most")
      ->check(int_in(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--pattern", a->pattern, "Sparsity pattern of the MLPs")->capture_default_str();
  cmd->add_option("--sparsity", a->o.sparsity, "Fraction of zeros in the pruned MLP layers")
      ->check(fraction())
      ->capture_default_str();
  cmd->add_option("--threads", a->o.threads, "Threads for every variant")->check(thread_count())->capture_default_str();
  cmd->add_option("--batches", a->o.batches, "Offline batch sizes to try")
      ->check(int_in(1, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--p99-ms", a->o.p99_bound_ms, "Server scenario's p99 latency bound")
      ->check(real_in(0, 1e6, true))
      ->capture_default_str();
  cmd->add_option("--server-queries", a->o.server_queries, "Queries per Server trial")
      ->check(int_in(1, 100000000))
      ->capture_default_str();
  cmd->add_option("--server-max-batch", a->o.server_max_batch, "Largest dynamic batch in the Server scenario")
      ->check(int_in(1, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--seed", a->seed, "Seed of the data and training")
      ->check(uint_in(0, UINT64_MAX))
      ->capture_default_str();
  cmd->add_option("--json", a->json, "Write one record per variant and scenario")->check(non_empty());
  cmd->callback([a] { run(*a); });
}

const Command reg{"bench-model", add};

}  // namespace
}  // namespace spruce::cli
