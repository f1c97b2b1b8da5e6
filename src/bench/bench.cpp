// Suites, verification and the timing protocol of `spruce bench` (include/spruce/bench.hpp).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <sstream>

#include "kernels/kernel.hpp"
#include "runtime/dense.hpp"
#include "spruce/bench.hpp"
#include "spruce/calibration.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/spmm.hpp"

namespace spruce::bench {
namespace {

struct Suite {
  const char* name;
  std::vector<int64_t> ms;
  std::vector<std::pair<int64_t, int64_t>> kn;  // (k, n) for each m
};

const std::vector<Suite>& suites() {
  static const std::vector<Suite> s = {
      {"bert-base", {128, 384, 1024}, {{768, 768}, {768, 3072}, {3072, 768}}},
      {"bert-large", {384}, {{1024, 1024}, {1024, 4096}, {4096, 1024}}},
      {"dlrm-top", {2048}, {{479, 1024}, {1024, 1024}, {1024, 512}, {512, 256}}},
      {"dlrm-bottom", {2048}, {{13, 512}, {512, 256}, {256, 128}}},
      {"small-batch", {1, 4, 16}, {{1024, 1024}, {768, 3072}}},
  };
  return s;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

std::string to_string(const Shape& s) {
  return std::to_string(s.m) + "x" + std::to_string(s.k) + "x" + std::to_string(s.n);
}

Shape parse_shape(const std::string& t) {
  Shape s{};
  char x1 = 0, x2 = 0;
  std::istringstream in(t);
  if (t.find_first_not_of("0123456789x") != std::string::npos ||  // no sign, no space
      !(in >> s.m >> x1 >> s.k >> x2 >> s.n) || x1 != 'x' || x2 != 'x' || !in.eof() || s.m < 1 || s.k < 1 || s.n < 1)
    usage_error("invalid shape " + in_quotes(t) + ": expected MxKxN with positive integers, e.g. 128x768x3072");
  // Each case holds several copies of X, W and Y (FP32, INT8, packed, the reference's): bounded so that
  // a typo fails here, not in the out-of-memory killer.
  constexpr int64_t kMaxSide = int64_t{1} << 20, kMaxElements = int64_t{1} << 27;
  if (s.m > kMaxSide || s.k > kMaxSide || s.n > kMaxSide || s.m * s.k + s.k * s.n + s.m * s.n > kMaxElements)
    usage_error("shape " + in_quotes(t) + " is too large for a benchmark: each side at most " +
                std::to_string(kMaxSide) + ", and M*K + K*N + M*N at most " + std::to_string(kMaxElements) +
                " elements");
  return s;
}

std::vector<std::string> suite_names() {
  std::vector<std::string> names;
  for (const Suite& s : suites()) names.push_back(s.name);
  return names;
}

std::vector<Shape> suite(const std::string& name) {
  std::vector<Shape> shapes;
  for (const Suite& s : suites())
    if (name == "all" || name == s.name)
      for (int64_t m : s.ms)
        for (auto [k, n] : s.kn) shapes.push_back({m, k, n});
  if (shapes.empty()) {
    std::string expected;
    for (const Suite& s : suites()) expected += std::string(s.name) + ", ";
    expected.resize(expected.size() - 2);
    usage_error("unknown suite " + in_quotes(name) + ": expected " + expected + " or all");
  }
  return shapes;
}

CaseData make_case(const Shape& s, const Pattern& p, double sparsity, std::mt19937& rng) {
  CaseData d;
  d.w = pruned_weights(s.n, s.k, p, sparsity, rng);
  d.x = uniform_vec(size_t(s.m * s.k), -1.0f, 1.0f, rng);
  // INT8: per-channel symmetric weights, u8 activations with a zero point.
  d.q.w_scales = quantize_weights(d.w.view(), d.wq);
  d.q.x = u8_quant_for_range(-1.0f, 1.0f);
  d.xq.resize(d.x.size());
  quantize_u8(d.x.data(), int64_t(d.x.size()), d.q.x, d.xq.data());
  return d;
}

void check_result(const Shape& s, const Pattern& p, bool int8, const float* y, const float* want) {
  for (size_t i = 0; i < size_t(s.m * s.n); ++i) {
    const bool ok =
        int8 ? y[i] == want[i] : std::fabs(y[i] - want[i]) <= 1e-5f * float(s.k) * (1.0f + std::fabs(want[i]));
    if (!ok)
      data_error("verification failed for " + to_string(s) + " " + p.str() + " at " + std::to_string(i) + ": " +
                 std::to_string(y[i]) + " vs reference " + std::to_string(want[i]));
  }
}

int default_reps(const Shape& s) { return std::clamp(int(4e9 / double(2 * s.m * s.k * s.n + 1)), 31, 301); }

int use_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);  // oneDNN (OpenMP build) uses this thread count
  return omp_get_max_threads();
}

std::vector<std::vector<double>> time_rounds(const std::vector<std::function<void()>>& paths, int reps, int warmup) {
  std::vector<std::vector<double>> t(paths.size());
  std::vector<size_t> order(paths.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::mt19937 rng(20261203);
  for (int r = 0; r < warmup + reps; ++r) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t i : order) {
      const double t0 = now();
      paths[i]();
      if (r >= warmup) t[i].push_back(now() - t0);
    }
  }
  return t;
}

