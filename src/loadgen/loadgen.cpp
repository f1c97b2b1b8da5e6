#include "spruce/loadgen.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>

#include "spruce/error.hpp"

namespace spruce {

double time_call(const std::function<void()>& run) {
  const auto t0 = std::chrono::steady_clock::now();
  run();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  const auto rank = static_cast<size_t>(std::ceil(std::clamp(q, 0.0, 1.0) * double(v.size())));
  const size_t k = rank == 0 ? 0 : rank - 1;
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

OfflineResult run_offline(const BatchRunner& run, const std::vector<int64_t>& batches, double min_seconds) {
  OfflineResult best;
  for (int64_t b : batches) {
    if (b < 1) usage_error("offline batch sizes must be >= 1");
    run(b);  // warm-up
    std::vector<double> times;
    double total = 0.0;
    while (total < min_seconds || times.size() < 3) {
      const double t = run(b);
      times.push_back(t);
      total += t;
    }
    const double qps = double(b) * double(times.size()) / total;
    if (qps > best.qps) best = {b, qps, 1e3 * quantile(times, 0.5)};
  }
  return best;
}

ServerTrial run_server_trial(const BatchRunner& run, double lambda, const ServerOptions& opt) {
  if (!(lambda > 0.0)) usage_error("server arrival rate must be positive");
  if (opt.max_batch < 1 || opt.queries < 1) usage_error("server max_batch and queries must be >= 1");
  std::mt19937_64 rng(opt.seed);
  std::exponential_distribution<double> gap(lambda);
  std::vector<double> arrival(size_t(opt.queries));
  double t = 0.0;
  for (auto& a : arrival) a = (t += gap(rng));

  std::vector<double> latency;
  latency.reserve(arrival.size());
  double now = 0.0;
  int64_t batches = 0;
  for (size_t next = 0; next < arrival.size();) {
    now = std::max(now, arrival[next]);  // idle until the next query arrives
    size_t end = next;
    while (end < arrival.size() && arrival[end] <= now && int64_t(end - next) < opt.max_batch) ++end;
    now += run(int64_t(end - next));
    for (size_t q = next; q < end; ++q) latency.push_back(now - arrival[q]);
    next = end;
    ++batches;
  }
  return {lambda, 1e3 * quantile(latency, 0.99), double(arrival.size()) / double(batches)};
}

ServerResult run_server(const BatchRunner& run, double first_qps, const ServerOptions& opt) {
  if (!(first_qps > 0.0)) usage_error("server search needs a positive first rate (e.g. the offline QPS)");
  ServerResult result;
  auto meets = [&](double lambda) {
    const ServerTrial trial = run_server_trial(run, lambda, opt);
    result.trials.push_back(trial);
    const bool ok = trial.p99_ms <= opt.p99_bound_ms;
    if (ok && lambda > result.qps) {
      result.qps = lambda;
      result.p99_ms = trial.p99_ms;
      result.mean_batch = trial.mean_batch;
    }
    return ok;
  };
  // Grow past the first guess while it meets the bound: dynamic batching may sustain more than
  // the Offline rate it usually is. Then bisect between the last rate met and the first missed.
  double lo = 0.0, hi = first_qps;
  for (int grown = 0; meets(hi); ++grown) {
    if (grown == 10) return result;  // 1024x the guess and still within the bound
    lo = hi;
    hi *= 2.0;
  }
  for (int step = 1; step < opt.search_steps; ++step) {
    const double mid = 0.5 * (lo + hi);
    (meets(mid) ? lo : hi) = mid;
  }
  return result;
}

}  // namespace spruce
