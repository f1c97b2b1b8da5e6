// Whole-model Offline and Server figures from MLPerf LoadGen (the mlcommons-loadgen source, built
// as a static library; LoadGen's own types stay inside src/mlperf).
//
// spruce supplies the two parts LoadGen asks of a harness, and one it lacks:
// - a system under test that batches: one worker takes up to `max_batch` waiting samples, runs them
//   as one batch, and reports them complete (Offline: slices of LoadGen's one big query; Server:
//   every query that has arrived, the dynamic batching of MLPerf's DLRM submissions);
// - a sample library over the caller's samples, already in memory;
// - the search for the highest Server rate that LoadGen judges VALID, bounded by the Offline rate.
//   LoadGen's FindPeakPerformance mode grows the rate without bound, judges only the latency and
//   needs a valid lower bound from the user, so it is not used.
//
// LoadGen decides every verdict: latency bound and percentile, minimum duration, minimum query
// count and early stopping come from its mlperf.conf for `model`; only what Settings overrides
// differs, and the result says so. LoadGen keeps process-wide state: one run at a time.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace spruce::mlperf {

// Runs the samples with these indices (into the caller's sample library) as one batch. Called from
// one worker thread, one batch at a time. An exception ends the run: LoadGen is told the batch is
// done, and the run's function rethrows it.
using BatchFn = std::function<void(std::span<const int64_t> samples)>;

struct Settings {
  std::string model = "dlrm-v2";  // the key into LoadGen's mlperf.conf
  int64_t sample_count = 0;       // samples in the library (indices 0..sample_count-1)
  int64_t offline_batch = 0;      // Offline: the worker's batch
  int64_t server_max_batch = 0;   // Server: dynamic batches of up to this many queries
  double min_duration_s = 0;      // 0: LoadGen's (600 s for DLRM); shorter runs are marked so
  double target_latency_ms = 0;   // 0: LoadGen's bound for `model` (DLRM v2: 60 ms at p99)
  // Server runs need at least this many queries, so that early stopping can pass at a shortened
  // duration (it needs 459 in-bound queries at p99). LoadGen's own minimum is 100 (at 600 s).
  int64_t server_min_queries = 1024;
  std::string log_dir;  // LoadGen's summary and detail logs: one subfolder per run
};

// Rejects impossible settings with one line (exit 2), before anything runs.
void validate(const Settings& settings);

struct RunResult {
  std::string scenario;   // "Offline" | "Server"
  double target_qps = 0;  // Server: the offered rate; Offline: the expected rate
  // Offline: result_samples_per_second. Server: result_scheduled_samples_per_sec (the rate at
  // which LoadGen sent queries; a VALID run kept up with it).
  double qps = 0;
  double completed_qps = 0;    // Server: result_completed_samples_per_sec
  bool valid = false;          // LoadGen's result_validity
  std::string invalid_reason;  // LoadGen's words, or spruce's for a Server rate above Offline
  bool min_duration_met = false, min_queries_met = false, early_stopping_met = false;
  bool perf_constraints_met = true;  // Server: the latency bound held at its percentile
  int64_t query_count = 0, sample_count = 0;
  double target_latency_ms = 0, p50_ms = 0, p99_ms = 0, max_ms = 0, mean_ms = 0;
  double min_duration_s = 0;                  // as run
  bool shortened = false;                     // min_duration_s below LoadGen's own for the model
  double mean_batch = 0;                      // the worker's batches, measured
  std::string log_dir;                        // where this run's mlperf_log_summary.txt and _detail.txt are
  std::map<std::string, std::string> fields;  // every result_* and effective_* record, as JSON text
};

// One Offline run: LoadGen sends one query of enough samples to last min_duration at `expected_qps`.
// If the run still ends too soon (the expectation was low), it is run again expecting 1.5x the
// measured rate, at most twice; the result is the last run's.
RunResult run_offline(const BatchFn& run, const Settings& settings, double expected_qps);
// One Server run: Poisson arrivals at `target_qps`, one sample per query.
RunResult run_server(const BatchFn& run, const Settings& settings, double target_qps);

struct ServerSearch {
  std::optional<RunResult> best;  // the highest VALID rate tried; none: the bound was never met
  std::vector<RunResult> probes;  // every run, in order
  std::string verdict;            // one line: what was found, or why nothing was
};
// The highest VALID Server rate, never above `offline_qps` (a Server rate above the Offline rate of
// the same model is impossible; a probe there would only measure noise). Halves the rate from
// 0.95 x offline until LoadGen judges a run VALID (at most 6 halvings), then bisects between the
// highest VALID and the lowest rate that missed, `probes` runs in all.
// `on_probe`, if given, sees each run as it ends (for progress lines).
ServerSearch find_server_qps(const BatchFn& run, const Settings& settings, double offline_qps, int probes,
                             const std::function<void(const RunResult&)>& on_probe = {});

}  // namespace spruce::mlperf
