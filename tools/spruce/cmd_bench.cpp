// `spruce bench`: sparse GEMM against oneDNN dense FP32 and INT8, same process, same data.
//
// For each case: random weights pruned to the pattern (random whole blocks, or N of every M),
// random inputs; the sparse result is verified against the scalar reference before any timing
// (a case that fails prints no number). Then rounds interleave oneDNN FP32, oneDNN INT8, the raw
// sparse path (Fallback::Never) and the operator (Fallback::Auto); times are medians, ratios the
// median of the per-round ratios.
// Caches are warm: the same weights and inputs are reused across repetitions.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "command.hpp"
#include "flags.hpp"
#include "runtime/dense.hpp"
#include "spruce/error.hpp"
#include "spruce/spmm.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

struct Shape {
  int64_t m, k, n;
};

std::vector<Shape> suite(const std::string& name) {
  std::vector<Shape> s;
  auto add = [&](std::initializer_list<int64_t> ms, std::initializer_list<std::pair<int64_t, int64_t>> kn) {
    for (int64_t m : ms)
      for (auto [k, n] : kn) s.push_back({m, k, n});
  };
  const bool all = name == "all";
  if (all || name == "bert-base") add({128, 384, 1024}, {{768, 768}, {768, 3072}, {3072, 768}});
  if (all || name == "bert-large") add({384}, {{1024, 1024}, {1024, 4096}, {4096, 1024}});
  if (all || name == "dlrm-top") add({2048}, {{479, 1024}, {1024, 1024}, {1024, 512}, {512, 256}});
  if (all || name == "dlrm-bottom") add({2048}, {{13, 512}, {512, 256}, {256, 128}});
  if (all || name == "small-batch") add({1, 4, 16}, {{1024, 1024}, {768, 3072}});
  if (s.empty())
    usage_error("unknown suite '" + name + "': expected bert-base, bert-large, dlrm-top, dlrm-bottom, small-batch or all");
  return s;
}

Shape parse_shape(const std::string& t) {
  Shape s{};
  char x1 = 0, x2 = 0;
  std::istringstream in(t);
  if (!(in >> s.m >> x1 >> s.k >> x2 >> s.n) || x1 != 'x' || x2 != 'x' || !in.eof() || s.m < 1 || s.k < 1 || s.n < 1)
    usage_error("invalid shape '" + t + "': expected MxKxN with positive integers, e.g. 128x768x3072");
  return s;
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  for (std::string item; std::getline(in, item, ',');) out.push_back(item);
  if (s.empty() || s.back() == ',') out.emplace_back();  // an empty item is an error downstream
  return out;
}

// Zeroes exactly round(sparsity * blocks) random whole blocks (block patterns), or keeps N random
// weights of every M (N:M). Weights are f32 in [-1, 1].
std::vector<float> pruned_weights(const Shape& s, const Pattern& p, double sparsity, std::mt19937& rng) {
  std::vector<float> w(size_t(s.n * s.k));
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  for (auto& v : w) v = d(rng);
  const BlockGrid g = block_grid(p, s.n, s.k);
  if (p.is_nm()) {
    std::vector<int64_t> idx;
    for (int64_t r = 0; r < s.n; ++r)
      for (int64_t j = 0; j < g.grid_cols(); ++j) {
        idx.clear();
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) idx.push_back(c);
        std::shuffle(idx.begin(), idx.end(), rng);
        for (size_t i = size_t(p.n()); i < idx.size(); ++i) w[size_t(r * s.k + idx[i])] = 0.0f;
      }
    return w;
  }
  std::vector<int64_t> blocks(size_t(g.blocks()));
  for (size_t i = 0; i < blocks.size(); ++i) blocks[i] = int64_t(i);
  std::shuffle(blocks.begin(), blocks.end(), rng);
  const auto zeroed = size_t(std::llround(sparsity * double(blocks.size())));
  for (size_t b = 0; b < zeroed; ++b) {
    const int64_t i = blocks[b] / g.grid_cols(), j = blocks[b] % g.grid_cols();
    for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
      for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c) w[size_t(r * s.k + c)] = 0.0f;
  }
  return w;
}

struct Options {
  std::string suite_name, json;
  std::vector<std::string> shapes;
  std::string patterns = "4x1", sparsities = "0.9", dtype = "int8";
  int threads = 0, reps = 0;
};

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

