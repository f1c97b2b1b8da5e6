// spruce's INT8 sparse linear layer on a case that ds_layer.py wrote (weights, activations,
// scales, bias and DeepSparse's output and time), checked against DeepSparse and timed the same
// way; prints one markdown row per case (run.sh prints the header with --header).
//
//   spruce_deepsparse_layer [--kernel NAME] [--fallback never|auto|always] [--threads 1]
//                           [--min-time 1.0] [--min-reps 101] [--warmup-time 0.2] CASE.safetensors...
//
// The graph DeepSparse runs is  Y = float(acc + bias_q) * out_scale,  acc = sum_k (x_q - zp) w,
// out_scale[n] = float(x_scale * w_scale[n]). spruce's epilogue (quant.hpp) computes
// float(acc) * (x_scale * w_scale[n]) + bias[n] with one f32 multiply for the scale, so the same
// scale is used by construction (checked against the graph's out_scale), and the bias is given
// as bias[n] = float(bias_q[n]) * out_scale[n]. The two then differ only in where the bias is
// rounded: each output is a few f32 roundings of A = acc*s and B = bias_q*s, so both lie within
// 3u(|A|+|B|) of the exact (A+B) (u = 2^-24), and we accept |spruce - DeepSparse| <=
// 4 FLT_EPSILON (|A|+|B|) = 8u(|A|+|B|). DeepSparse itself is checked against the exact value
// of its graph with the same bound (it has been bit-exact in our runs).
//
// Two times, both medians of per-call times: "spruce" = quantize the f32 input to u8
// (spruce::quantize_u8) + SparseLinear::run, the same work as DeepSparse's graph (which starts
// with QuantizeLinear); "layer" = SparseLinear::run on the u8 activations alone.
#include <algorithm>
#include <cfloat>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "spruce/error.hpp"
#include "spruce/quant.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/spmm.hpp"

namespace {

using spruce::DType;
using spruce::SafetensorsFile;
using spruce::Tensor;

struct Options {
  std::string kernel;
  spruce::Fallback fallback = spruce::Fallback::Never;
  int threads = 1;
  double min_time = 1.0, warmup_time = 0.2;
  int min_reps = 101;
};

const Tensor& tensor(const SafetensorsFile& f, const std::string& path, const std::string& name, DType dtype,
                     std::vector<int64_t> shape) {
  const Tensor* t = f.find(name);
  if (!t) spruce::data_error(path + ": no tensor '" + name + "'");
  if (t->dtype != dtype || t->shape != shape)
    spruce::data_error(path + ": tensor '" + name + "' is not " + spruce::to_string(dtype) + " of the expected shape");
  return *t;
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  std::vector<T> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.bytes.data(), v.size() * sizeof(T));
  return v;
}

std::string meta(const SafetensorsFile& f, const std::string& path, const std::string& key) {
  auto it = f.metadata.find(key);
  if (it == f.metadata.end()) spruce::data_error(path + ": no metadata '" + key + "'");
  return it->second;
}

// Warm-up for warmup_time (at least 10 calls), then per-call times until min_reps calls and
// min_time seconds have passed; the median in microseconds (as ds_layer.py's time_calls).
double time_calls(const std::function<void()>& fn, const Options& o) {
  using clock = std::chrono::steady_clock;
  auto seconds = [](clock::duration d) { return std::chrono::duration<double>(d).count(); };
  auto t0 = clock::now();
  for (int i = 0; i < 10 || seconds(clock::now() - t0) < o.warmup_time; ++i) fn();
  std::vector<double> us;
  t0 = clock::now();
  while (int(us.size()) < o.min_reps || seconds(clock::now() - t0) < o.min_time) {
    const auto a = clock::now();
    fn();
    us.push_back(std::chrono::duration<double, std::micro>(clock::now() - a).count());
  }
  std::nth_element(us.begin(), us.begin() + us.size() / 2, us.end());
  return us[us.size() / 2];
}

