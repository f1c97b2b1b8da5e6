// The Server and Offline harnesses on models with a known service time (virtual time: exact).
#include <gtest/gtest.h>

#include <cmath>

#include "spruce/error.hpp"
#include "spruce/loadgen.hpp"

using namespace spruce;

TEST(Loadgen, QuantileIsNearestRank) {
  std::vector<double> v;
  for (int i = 1; i <= 100; ++i) v.push_back(i);
  EXPECT_EQ(quantile(v, 0.99), 99);
  EXPECT_EQ(quantile(v, 0.5), 50);
  EXPECT_EQ(quantile(v, 1.0), 100);
  EXPECT_EQ(quantile({}, 0.5), 0);
}

TEST(Loadgen, OfflinePicksTheBatchWithTheBestThroughput) {
  // 1 ms fixed cost plus 0.1 ms per sample: larger batches amortize the fixed cost.
  const BatchRunner model = [](int64_t b) { return 1e-3 + 1e-4 * double(b); };
  const OfflineResult r = run_offline(model, {1, 16, 256}, 0.0);
  EXPECT_EQ(r.batch, 256);
  EXPECT_NEAR(r.qps, 256 / (1e-3 + 0.0256), 1e-6);
  EXPECT_NEAR(r.batch_ms, 26.6, 1e-9);
}

TEST(Loadgen, ServerAtLowLoadHasTheServiceTimeAsLatency) {
  const BatchRunner model = [](int64_t) { return 2e-3; };
  ServerOptions opt;
  opt.max_batch = 1;
  opt.queries = 5000;
  const ServerTrial t = run_server_trial(model, 1.0, opt);  // 1 query/s against 2 ms service
  EXPECT_NEAR(t.p99_ms, 2.0, 0.05);
  EXPECT_DOUBLE_EQ(t.mean_batch, 1.0);
}

TEST(Loadgen, ServerFindsTheEdgeOfTheBoundForAnMD1Queue) {
  // M/D/1 with 1 ms service: capacity 1000/s. p99 within 10 ms holds up to roughly 80% load.
  const BatchRunner model = [](int64_t) { return 1e-3; };
  ServerOptions opt;
  opt.max_batch = 1;
  opt.p99_bound_ms = 10.0;
  opt.queries = 20000;
  const ServerResult r = run_server(model, 1000.0, opt);
  EXPECT_GT(r.qps, 600.0);
  EXPECT_LT(r.qps, 1000.0);
  EXPECT_LE(r.p99_ms, 10.0);
  // Just above the found rate the bound breaks: the search stopped at the edge.
  const ServerTrial above = run_server_trial(model, r.qps * 1.05, opt);
  EXPECT_GT(above.p99_ms, 10.0 * 0.8);
}

TEST(Loadgen, BatchingRaisesServerThroughput) {
  // 1 ms per batch whatever its size (up to 64): batching lets the queue drain far faster.
  const BatchRunner model = [](int64_t) { return 1e-3; };
  ServerOptions one, many;
  one.max_batch = 1;
  many.max_batch = 64;
  one.queries = many.queries = 10000;
  const ServerResult a = run_server(model, 64000.0, one);
  const ServerResult b = run_server(model, 64000.0, many);
  EXPECT_GT(b.qps, 5 * a.qps);
  EXPECT_GT(b.mean_batch, 2.0);
}

TEST(Loadgen, SearchGrowsPastALowFirstGuess) {
  // 1 ms per batch of up to 64: about 64,000 queries/s at most, far above the 5,000 guessed.
  const BatchRunner model = [](int64_t) { return 1e-3; };
  ServerOptions opt;
  opt.max_batch = 64;
  opt.queries = 20000;
  const ServerResult r = run_server(model, 5000.0, opt);
  EXPECT_GT(r.qps, 20000.0);
  EXPECT_LT(r.qps, 64000.0 * 1.1);  // a finite trial tolerates a slightly overloaded queue
  EXPECT_GT(run_server_trial(model, r.qps * 1.1, opt).p99_ms, opt.p99_bound_ms * 0.8);
}

TEST(Loadgen, RejectsNonsense) {
  const BatchRunner model = [](int64_t) { return 1e-3; };
  EXPECT_THROW(run_server(model, 0.0, {}), Error);
  EXPECT_THROW(run_server_trial(model, -1.0, {}), Error);
  EXPECT_THROW(run_offline(model, {0}, 0.0), Error);
}
