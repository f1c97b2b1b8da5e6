// Load generation for whole-model benchmarks, after MLPerf's Offline and Server scenarios.
//
// Offline: throughput at the best batch size, all samples available at once.
// Server: queries arrive one sample each, at Poisson times of rate lambda. One worker (which may
//   use every core inside the model) takes every query that has arrived, up to max_batch, runs
//   them as one batch, and each query's latency is its completion time minus its arrival time.
//   The figure is the highest lambda whose p99 latency stays within the bound.
//
// The Server scenario runs in virtual time: each batch really runs and its measured wall time
// advances the clock, but the worker does not sleep while it waits for arrivals. The queueing
// is then exact for the measured service times, and a search over lambda costs only busy time.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace spruce {

// Runs one batch of `batch` samples and returns its duration in seconds (a model harness
// times the call itself; a test can return a known service time).
using BatchRunner = std::function<double(int64_t batch)>;

// Times `run` once and returns the wall time in seconds: wraps a model call as a BatchRunner.
double time_call(const std::function<void()>& run);

struct OfflineResult {
  int64_t batch = 0;
  double qps = 0.0;       // samples per second at that batch
  double batch_ms = 0.0;  // median batch latency
};
// Tries each batch size for at least `min_seconds` (and 3 batches) and keeps the best.
OfflineResult run_offline(const BatchRunner& run, const std::vector<int64_t>& batches, double min_seconds);

struct ServerOptions {
  double p99_bound_ms = 10.0;
  int64_t max_batch = 256;
  int64_t queries = 20000;  // queries per trial at one lambda
  uint64_t seed = 1;
  int search_steps = 12;  // bisection steps over lambda (after the doubling)
};
struct ServerTrial {
  double lambda = 0.0;  // offered queries per second
  double p99_ms = 0.0;
  double mean_batch = 0.0;
};
// One trial: `queries` Poisson arrivals at `lambda`.
ServerTrial run_server_trial(const BatchRunner& run, double lambda, const ServerOptions& opt);

struct ServerResult {
  double qps = 0.0;     // highest lambda found within the bound (0: none)
  double p99_ms = 0.0;  // p99 at that lambda
  double mean_batch = 0.0;
  std::vector<ServerTrial> trials;  // every lambda tried, in order
};
// The highest Poisson rate whose p99 stays within the bound: starting at `first_qps` (e.g. the
// Offline figure), doubled while it meets the bound, then bisected between the last rate met and
// the first missed.
ServerResult run_server(const BatchRunner& run, double first_qps, const ServerOptions& opt);

// The q-quantile (0..1) of `values` by the nearest-rank method; 0 for no values.
double quantile(std::vector<double> values, double q);

}  // namespace spruce
