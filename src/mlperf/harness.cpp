// The batching system under test, the in-memory sample library, and one LoadGen run per call.
#include <loadgen.h>
#include <query_sample.h>
#include <query_sample_library.h>
#include <system_under_test.h>
#include <test_settings.h>

#include <cmath>
#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <thread>

#include "mlperf/log_reader.hpp"
#include "spruce/error.hpp"
#include "spruce/mlperf.hpp"

namespace spruce::mlperf {
namespace {

// One worker thread: takes up to `max_batch` waiting samples, runs them, reports them complete.
class BatchingSut final : public ::mlperf::SystemUnderTest {
 public:
  BatchingSut(const BatchFn& run, int64_t max_batch) : run_(run), max_batch_(max_batch) {
    worker_ = std::thread([this] { work(); });
  }
  ~BatchingSut() override { finish(); }
  // Stops the worker once nothing waits; afterwards its counts and failure may be read.
  void finish() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    ready_.notify_one();
    if (worker_.joinable()) worker_.join();
  }
  const std::string& Name() override { return name_; }
  void IssueQuery(const std::vector<::mlperf::QuerySample>& samples) override {
    {
      std::lock_guard lock(mutex_);
      waiting_.insert(waiting_.end(), samples.begin(), samples.end());
    }
    ready_.notify_one();
  }
  void FlushQueries() override {}

  double mean_batch() const { return batches_ ? double(samples_) / double(batches_) : 0.0; }
  std::exception_ptr failure() const { return failure_; }  // the first exception a batch threw

 private:
  void work() {
    std::vector<::mlperf::QuerySample> batch;
    std::vector<int64_t> indices;
    std::vector<::mlperf::QuerySampleResponse> responses;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [&] { return stop_ || !waiting_.empty(); });
        if (waiting_.empty()) return;  // stopping, and nothing is left
        const size_t n = std::min(waiting_.size(), size_t(max_batch_));
        batch.assign(waiting_.begin(), waiting_.begin() + long(n));
        waiting_.erase(waiting_.begin(), waiting_.begin() + long(n));
      }
      indices.clear();
      for (const auto& s : batch) indices.push_back(int64_t(s.index));
      if (!failure_) {
        try {
          run_(indices);
        } catch (...) {
          failure_ = std::current_exception();  // still completed below: LoadGen must not wait forever
        }
      }
      responses.clear();
      for (const auto& s : batch) responses.push_back({s.id, 0, 0});
      ::mlperf::QuerySamplesComplete(responses.data(), responses.size());
      ++batches_;
      samples_ += int64_t(batch.size());
    }
  }

  const std::string name_ = "spruce-batching-sut";
  const BatchFn& run_;
  const int64_t max_batch_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<::mlperf::QuerySample> waiting_;
  bool stop_ = false;
  std::exception_ptr failure_;
  int64_t batches_ = 0, samples_ = 0;
  std::thread worker_;
};

// The caller's samples are in memory already: loading is a no-op.
class InMemoryLibrary final : public ::mlperf::QuerySampleLibrary {
 public:
  explicit InMemoryLibrary(int64_t count) : count_(size_t(count)) {}
  const std::string& Name() override { return name_; }
  size_t TotalSampleCount() override { return count_; }
  size_t PerformanceSampleCount() override { return count_; }
  void LoadSamplesToRam(const std::vector<::mlperf::QuerySampleIndex>&) override {}
  void UnloadSamplesFromRam(const std::vector<::mlperf::QuerySampleIndex>&) override {}

 private:
  const std::string name_ = "spruce-in-memory";
  size_t count_;
};

std::string number_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f", v);
  return text;
}

