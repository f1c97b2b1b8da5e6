// Google Benchmark microbenchmarks of the registry kernels themselves, one thread, warm cache:
// activation packing and the spmm microkernel on a bert-base shape (k = n = 768) at 90%.
// Run: build/bench/spruce_microbench [--benchmark_filter=s8]
// Counters: useful GOP/s over the nonzeros, effective GOP/s as if dense (XNNPACK's convention).
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "kernels/kernel.hpp"

namespace spruce::kernels {
namespace {

template <typename T>
Matrix<T> weights(int64_t n, int64_t k, int rows, int cols, double sparsity) {  // rows x cols blocks
  std::mt19937 rng(1);
  std::uniform_real_distribution<double> u(0, 1);
  Matrix<T> w(n, k);
  for (int64_t r0 = 0; r0 < n; r0 += rows)
    for (int64_t c0 = 0; c0 < k; c0 += cols)
      if (u(rng) >= sparsity)
        for (int64_t r = r0; r < std::min(n, r0 + rows); ++r)
          for (int64_t c = c0; c < std::min(k, c0 + cols); ++c) w(r, c) = T(1 + rng() % 100);
  return w;
}

void spmm(benchmark::State& st, const Kernel* kr, int h, int64_t m) {
  const int64_t k = 768, n = 768;
  const double sparsity = kr->layout == Layout::Rows ? 0.5 : 0.9;
  const bool s8 = kr->dtype == DType::S8;
  const int64_t ld = xt_ld(kr->dtype, m, kr->layout, k);
  std::vector<uint8_t> x(size_t(m * k) * (s8 ? 1 : 4), 1), xt(xt_bytes(kr->dtype, m, k, kr->layout));
  std::vector<float> y(size_t(m * n)), scale(size_t(n), 0.01f);
  std::vector<int32_t> comp(size_t(n), 0);
  Epilogue ep;
  ep.scale = scale.data();
  ep.comp = comp.data();
  StripWeights<float> wf;
  StripWeights<int8_t> ws;
  StripView v;
  if (kr->layout == Layout::Rows) {  // 2:4: the first two of every four kept
    Matrix<int8_t> w24(n, k);
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < k; c += 4) w24(r, c) = w24(r, c + 1) = int8_t(1 + (r + c) % 100);
    ws = make_nm8(MatrixView<const int8_t>(w24.view()));
    v = view(ws);
  } else if (s8) {
    const bool quads = kr->layout == Layout::Quads;  // blocks h x 4 for quad kernels, h x 1 otherwise
    ws = make_strips(MatrixView<const int8_t>(weights<int8_t>(n, k, h, quads ? 4 : 1, sparsity).view()), h, quads);
    v = view(ws);
  } else {
    wf = make_strips(MatrixView<const float>(weights<float>(n, k, h, 1, sparsity).view()), h);
    v = view(wf);
  }
  kr->pack(x.data(), m, k, 0, k, xt.data(), ld);
  SpmmArgs a;
  a.xt = xt.data();
  a.ldxt = ld;
  a.m_total = m;
  a.m1 = m;
  a.s1 = (n + h - 1) / h;
  a.y = y.data();
  a.ldy = n;
  a.ep = &ep;
  for (auto _ : st) {
    kr->run(v, a);
    benchmark::ClobberMemory();
  }
  const double ops = 2.0 * double(m * k * n) * double(st.iterations());
  st.counters["eff_GOPs"] = benchmark::Counter(ops, benchmark::Counter::kIsRate);
  st.counters["useful_GOPs"] = benchmark::Counter(ops * (1.0 - sparsity), benchmark::Counter::kIsRate);
}

void pack(benchmark::State& st, const Kernel* kr, int64_t m) {
  const int64_t k = 768, ld = xt_ld(kr->dtype, m, kr->layout, k);
  const size_t es = kr->dtype == DType::S8 ? 1 : 4;
  std::vector<uint8_t> x(size_t(m * k) * es, 1), xt(xt_bytes(kr->dtype, m, k, kr->layout));
  for (auto _ : st) {
    kr->pack(x.data(), m, k, 0, k, xt.data(), ld);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(m * k * es));
}

const int kRegistered = [] {
  for (const Kernel& kr : registry()) {
    if (kr.isa > max_isa()) continue;
    const bool ref = kr.isa == Isa::Scalar;
    for (int h : {1, 2, 4, 8, 16}) {
      Problem p{kr.dtype, h, 0, 0, 0};
      p.quads = kr.layout == Layout::Quads;
      p.nm8 = kr.layout == Layout::Rows;
      if (!kr.accepts(p) || (ref && h != 4)) continue;
      for (int64_t m : {1, 16, 128}) {
        if (ref && m != 16) continue;
        std::string name = std::string(kr.name) + "/h" + std::to_string(h) + "/m" + std::to_string(m) + "/768x768/" +
                           (kr.layout == Layout::Rows ? "2:4" : "90%");
        benchmark::RegisterBenchmark(name.c_str(), spmm, &kr, h, m);
      }
    }
    for (int64_t m : {16, 128}) benchmark::RegisterBenchmark((std::string(kr.name) + "/pack/m" + std::to_string(m) + "/k768").c_str(), pack, &kr, m);
  }
  return 0;
}();

}  // namespace
}  // namespace spruce::kernels

BENCHMARK_MAIN();