void run_bench(const Options& o) {
  std::vector<Shape> shapes;
  for (const auto& t : o.shapes) shapes.push_back(parse_shape(t));
  if (!o.suite_name.empty())
    for (auto s : suite(o.suite_name)) shapes.push_back(s);
  if (shapes.empty()) usage_error("nothing to run: give --suite or --shape");
  if (o.dtype != "f32" && o.dtype != "int8") usage_error("invalid --dtype '" + o.dtype + "': expected f32 or int8");
  const bool int8 = o.dtype == "int8";
  const int threads = o.threads > 0 ? o.threads : omp_get_max_threads();
  omp_set_num_threads(threads);  // oneDNN (OpenMP build) uses this thread count
  std::vector<Pattern> patterns;
  for (const auto& p : split(o.patterns)) patterns.push_back(Pattern::parse(p));
  std::vector<double> sps;
  for (const auto& t : split(o.sparsities)) {
    char* end = nullptr;
    const double v = std::strtod(t.c_str(), &end);
    if (t.empty() || *end || !(v >= 0.0 && v < 1.0)) usage_error("invalid --sparsity " + in_quotes(t) + ": expected a fraction in [0, 1)");
    sps.push_back(v);
  }
  Table table({"m", "k", "n", "pattern", "sparsity", "dtype", "thr", "sparse_impl", "dense_impl", "sparse_us",
               "dense_us", "speedup", "vs_f32", "op_impl", "op_x", "eff_GOP/s"});
  nlohmann::json records = nlohmann::json::array();
  std::mt19937 rng(42);
  for (const Shape& s : shapes)
    for (const Pattern& p : patterns)
      for (double sp_req : (p.is_nm() ? std::vector<double>{p.natural_sparsity()} : sps)) {
        auto wf = pruned_weights(s, p, sp_req, rng);
        std::uniform_real_distribution<float> d(-1.0f, 1.0f);
        std::vector<float> xf(size_t(s.m * s.k));
        for (auto& v : xf) v = d(rng);
        // INT8 data: per-channel symmetric weights, u8 activations with a zero point.
        Matrix<int8_t> wq;
        QuantParams q;
        q.w_scales = quantize_weights(MatrixView<const float>(wf.data(), s.n, s.k), wq);
        q.x_scale = 2.0f / 255.0f;
        q.x_zero_point = 128;
        std::vector<uint8_t> xq(xf.size());
        for (size_t i = 0; i < xf.size(); ++i)
          xq[i] = uint8_t(std::clamp(std::nearbyint(xf[i] / q.x_scale) + 128.0f, 0.0f, 255.0f));
        runtime::DenseMatmul df(false, wf.data(), s.n, s.k, nullptr, Activation::None, nullptr);
        runtime::DenseMatmul dq(true, wq.data.data(), s.n, s.k, nullptr, Activation::None, &q);
        SparseLinearOptions raw, ref, autoo;
        raw.threads = ref.threads = autoo.threads = threads;
        raw.fallback = ref.fallback = Fallback::Never;
        ref.kernel = int8 ? "s8-spmm-ref" : "f32-spmm-ref";
        autoo.fallback = Fallback::Auto;
        auto make = [&](const SparseLinearOptions& opt) {
          return int8 ? SparseLinear(wq.data.data(), s.n, s.k, p, q, nullptr, opt)
                      : SparseLinear(wf.data(), s.n, s.k, p, nullptr, opt);
        };
        SparseLinear sparse = make(raw), reference = make(ref), op = make(autoo);
        std::vector<float> y(size_t(s.m * s.n)), want(y.size()), yd(y.size());
        auto run_op = [&](SparseLinear& l, float* out) {
          if (int8) l.run(xq.data(), s.m, out);
          else l.run(xf.data(), s.m, out);
        };
        // Verify before timing: sparse vs the scalar reference (exact for INT8, K-scaled for FP32);
        // for INT8, oneDNN's dense result must match too.
        run_op(sparse, y.data());
        run_op(reference, want.data());
        for (size_t i = 0; i < y.size(); ++i) {
          const bool ok = int8 ? y[i] == want[i] : std::fabs(y[i] - want[i]) <= 1e-5f * float(s.k) * (1.0f + std::fabs(want[i]));
          if (!ok)
            data_error("verification failed for " + std::to_string(s.m) + "x" + std::to_string(s.k) + "x" +
                       std::to_string(s.n) + " " + p.str() + " at " + std::to_string(i) + ": " + std::to_string(y[i]) +
                       " vs reference " + std::to_string(want[i]));
        }
        if (int8) {
          dq.run(xq.data(), s.m, s.k, yd.data(), s.n);
          if (yd != want) data_error("verification failed: oneDNN INT8 dense differs from the reference");
        }
        run_op(op, y.data());  // Fallback::Auto decides on its first call
        const int reps = o.reps > 0 ? o.reps : std::clamp(int(4e9 / double(2 * s.m * s.k * s.n + 1)), 31, 301);
        std::vector<double> tf, tq, ts, to;
        for (int r = 0; r < reps + 3; ++r) {
          double t0 = now();
          df.run(xf.data(), s.m, s.k, yd.data(), s.n);
          double t1 = now();
          dq.run(xq.data(), s.m, s.k, yd.data(), s.n);
          double t2 = now();
          run_op(sparse, y.data());
          double t3 = now();
          run_op(op, y.data());
          double t4 = now();
          if (r < 3) continue;  // warm-up
          tf.push_back(t1 - t0);
          tq.push_back(t2 - t1);
          ts.push_back(t3 - t2);
          to.push_back(t4 - t3);
        }
        const double us_f = median(tf) * 1e6, us_q = median(tq) * 1e6, us_s = median(ts) * 1e6, us_o = median(to) * 1e6;
        const double us_d = int8 ? us_q : us_f;
        // Ratios are medians of the per-round ratios: the paired timings of one round (a few ms
        // apart) see the same load, so a busy second on the shared machine cancels out.
        auto ratio = [&](const std::vector<double>& num, const std::vector<double>& den) {
          std::vector<double> r;
          for (size_t i = 0; i < num.size(); ++i) r.push_back(num[i] / den[i]);
          return median(r);
        };
        const auto& td = int8 ? tq : tf;
        const double speedup = ratio(td, ts), vs_f32 = ratio(tf, ts), op_speedup = ratio(td, to);
        const double sparsity = sparse.sparsity();
        const std::string dense_impl = int8 ? dq.impl(s.m) : df.impl(s.m), sparse_impl = sparse.impl(s.m);
        const double eff = 2.0 * double(s.m * s.k * s.n) / (us_s * 1e3);
        table.add_row({std::to_string(s.m), std::to_string(s.k), std::to_string(s.n), p.str(), percent(sparsity),
                       o.dtype, std::to_string(threads), sparse_impl, dense_impl, fixed(us_s, 1),
                       fixed(us_d, 1), fixed(speedup, 2) + "x", fixed(vs_f32, 2) + "x", op.impl(s.m),
                       fixed(op_speedup, 2) + "x", fixed(eff, 0)});
        records.push_back({{"m", s.m}, {"k", s.k}, {"n", s.n}, {"pattern", p.str()}, {"sparsity", sparsity},
                           {"dtype", o.dtype}, {"threads", threads}, {"sparse_impl", sparse_impl},
                           {"dense_impl", dense_impl}, {"sparse_us", us_s}, {"dense_us", us_d},
                           {"speedup", speedup}, {"dense_f32_us", us_f}, {"speedup_vs_f32", vs_f32},
                           {"operator_impl", op.impl(s.m)}, {"operator_us", us_o}, {"operator_speedup", op_speedup},
                           {"verified", true}, {"cache", "warm"}, {"reps", reps}});
      }
  table.print(std::cout);
  std::cout << "speedup = oneDNN dense " << o.dtype << " / sparse, the median of per-round ratios (rounds alternate "
            << "all paths; same process, warm cache); times are medians; vs_f32 = oneDNN FP32 / sparse; op_x = dense / "
            << "SparseLinear with its dense fallback; eff = 2mkn / sparse time\n";
  if (!o.json.empty()) {
    std::ofstream out(o.json);
    if (!out) data_error("cannot write " + o.json);
    out << records.dump(2) << '\n';
  }
}