// Returns false when an output is out of tolerance.
bool run_case(const std::string& path, const Options& o) {
  const SafetensorsFile f = spruce::read_safetensors(path);
  const int64_t k = std::stoll(meta(f, path, "in_features")), n = std::stoll(meta(f, path, "out_features")),
                m = std::stoll(meta(f, path, "m"));
  const spruce::Pattern pattern = spruce::Pattern::parse(meta(f, path, "pattern"));

  const auto w = values<int8_t>(tensor(f, path, "w", DType::I8, {n, k}));
  const auto w_scales = values<float>(tensor(f, path, "w_scales", DType::F32, {n}));
  const auto x_q = values<uint8_t>(tensor(f, path, "x_q", DType::U8, {m, k}));
  const auto x_f = values<float>(tensor(f, path, "x_f32", DType::F32, {m, k}));
  const float x_scale = values<float>(tensor(f, path, "x_scale", DType::F32, {1}))[0];
  const int32_t x_zp = values<int32_t>(tensor(f, path, "x_zero_point", DType::I32, {1}))[0];
  const auto bias_q = values<int32_t>(tensor(f, path, "bias_q", DType::I32, {n}));
  const auto out_scale = values<float>(tensor(f, path, "out_scale", DType::F32, {n}));
  const auto y_ds = values<float>(tensor(f, path, "y_deepsparse", DType::F32, {m, n}));

  spruce::QuantParams q;
  q.x.scale = x_scale;
  q.x.zero_point = x_zp;
  q.w_scales = w_scales;
  q.out = spruce::OutType::F32;
  std::vector<float> bias(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j) {
    const float s = x_scale * w_scales[size_t(j)];  // spruce's epilogue scale (quant.hpp)
    if (s != out_scale[size_t(j)]) spruce::data_error(path + ": out_scale differs from x_scale * w_scale");
    bias[size_t(j)] = float(bias_q[size_t(j)]) * s;
  }

  // The u8 activations spruce quantizes from DeepSparse's f32 input must be the stored ones.
  std::vector<uint8_t> xq_run(x_q.size());
  spruce::quantize_u8(x_f.data(), m * k, q.x, xq_run.data());
  if (xq_run != x_q) spruce::data_error(path + ": quantize_u8(x_f32) differs from x_q");

  spruce::SparseLinearOptions opt;
  opt.threads = o.threads;
  opt.fallback = o.fallback;
  opt.kernel = o.kernel;
  // Tuned for this m as a deployment would be: the AMX or VNNI route (an AMX host) and, under
  // --fallback auto, sparse against oneDNN.
  if (o.fallback != spruce::Fallback::Always) opt.tune_m = {m};
  const spruce::SparseLinear op(w.data(), n, k, pattern, q, bias.data(), opt);

  // Y on a 64-byte boundary, as a framework's tensor (a plain vector's large blocks start 16 bytes
  // past a page, and every 64-byte row store then straddles two cache lines).
  std::vector<float> y_storage(static_cast<size_t>(m * n) + 16);
  float* const y_data = y_storage.data() + (64 - reinterpret_cast<uintptr_t>(y_storage.data()) % 64) % 64 / 4;
  const std::span<float> y(y_data, static_cast<size_t>(m * n));
  op.run(x_q.data(), m, y.data());

  // Exact graph values and the tolerance per output (see the top of this file).
  std::vector<std::vector<std::pair<int64_t, int32_t>>> rows(static_cast<size_t>(n));
  for (int64_t j = 0; j < n; ++j)
    for (int64_t c = 0; c < k; ++c)
      if (w[size_t(j * k + c)]) rows[size_t(j)].push_back({c, w[size_t(j * k + c)]});
  double max_diff = 0, max_ds_exact = 0;
  int64_t bad = 0, bad_ds = 0;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      int64_t acc = 0;
      for (auto [c, wv] : rows[size_t(j)]) acc += (int64_t(x_q[size_t(i * k + c)]) - x_zp) * wv;
      const double s = out_scale[size_t(j)], b = bias_q[size_t(j)];
      const double exact = (double(acc) + b) * s;
      const double tol = 4.0 * FLT_EPSILON * (std::fabs(double(acc)) + std::fabs(b)) * s;
      const double ys = y[size_t(i * n + j)], yd = y_ds[size_t(i * n + j)];
      max_diff = std::max(max_diff, std::fabs(ys - yd));
      max_ds_exact = std::max(max_ds_exact, std::fabs(yd - exact));
      bad += std::fabs(ys - yd) > tol;
      bad_ds += std::fabs(yd - exact) > tol;
    }
  if (bad_ds)
    std::fprintf(stderr, "%s: DeepSparse's output is off its graph's exact value in %lld of %lld outputs (max %.3g)\n",
                 path.c_str(), (long long)bad_ds, (long long)(m * n), max_ds_exact);
  if (bad)
    std::fprintf(stderr, "%s: spruce and DeepSparse differ beyond 4 FLT_EPSILON (|A|+|B|) in %lld of %lld outputs\n",
                 path.c_str(), (long long)bad, (long long)(m * n));

  const double layer_us = time_calls([&] { op.run(x_q.data(), m, y.data()); }, o);
  const double graph_us = time_calls(
      [&] {
        spruce::quantize_u8(x_f.data(), m * k, q.x, xq_run.data());
        op.run(xq_run.data(), m, y.data());
      },
      o);

  const double ds_us = std::stod(meta(f, path, "deepsparse_us"));
  const auto ds_kernel = f.metadata.count("deepsparse_kernel") ? f.metadata.at("deepsparse_kernel") : "?";
  std::printf("| %s | %s | %lld->%lld | %lld | %.1f | %.1f | %.1f | %s | %s | %.2f | %.3g%s |\n",
              meta(f, path, "case").c_str(), pattern.str().c_str(), (long long)k, (long long)n, (long long)m, ds_us,
              graph_us, layer_us, op.impl(m).c_str(), ds_kernel.c_str(), ds_us / graph_us, max_diff,
              bad || bad_ds ? " MISMATCH" : "");
  std::fflush(stdout);
  return !bad && !bad_ds;
}

