// The highest Server rate LoadGen judges VALID, searched below the Offline rate.
#include <cmath>
#include <iomanip>
#include <sstream>

#include "spruce/error.hpp"
#include "spruce/mlperf.hpp"

namespace spruce::mlperf {

ServerSearch find_server_qps(const BatchFn& run, const Settings& s, double offline_qps, int probes,
                             const std::function<void(const RunResult&)>& on_probe) {
  validate(s);
  if (!(offline_qps > 0) || !std::isfinite(offline_qps))
    usage_error("the Server search needs the model's Offline rate (a positive number)");
  if (probes < 1) usage_error("the Server search needs at least one probe");
  ServerSearch out;
  auto probe = [&](double qps) {
    RunResult r = run_server(run, s, qps);
    // LoadGen cannot know the Offline rate. A Server rate above it is noise, never a result.
    if (r.valid && r.qps > offline_qps) {
      r.valid = false;
      r.invalid_reason = "Server rate above the Offline rate of the same model";
    }
    if (r.valid && (!out.best || r.qps > out.best->qps)) out.best = r;
    out.probes.push_back(r);
    if (on_probe) on_probe(r);
    return r.valid;
  };

  // Down from just under Offline, halving, until a run is VALID; then bisect between the offered
  // rates of the highest VALID run (met) and the lowest run above it that was not (missed).
  double met = 0, missed = 0, qps = 0.95 * offline_qps;
  constexpr int max_halvings = 6;
  for (int halvings = 0; int(out.probes.size()) < probes; ++halvings, qps *= 0.5) {
    if (probe(qps)) {
      met = qps;
      break;
    }
    missed = qps;
    if (halvings == max_halvings) break;
  }
  while (met > 0 && missed > 0 && int(out.probes.size()) < probes) {
    const double mid = 0.5 * (met + missed);
    (probe(mid) ? met : missed) = mid;
  }

  std::ostringstream v;
  v << std::fixed << std::setprecision(0);
  if (out.best) {
    v << "highest VALID Server run: " << out.best->qps << " QPS scheduled (offered " << out.best->target_qps
      << "), p99 " << std::setprecision(2) << out.best->p99_ms << " ms within " << std::defaultfloat
      << std::setprecision(6) << out.best->target_latency_ms << std::fixed << std::setprecision(0) << " ms; "
      << out.probes.size() << " LoadGen runs";
    if (missed > 0) v << ", offered " << missed << " was not VALID";
  } else {
    const RunResult& last = out.probes.back();
    v << "no Server rate met LoadGen's rules: the lowest tried, " << last.target_qps << " QPS, gave p99 "
      << std::setprecision(2) << last.p99_ms << " ms against a bound of " << std::defaultfloat << std::setprecision(6)
      << last.target_latency_ms << " ms" << (last.invalid_reason.empty() ? "" : " (" + last.invalid_reason + ")");
  }
  out.verdict = v.str();
  return out;
}

}  // namespace spruce::mlperf