void add_bench(CLI::App& app) {
  auto opt = std::make_shared<Options>();
  auto* cmd = app.add_subcommand("bench", "sparse GEMM vs oneDNN dense FP32 and INT8 (BENCHMARKS.md protocol)");
  cmd->add_option("--suite", opt->suite_name, "bert-base | bert-large | dlrm-top | dlrm-bottom | small-batch | all");
  cmd->add_option("--shape", opt->shapes, "MxKxN (m tokens, k = IC, n = OC); repeatable");
  cmd->add_option("--pattern", opt->patterns, "pattern(s), comma-separated: 4x1, 1x4, 4x16, 1x1, 2:4 (N of every M)")
      ->capture_default_str();
  cmd->add_option("--sparsity", opt->sparsities, "fraction(s) of zero weights, comma-separated (ignored for N:M)")
      ->capture_default_str();
  cmd->add_option("--dtype", opt->dtype, "f32 | int8")->capture_default_str();
  cmd->add_option("--threads", opt->threads, "threads for sparse and dense (default: OpenMP's)")->check(thread_count());
  cmd->add_option("--reps", opt->reps, "timed repetitions per case (default: by size)")->check(int_in(1, 1000000));
  cmd->add_option("--json", opt->json, "write one JSON record per case to FILE")->check(non_empty());
  cmd->callback([opt] { run_bench(*opt); });
}

const Command reg{"bench", add_bench};

}  // namespace
}  // namespace spruce::cli