[[noreturn]] void usage(const std::string& why) {
  spruce::usage_error(why +
                      "\nusage: spruce_deepsparse_layer [--header] [--kernel NAME] [--fallback never|auto|always] "
                      "[--threads N] [--min-time S] [--min-reps N] [--warmup-time S] CASE.safetensors...");
}

}  // namespace

int main(int argc, char** argv) try {
  Options o;
  std::vector<std::string> files;
  bool header = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) usage(a + " needs a value");
      return argv[++i];
    };
    if (a == "--header")
      header = true;
    else if (a == "--kernel")
      o.kernel = next();
    else if (a == "--fallback")
      o.fallback = spruce::parse_fallback(next());
    else if (a == "--threads")
      o.threads = std::stoi(next());
    else if (a == "--min-time")
      o.min_time = std::stod(next());
    else if (a == "--min-reps")
      o.min_reps = std::stoi(next());
    else if (a == "--warmup-time")
      o.warmup_time = std::stod(next());
    else if (a == "-h" || a == "--help") {
      std::printf("spruce_deepsparse_layer: see the top of bench/deepsparse/spruce_layer.cpp\n");
      return 0;
    } else if (!a.empty() && a[0] == '-')
      usage("unknown flag " + spruce::in_quotes(a));
    else
      files.push_back(a);
  }
  if (o.threads < 1 || o.threads > 512) usage("--threads: 1 to 512");
  if (header) {
    std::printf(
        "| case | pattern | shape | m | DeepSparse µs | spruce µs | spruce layer µs | spruce kernel | DeepSparse "
        "kernel "
        "| ratio | max abs diff |\n|---|---|---|---|---|---|---|---|---|---|---|\n");
    std::fflush(stdout);
  }
  bool ok = true;
  for (const auto& f : files) ok = run_case(f, o) && ok;
  return ok ? 0 : 1;
} catch (const spruce::Error& e) {
  std::fprintf(stderr, "spruce_deepsparse_layer: %s\n", e.what());
  return e.exit_code();
} catch (const std::exception& e) {
  std::fprintf(stderr, "spruce_deepsparse_layer: %s\n", e.what());
  return 1;
}
