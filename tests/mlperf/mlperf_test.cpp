// The LoadGen driver against models whose service time is known: a batch of n samples sleeps
// a + b*n. The expected rates follow from queueing arithmetic, and LoadGen judges every run.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "spruce/error.hpp"
#include "spruce/mlperf.hpp"

using namespace spruce;
using namespace spruce::mlperf;

namespace {

BatchFn sleeper(double fixed_s, double per_sample_s) {
  return [=](std::span<const int64_t> samples) {
    std::this_thread::sleep_for(std::chrono::duration<double>(fixed_s + per_sample_s * double(samples.size())));
  };
}

Settings settings(const std::string& name) {
  Settings s;
  s.sample_count = 4096;
  s.offline_batch = 64;
  s.server_max_batch = 64;
  s.min_duration_s = 1.0;
  s.log_dir = (std::filesystem::temp_directory_path() / ("spruce-mlperf-" + name)).string();
  std::filesystem::remove_all(s.log_dir);
  return s;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

void expect_usage_error(const Settings& s, const std::string& words) {
  try {
    validate(s);
    ADD_FAILURE() << "accepted settings that should fail with: " << words;
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(Mlperf, BadSettingsAreUsageErrors) {
  Settings s = settings("bad");
  validate(s);  // the base is fine
  auto with = [&](auto change) {
    Settings t = s;
    change(t);
    return t;
  };
  expect_usage_error(with([](Settings& t) { t.sample_count = 0; }), "sample library is empty");
  expect_usage_error(with([](Settings& t) { t.server_max_batch = 8192; }), "larger than the sample library");
  expect_usage_error(with([](Settings& t) { t.offline_batch = 0; }), "at least one sample");
  expect_usage_error(with([](Settings& t) { t.target_latency_ms = -5; }), "latency bound");
  expect_usage_error(with([](Settings& t) { t.min_duration_s = -1; }), "minimum duration");
  expect_usage_error(with([](Settings& t) { t.server_min_queries = 0; }), "at least one query");
  expect_usage_error(with([](Settings& t) { t.log_dir.clear(); }), "folder for its logs");
  // The rates must be positive.
  EXPECT_THROW(run_server(sleeper(0, 0), s, 0.0), Error);
  EXPECT_THROW(find_server_qps(sleeper(0, 0), s, -1.0, 3), Error);
}

TEST(Mlperf, OfflineRateIsTheBatchServiceRate) {
  // 2 ms per batch plus 0.05 ms per sample, batches of 64: 64 / 5.2 ms = 12,308 samples/s.
  const Settings s = settings("offline");
  const double expected = 64.0 / (2e-3 + 64 * 0.05e-3);
  const RunResult r = run_offline(sleeper(2e-3, 0.05e-3), s, expected);
  EXPECT_TRUE(r.valid) << r.invalid_reason;
  EXPECT_EQ(r.scenario, "Offline");
  EXPECT_GT(r.qps, 0.85 * expected);  // sleeps overshoot, so only slower
  EXPECT_LT(r.qps, 1.01 * expected);
  EXPECT_GT(r.mean_batch, 60.0);
  EXPECT_TRUE(r.shortened);          // 1 s, not LoadGen's 600 s
  EXPECT_GE(r.sample_count, 24576);  // DLRM v2's Offline minimum from mlperf.conf
  EXPECT_NE(slurp(r.log_dir + "/mlperf_log_summary.txt").find("Result is : VALID"), std::string::npos);
  EXPECT_EQ(r.fields.at("result_validity"), "\"VALID\"");
}

TEST(Mlperf, OfflineExpectingTooLittleIsRunAgainUntilLongEnough) {
  // 56,000 samples/s, but told 5,000: LoadGen's query (24,576 samples, DLRM v2's minimum) ends in
  // 0.44 s, before the 1 s minimum. The driver follows LoadGen's advice and expects more.
  const Settings s = settings("offline-retry");
  const double rate = 64.0 / (0.5e-3 + 64 * 0.01e-3);
  const RunResult r = run_offline(sleeper(0.5e-3, 0.01e-3), s, 5000);
  EXPECT_TRUE(r.valid) << r.invalid_reason;
  EXPECT_TRUE(r.min_duration_met);
  EXPECT_GT(r.target_qps, 5000);  // the rerun's expectation
  EXPECT_GT(r.sample_count, 24576);
  EXPECT_GT(r.qps, 0.7 * rate);
}

TEST(Mlperf, ServerSearchFindsTheRateQueueingPredicts) {
  // A batch of n takes S = a + b*n. In steady state a batch holds the arrivals of the previous
  // one's service, n = lambda*S, so S = a / (1 - b*lambda); a query waits for at most the batch
  // in progress and then its own: latency <= 2S. The bound L holds while lambda <= (1 - 2a/L) / b.
  const double a = 4e-3, b = 0.5e-3, bound_ms = 40;
  Settings s = settings("server");
  s.target_latency_ms = bound_ms;
  const double predicted = (1 - 2 * a / (bound_ms * 1e-3)) / b;  // 1600 QPS
  const double offline = 64 / (a + 64 * b);                      // 1778 QPS
  const ServerSearch found = find_server_qps(sleeper(a, b), s, offline, 6);
  std::cout << "predicted " << predicted << " QPS; " << found.verdict << "\n";
  ASSERT_TRUE(found.best) << found.verdict;
  EXPECT_TRUE(found.best->valid);
  EXPECT_LE(found.best->p99_ms, bound_ms);
  // Poisson bursts make real batches larger than the mean: the found rate is below the bound's.
  EXPECT_GT(found.best->qps, 0.5 * predicted) << found.verdict;
  EXPECT_LT(found.best->qps, 1.05 * predicted) << found.verdict;
  EXPECT_LE(found.best->qps, offline);
  EXPECT_EQ(found.probes.size(), 6u);
  for (const RunResult& p : found.probes) {
    EXPECT_LE(p.target_qps, 0.95 * offline + 1e-9);
    EXPECT_TRUE(std::filesystem::exists(p.log_dir + "/mlperf_log_detail.txt"));
    if (!p.valid) {
      EXPECT_FALSE(p.invalid_reason.empty());
    }
  }
  EXPECT_NE(found.verdict.find("highest VALID"), std::string::npos) << found.verdict;
}

TEST(Mlperf, UnreachableBoundIsSaidNotZero) {
  // One batch alone takes 50 ms: no rate can meet a 20 ms p99 bound.
  Settings s = settings("unreachable");
  s.target_latency_ms = 20;
  s.server_min_queries = 200;
  const ServerSearch found = find_server_qps(sleeper(50e-3, 0), s, 64 / 50e-3, 2);
  EXPECT_FALSE(found.best);
  ASSERT_EQ(found.probes.size(), 2u);
  for (const RunResult& p : found.probes) {
    EXPECT_FALSE(p.valid);
    EXPECT_FALSE(p.perf_constraints_met);
    EXPECT_GE(p.p99_ms, 50.0);
  }
  EXPECT_NE(found.verdict.find("no Server rate met"), std::string::npos) << found.verdict;
}

TEST(Mlperf, AFailingBatchEndsTheRunWithItsErrorNotAHang) {
  const Settings s = settings("failing");
  int calls = 0;
  const BatchFn failing = [&](std::span<const int64_t> samples) {
    for (const int64_t i : samples) ASSERT_LT(i, s.sample_count);
    if (++calls == 3) throw std::runtime_error("the model ran out of memory");
  };
  try {
    run_offline(failing, s, 10000);
    ADD_FAILURE() << "the batch's exception was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "the model ran out of memory");
  }
  EXPECT_EQ(calls, 3);  // no batch runs after the failure
}