double median(std::vector<double> v) {
  if (v.empty()) usage_error("median of no values");
  std::nth_element(v.begin(), v.begin() + long(v.size() / 2), v.end());
  return v[v.size() / 2];
}

double median_ratio(const std::vector<double>& num, const std::vector<double>& den) {
  if (num.size() != den.size()) usage_error("median_ratio: lists of different lengths");
  std::vector<double> r;
  for (size_t i = 0; i < num.size(); ++i) r.push_back(num[i] / den[i]);
  return median(std::move(r));
}

Result run_case(const Case& c, std::mt19937& rng) {
  const Shape& s = c.shape;
  const Pattern& p = c.pattern;
  const bool int8 = c.int8;
  const CaseData d = make_case(s, p, c.sparsity, rng);
  runtime::DenseMatmul df(false, d.w.data.data(), s.n, s.k, nullptr, Activation::None, nullptr);
  runtime::DenseMatmul dq(true, d.wq.data.data(), s.n, s.k, nullptr, Activation::None, &d.q);
  SparseLinearOptions raw, ref, autoo;
  raw.threads = ref.threads = autoo.threads = c.threads;
  raw.fallback = ref.fallback = Fallback::Never;
  ref.kernel = int8 ? "s8-spmm-ref" : "f32-spmm-ref";
  autoo.fallback = Fallback::Auto;
  autoo.tune_m = {s.m};  // the operator chooses sparse or oneDNN at creation, for this m
  auto make = [&](const SparseLinearOptions& opt) {
    return int8 ? SparseLinear(d.wq.data.data(), s.n, s.k, p, d.q, nullptr, opt)
                : SparseLinear(d.w.data.data(), s.n, s.k, p, nullptr, opt);
  };
  SparseLinear sparse = make(raw), reference = make(ref), op = make(autoo);
  // Activations and outputs on 64-byte boundaries, as a framework's tensors are: from a plain
  // std::vector (16 bytes past a page for large blocks), every 64-byte row store of Y straddles
  // two cache lines, which cost a sparse layer with a 1.5 MB output a third of its time.
  const kernels::LineVector<float> x(d.x.begin(), d.x.end());
  const kernels::LineVector<uint8_t> xq(d.xq.begin(), d.xq.end());
  kernels::LineVector<float> y(size_t(s.m * s.n)), want(y.size()), yd(y.size());
  auto run_op = [&](const SparseLinear& l, float* out) {
    if (int8)
      l.run(xq.data(), s.m, out);
    else
      l.run(x.data(), s.m, out);
  };
  // Verify before timing: sparse vs the scalar reference; for INT8, oneDNN's dense result too.
  run_op(sparse, y.data());
  run_op(reference, want.data());
  check_result(s, p, int8, y.data(), want.data());
  // Where oneDNN's INT8 saturates (no VNNI), it is still the baseline users have; it is timed,
  // and the record says that its results were not exact.
  bool dense_exact = true;
  if (int8) {
    dq.run(xq.data(), s.m, s.k, yd.data(), s.n);
    dense_exact = yd == want;
    if (!dense_exact && runtime::DenseMatmul::int8_exact())
      data_error("verification failed: oneDNN INT8 dense differs from the reference");
  }
  run_op(op, y.data());

  Result r;
  r.c = c;
  r.dense_exact = dense_exact;
  r.reps = c.reps > 0 ? c.reps : default_reps(s);
  const auto t = time_rounds(
      {[&] { df.run(x.data(), s.m, s.k, yd.data(), s.n); }, [&] { dq.run(xq.data(), s.m, s.k, yd.data(), s.n); },
       [&] { run_op(sparse, y.data()); }, [&] { run_op(op, y.data()); }},
      r.reps);
  const auto &tf = t[0], &tq = t[1], &ts = t[2], &to = t[3];
  const auto& td = int8 ? tq : tf;
  r.dense_f32_us = median(tf) * 1e6;
  r.dense_us = median(td) * 1e6;
  r.sparse_us = median(ts) * 1e6;
  r.operator_us = median(to) * 1e6;
  r.speedup = median_ratio(td, ts);
  r.speedup_vs_f32 = median_ratio(tf, ts);
  r.operator_speedup = median_ratio(td, to);
  r.sparsity = sparse.sparsity();
  r.sparse_impl = sparse.impl(s.m);
  r.dense_impl = int8 ? dq.impl(s.m) : df.impl(s.m);
  r.operator_impl = op.impl(s.m);
  r.eff_gops = 2.0 * double(s.m * s.k * s.n) / (r.sparse_us * 1e3);
  return r;
}

std::string dense_max_isa() { return runtime::DenseMatmul::max_isa(); }

std::string host_line() {
  return std::string(host_class()) + " (spruce " + std::string(isa_name(max_isa())) + ", oneDNN " + dense_max_isa() +
         ") on " + std::string(cpu_description());
}

}  // namespace spruce::bench