RunResult run_scenario(const BatchFn& run, const Settings& s, ::mlperf::TestScenario scenario, double qps) {
  validate(s);
  if (!(qps > 0) || !std::isfinite(qps)) usage_error("a LoadGen run needs a positive, finite rate");
  const bool server = scenario == ::mlperf::TestScenario::Server;
  const std::string name = server ? "Server" : "Offline";

  ::mlperf::TestSettings ts;
  if (ts.FromConfig("", s.model, name, 0) != 0)
    data_error("LoadGen's mlperf.conf has no settings for model " + in_quotes(s.model));
  const double conf_duration_s = double(ts.min_duration_ms) / 1e3;
  ts.scenario = scenario;
  ts.mode = ::mlperf::TestMode::PerformanceOnly;
  ts.performance_sample_count_override = uint64_t(s.sample_count);
  if (s.min_duration_s > 0) ts.min_duration_ms = uint64_t(std::llround(s.min_duration_s * 1e3));
  if (s.target_latency_ms > 0) ts.server_target_latency_ns = uint64_t(std::llround(s.target_latency_ms * 1e6));
  if (server) {
    ts.server_target_qps = qps;
    ts.min_query_count = std::max<uint64_t>(ts.min_query_count, uint64_t(s.server_min_queries));
  } else {
    ts.offline_expected_qps = qps;
  }

  RunResult r;
  r.scenario = name;
  r.target_qps = qps;
  r.min_duration_s = double(ts.min_duration_ms) / 1e3;
  r.shortened = r.min_duration_s < conf_duration_s;
  r.target_latency_ms = double(ts.server_target_latency_ns) / 1e6;
  r.log_dir = s.log_dir + "/" + (server ? "server-" + number_text(qps) + "qps" : std::string("offline"));
  std::error_code ec;
  std::filesystem::create_directories(r.log_dir, ec);
  if (ec) data_error("cannot create the LoadGen log folder " + in_quotes(r.log_dir) + ": " + ec.message());

  ::mlperf::LogSettings log;
  log.log_output.outdir = r.log_dir;
  log.enable_trace = false;  // a trace of every query: hundreds of MB at DLRM's rates
  InMemoryLibrary library(s.sample_count);
  BatchingSut sut(run, server ? s.server_max_batch : s.offline_batch);
  ::mlperf::StartTest(&sut, &library, ts, log, "");  // "": never an audit.config from the working folder
  sut.finish();
  if (sut.failure()) std::rethrow_exception(sut.failure());
  r.mean_batch = sut.mean_batch();
  read_detail_log(r.log_dir + "/mlperf_log_detail.txt", r);
  return r;
}

}  // namespace

void validate(const Settings& s) {
  if (s.sample_count < 1) usage_error("the sample library is empty: LoadGen needs at least one sample");
  if (s.offline_batch < 1 || s.server_max_batch < 1)
    usage_error("batches must hold at least one sample (Offline batch " + std::to_string(s.offline_batch) +
                ", Server max batch " + std::to_string(s.server_max_batch) + ")");
  for (const auto& [what, b] : {std::pair{"Offline batch", s.offline_batch}, {"Server max batch", s.server_max_batch}})
    if (b > s.sample_count)
      usage_error(std::string(what) + " " + std::to_string(b) + " is larger than the sample library (" +
                  std::to_string(s.sample_count) + " samples): lower it or give more samples");
  if (!(s.min_duration_s >= 0) || !std::isfinite(s.min_duration_s))
    usage_error("the minimum duration must be 0 (LoadGen's own) or positive seconds");
  if (!(s.target_latency_ms >= 0) || !std::isfinite(s.target_latency_ms))
    usage_error("the latency bound must be 0 (LoadGen's own) or positive milliseconds");
  if (s.server_min_queries < 1) usage_error("the Server scenario needs at least one query per run");
  if (s.log_dir.empty()) usage_error("LoadGen needs a folder for its logs");
}

RunResult run_offline(const BatchFn& run, const Settings& s, double expected_qps) {
  RunResult r = run_scenario(run, s, ::mlperf::TestScenario::Offline, expected_qps);
  // A query sized from too low an expectation ends before the minimum duration; LoadGen's advice
  // is then to expect more. Follow it, from the rate just measured, at most twice.
  for (int retry = 0; retry < 2 && !r.min_duration_met && r.qps > 0; ++retry)
    r = run_scenario(run, s, ::mlperf::TestScenario::Offline, 1.5 * std::max(r.qps, expected_qps));
  return r;
}

RunResult run_server(const BatchFn& run, const Settings& s, double target_qps) {
  return run_scenario(run, s, ::mlperf::TestScenario::Server, target_qps);
}

}  // namespace spruce::mlperf
