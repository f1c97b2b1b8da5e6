// `spruce bench-model dlrm`: DLRM trained dense and pruned on synthetic clicks with equal budgets,
// then measured in one process as LibTorch FP32 dense, INT8 dense (oneDNN) and INT8 sparse
// (spruce), Offline and Server through MLPerf LoadGen, as the seed's table is. The data are
// SYNTHETIC (Criteo-shaped), never Criteo.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "spruce/mlperf.hpp"
#include "spruce/pattern.hpp"
#include "spruce/spmm.hpp"

namespace spruce::dlrm {

struct DlrmBenchOptions {
  bool retrain = false;
  int64_t train_samples = 1 << 18, test_samples = 1 << 16, calibration_samples = 4096;
  int64_t epochs = 1;  // dense pre-training on the training clicks
  // Then the dense and the sparse model both continue from the pre-trained one on the same fresh
  // clicks, this many epochs' worth, in one pass with the same order: the sparse one prunes while
  // it does. Equal budgets, so the accuracy row compares like with like.
  int64_t finetune_epochs = 2;
  int64_t table_cap = 10000;
  Pattern pattern = Pattern::block(4, 16);
  double sparsity = 0.85;
  int threads = 2;
  Fallback fallback = Fallback::Auto;                   // the INT8 sparse variant's (INT8 dense: Always)
  std::vector<int64_t> batches{256, 1024, 2048, 4096};  // Offline candidates; a short probe picks one
  int64_t server_max_batch = 1024;                      // Server: dynamic batching up to this
  double min_duration_s = 10;                           // LoadGen's minimum per run (its own for DLRM: 600 s)
  double p99_bound_ms = 0;                              // 0: LoadGen's DLRM v2 bound (60 ms)
  int server_probes = 6;                                // LoadGen Server runs per variant in the rate search
  std::string log_dir;  // LoadGen's logs, a folder per variant (default: <work_dir>/loadgen)
};

struct DlrmBenchRecord {
  std::string variant;   // fp32-dense | int8-dense | int8-sparse
  std::string scenario;  // offline | server
  double accuracy = 0, auc = 0, sparsity = 0;
  int64_t batch = 0;                      // offline: the SUT's batch; server: the largest dynamic batch
  std::optional<mlperf::RunResult> run;   // offline: the run; server: the highest VALID (none: no rate met)
  std::vector<mlperf::RunResult> probes;  // server: every run of the search
  std::string verdict;                    // one line
};

struct DlrmBenchReport {
  std::vector<DlrmBenchRecord> records;
  int64_t pretrain_clicks = 0, finetune_clicks = 0, steps = 0;  // the budget each model saw
};

// Where LoadGen's logs go: options.log_dir, or <work_dir>/loadgen.
std::string loadgen_log_dir(const DlrmBenchOptions& options, const std::string& work_dir);

// Throws spruce::Error (usage) for settings that bench_dlrm would refuse (batch sizes, LoadGen's
// settings), before anything is trained or written; `work_dir` as for bench_dlrm.
void check_bench_options(const DlrmBenchOptions& options, const std::string& work_dir);

// The trained models bench_dlrm caches in its work_dir.
inline constexpr char kPretrainedFile[] = "dense-pretrained.pt", kDenseFile[] = "dense-finetuned.pt",
                      kSparseFile[] = "sparse-finetuned.pt";

// Trains what is missing from the cache, converts, verifies and measures. Progress goes to `log`.
// The caller chooses (no default here) `work_dir`, where the trained models are cached
// (the three files above; created if missing), and `seed`,
// of the synthetic data and the training.
DlrmBenchReport bench_dlrm(const std::string& work_dir, uint64_t seed, const DlrmBenchOptions& options,
                           std::ostream& log);

}  // namespace spruce::dlrm
