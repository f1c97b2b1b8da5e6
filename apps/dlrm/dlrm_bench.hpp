// `spruce bench-model dlrm`: DLRM trained dense and pruned on synthetic clicks, then measured in
// one process as LibTorch FP32 dense, INT8 dense (oneDNN) and INT8 sparse (spruce), Offline and
// Server, as the seed's table does. The data are SYNTHETIC (Criteo-shaped), never Criteo.
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "spruce/pattern.hpp"

namespace spruce::dlrm {

struct DlrmBenchOptions {
  bool retrain = false;
  int64_t train_samples = 1 << 18, test_samples = 1 << 16, calibration_samples = 4096;
  int64_t epochs = 1;        // dense training
  int64_t prune_epochs = 2;  // pruning fine-tunes the dense model on this many epochs' worth of
                             // fresh clicks, in one pass
  int64_t table_cap = 10000;
  Pattern pattern = Pattern::block(4, 16);
  double sparsity = 0.85;
  int threads = 2;
  std::vector<int64_t> batches{256, 1024, 2048, 4096};  // Offline candidates
  double offline_seconds = 1.0;                         // per batch size
  double p99_bound_ms = 30.0;                           // Server: MLPerf DLRM's latency bound
  int64_t server_queries = 20000;
  int64_t server_max_batch = 256;  // dynamic batching up to this many queries
};

struct DlrmBenchRecord {
  std::string variant;   // fp32-dense | int8-dense | int8-sparse
  std::string scenario;  // offline | server
  double qps = 0, p99_ms = 0;
  int64_t batch = 0;  // offline: the best batch; server: mean dynamic batch (rounded)
  double accuracy = 0, auc = 0, sparsity = 0;
};

// Trains what is missing from the cache, converts, verifies and measures. Progress goes to `log`.
// The caller chooses (no default here) `work_dir`, where the trained models are cached (dense.pt,
// sparse.pt; created if missing), and `seed`, of the synthetic data, the training and the Server
// scenario's arrivals.
std::vector<DlrmBenchRecord> bench_dlrm(const std::string& work_dir, uint64_t seed, const DlrmBenchOptions& options,
                                        std::ostream& log);

}  // namespace spruce::dlrm
