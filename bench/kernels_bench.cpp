// Google Benchmark microbenchmarks, one thread, warm cache:
//  - every registry kernel: activation packing, and the spmm microkernel at k = n = 768, 90%;
//  - every dot-interaction kernel on one DLRM sample (27 vectors of 128, warm), and the operator on
//    a batch of 2048 gathering from 26 tables of 10,000 rows (cold beyond the caches);
//  - every attention kernel on one head (128 tokens), and the operator on a MiniLM layer's batch;
//  - every residual + LayerNorm kernel and the operator on a MiniLM pass (1024 x 384);
//  - the whole operator (SparseLinear, sparse path only) against oneDNN dense on the BENCHMARKS.md
//    target shapes. Google Benchmark's CPU time excludes time the thread spent descheduled, so
//    these single-thread ratios hold up on a machine shared with other jobs.
// Run: OMP_NUM_THREADS=1 build/bench/spruce_microbench [--benchmark_filter=operator]
// Counters: useful GOP/s over the nonzeros, effective GOP/s as if dense (XNNPACK's convention).
#include <benchmark/benchmark.h>

#include <cmath>
#include <random>
#include <string>

#include "kernels/attention.hpp"
#include "kernels/interaction.hpp"
#include "kernels/kernel.hpp"
#include "kernels/layer_norm.hpp"
#include "runtime/dense.hpp"
#include "spruce/attention.hpp"
#include "spruce/bench.hpp"
#include "spruce/interaction.hpp"
#include "spruce/layer_norm.hpp"
#include "spruce/spmm.hpp"

namespace spruce::kernels {
namespace {

// Integer weights (they fit s8) in rows x cols blocks, a fraction `sparsity` of them zeroed.
template <typename T>
Matrix<T> weights(int64_t n, int64_t k, int rows, int cols, double sparsity) {
  std::mt19937 rng(1);
  return bench::pruned_integers<T>(n, k, Pattern::block(rows, cols), sparsity, rng, 100);
}

void spmm(benchmark::State& st, const Kernel* kr, int64_t m) {
  const int64_t k = 768, n = 768;
  const int h = kr->h;
  const bool octets = kr->weights == WeightFormat::Octets;
  const double sparsity = octets ? 0.5 : 0.9;
  const bool s8 = kr->dtype == DType::S8;
  const int64_t ld = xt_ld(kr->dtype, m, kr->layout, k);
  // xt on a cache line, as the operator packs it (kernel loads of a whole line must not straddle two).
  std::vector<uint8_t> x(size_t(m * k) * (s8 ? 1 : 4), 1);
  LineVector<uint8_t> xt(xt_bytes(kr->dtype, m, k, kr->layout));
  std::vector<float> y(size_t(m * n)), scale(size_t(n), 0.01f);
  std::vector<int32_t> comp(size_t(n), 0);
  Epilogue ep;
  ep.scale = scale.data();
  ep.comp = comp.data();
  PackedWeights packed;
  if (octets) {  // 2:4: two random weights of every four kept
    std::mt19937 rng(1);
    const auto w24 = bench::pruned_integers<int8_t>(n, k, Pattern::n_of_m(2, 4), 0.0, rng, 100);
    packed = pack_weights(*kr, MatrixView<const int8_t>(w24.view()));
  } else if (s8) {
    // The pattern each format is for: h x 4 blocks for quad strips, 1x4 for row lanes and the
    // whole-quad lane windows, 1x1 for quad masks and the other lane windows (their h is a panel of
    // channels, not a block), h x 1 otherwise.
    const WeightFormat f = kr->weights;
    const bool one_high = f == WeightFormat::RowLanes || f == WeightFormat::QuadMasks || f == WeightFormat::LaneWindows;
    const int bc = f == WeightFormat::QuadStrips || f == WeightFormat::RowLanes || kr->whole_quads ? 4 : 1;
    packed = pack_weights(*kr, MatrixView<const int8_t>(weights<int8_t>(n, k, one_high ? 1 : h, bc, sparsity).view()));
  } else {
    packed = pack_weights(*kr, MatrixView<const float>(weights<float>(n, k, h, 1, sparsity).view()));
  }
  const StripView& v = packed.impl().view;
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
    kr->spmm()(v, a);
    benchmark::ClobberMemory();
  }
  const double ops = 2.0 * double(m * k * n) * double(st.iterations());
  st.counters["eff_GOPs"] = benchmark::Counter(ops, benchmark::Counter::kIsRate);
  st.counters["useful_GOPs"] = benchmark::Counter(ops * (1.0 - sparsity), benchmark::Counter::kIsRate);
}

void pack(benchmark::State& st, const Kernel* kr, int64_t m) {
  const int64_t k = 768, ld = xt_ld(kr->dtype, m, kr->layout, k);
  const size_t es = kr->dtype == DType::S8 ? 1 : 4;
  std::vector<uint8_t> x(size_t(m * k) * es, 1);
  LineVector<uint8_t> xt(xt_bytes(kr->dtype, m, k, kr->layout));
  for (auto _ : st) {
    kr->pack(x.data(), m, k, 0, k, xt.data(), ld);
    benchmark::ClobberMemory();
  }
  st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(m * k * es));
}

struct Case {
  bool int8;
  const char* pattern;
  double sparsity;
  int64_t m, k, n;
  Activation activation = Activation::None;
  bool u8_out = false;  // INT8: requantized u8 output, as a layer that feeds the next INT8 layer
};

// Weights pruned as `spruce bench` prunes them: exactly that fraction of random whole blocks, or
// N random of every M.
MatrixF pruned(const Case& c) {
  std::mt19937 rng(3);
  return bench::pruned_weights(c.n, c.k, Pattern::parse(c.pattern), c.sparsity, rng);
}

void op(benchmark::State& st, Case c, bool dense) {
  auto wf = pruned(c);
  Matrix<int8_t> wq;
  QuantParams q;
  q.w_scales = quantize_weights(wf.view(), wq);
  q.x.zero_point = 128;
  if (c.u8_out) q.out = OutType::U8, q.y_scale = 0.05f, q.y_zero_point = 10;
  // 64-byte aligned, as a framework's tensors (src/bench/bench.cpp says why).
  LineVector<float> xf(size_t(c.m * c.k), 0.5f), y(size_t(c.m * c.n));
  LineVector<uint8_t> xq(xf.size(), 131);
  SparseLinearOptions o;
  o.threads = 1;
  o.fallback = Fallback::Never;
  o.activation = c.activation;
  std::unique_ptr<SparseLinear> sp;
  std::unique_ptr<runtime::DenseMatmul> dn;
  if (dense)
    dn = std::make_unique<runtime::DenseMatmul>(c.int8,
                                                c.int8 ? static_cast<const void*>(wq.data.data()) : wf.data.data(), c.n,
                                                c.k, nullptr, c.activation, &q);
  else if (c.int8)
    sp = std::make_unique<SparseLinear>(wq.data.data(), c.n, c.k, Pattern::parse(c.pattern), q, nullptr, o);
  else
    sp = std::make_unique<SparseLinear>(wf.data.data(), c.n, c.k, Pattern::parse(c.pattern), nullptr, o);
  for (auto _ : st) {
    if (dense)
      dn->run(c.int8 ? static_cast<const void*>(xq.data()) : xf.data(), c.m, c.k, y.data(), c.n);
    else if (c.int8)
      sp->run(xq.data(), c.m, y.data());
    else
      sp->run(xf.data(), c.m, y.data());
    benchmark::ClobberMemory();
  }
  st.SetLabel(dense ? dn->impl(c.m) : sp->impl(c.m));
  st.counters["eff_GOPs"] =
      benchmark::Counter(2.0 * double(c.m * c.k * c.n) * double(st.iterations()), benchmark::Counter::kIsRate);
}

const Case kCases[] = {
    {true, "4x1", 0.9, 128, 768, 768},
    {true, "4x1", 0.9, 128, 768, 3072},
    {true, "4x1", 0.9, 128, 3072, 768},
    {true, "4x1", 0.9, 384, 768, 768},
    {true, "4x1", 0.9, 384, 768, 3072},
    {true, "4x1", 0.9, 384, 3072, 768},
    {true, "4x16", 0.85, 2048, 1024, 1024},
    {true, "4x16", 0.85, 2048, 1024, 512},
    {true, "2:4", 0.5, 384, 768, 3072},
    {true, "4x1", 0.9, 1, 1024, 1024},
    {true, "4x1", 0.9, 16, 1024, 1024},
    {false, "4x1", 0.9, 128, 768, 768},
    {false, "4x1", 0.9, 384, 768, 3072},
    {false, "1x1", 0.9, 128, 768, 768},
    {false, "1x1", 0.9, 384, 768, 3072},
    {false, "16x1", 0.9, 384, 768, 3072},
    // AMX: the tile-aligned patterns, and m = 4 (the VNNI route below 16 rows).
    {true, "16x64", 0.9, 128, 768, 768},
    {true, "16x64", 0.9, 384, 768, 3072},
    {true, "16x64", 0.9, 384, 3072, 768},
    {true, "16x4", 0.9, 128, 768, 768},
    {true, "16x4", 0.9, 384, 768, 3072},
    {true, "16x4", 0.9, 384, 3072, 768},
    {true, "1x4", 0.9, 128, 768, 768},
    {true, "1x1", 0.9, 128, 768, 768},
    {true, "4x1", 0.9, 4, 1024, 1024},
    // The epilogue: MiniLM's FFN up-projection (a pass of 1024 tokens) bare, and with GELU into u8.
    {true, "4x1", 0.9, 1024, 384, 1536},
    {true, "4x1", 0.9, 1024, 384, 1536, Activation::GELU, true},
};

// One DLRM sample: 351 pair dots of 27 x 128 floats and 479 u8 outputs. Warm: 14 KB in L1/L2.
void dot_interaction(benchmark::State& st, const Kernel* kr) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<std::vector<float>> v(27, std::vector<float>(128));
  std::vector<const float*> ptrs;
  for (auto& x : v) {
    for (float& f : x) f = n(rng);
    ptrs.push_back(x.data());
  }
  std::vector<uint8_t> out(479);
  const U8Quant q = u8_quant_for_range(-20.f, 20.f);
  for (auto _ : st) {
    kr->dot_interaction()(ptrs.data(), 27, 128, q, out.data());
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["samples/s"] = benchmark::Counter(double(st.iterations()), benchmark::Counter::kIsRate);
  st.counters["GFLOP/s"] =
      benchmark::Counter(double(st.iterations()) * 351 * 128 * 2 * 1e-9, benchmark::Counter::kIsRate);
}

// The same sample over row-wise INT8 vectors: 26 s8 rows and the dense row, quantized per call.
void s8_table_interaction(benchmark::State& st, const Kernel* kr) {
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> dense(128), scales(26);
  for (float& f : dense) f = n(rng);
  std::vector<std::vector<int8_t>> rows(26, std::vector<int8_t>(128));
  std::vector<const int8_t*> ptrs;
  for (size_t t = 0; t < rows.size(); ++t) {
    for (auto& x : rows[t]) x = int8_t(int(rng() % 255) - 127);
    scales[t] = 0.01f * float(1 + t % 3);
    ptrs.push_back(rows[t].data());
  }
  std::vector<uint8_t> out(479), scratch(size_t(s8_table_scratch_bytes(27, 128)));
  const U8Quant q = u8_quant_for_range(-20.f, 20.f);
  for (auto _ : st) {
    kr->s8_table_dot_interaction()(dense.data(), ptrs.data(), scales.data(), 27, 128, q, out.data(), scratch.data());
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["samples/s"] = benchmark::Counter(double(st.iterations()), benchmark::Counter::kIsRate);
}

// The operator on a DLRM batch, one thread: 26 tables of 10,000 rows (5 MB each in f32, 1.3 MB
// in INT8: cold beyond the caches) indexed by Zipf-like ids as in spruce's synthetic clicks, plus
// the quantization.
void dot_interaction_op(benchmark::State& st, int64_t batch, bool int8_tables) {
  constexpr int64_t kTables = 26, kRows = 10000, kDim = 128;
  std::mt19937 rng(2);
  std::normal_distribution<float> n(0.f, 0.3f);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<std::vector<float>> rows(kTables, std::vector<float>(size_t(kRows * kDim)));
  std::vector<EmbeddingTable> tables;
  for (auto& t : rows) {
    for (float& f : t) f = n(rng);
    tables.push_back({t.data(), kRows});
  }
  std::vector<std::vector<int8_t>> s8_rows;
  std::vector<std::vector<float>> row_scales;
  std::vector<Int8EmbeddingTable> s8_tables;
  if (int8_tables)
    for (auto& t : rows) {
      s8_rows.emplace_back(t.size()), row_scales.emplace_back(size_t(kRows));
      quantize_embedding_rows(t.data(), kRows, kDim, s8_rows.back().data(), row_scales.back().data());
      s8_tables.push_back({s8_rows.back().data(), row_scales.back().data(), kRows});
    }
  std::vector<float> dense(size_t(batch * kDim));
  for (float& f : dense) f = n(rng);
  std::vector<int64_t> ids(size_t(batch * kTables));
  for (auto& id : ids) id = std::min<int64_t>(kRows - 1, int64_t(std::pow(u(rng), 3.0) * kRows));
  const int64_t width = interaction_width(kDim, kTables);
  std::vector<uint8_t> out(size_t(batch * width));
  DotInteractionArgs a;
  a.batch = batch, a.dim = kDim, a.dense = dense.data(), a.ld_dense = kDim, a.tables = tables, a.ids = ids.data();
  a.ld_ids = kTables, a.quant = u8_quant_for_range(-5.f, 5.f), a.out = out.data(), a.ld_out = width, a.threads = 1;
  if (int8_tables) a.tables = {}, a.int8_tables = s8_tables;
  for (auto _ : st) {
    dot_interaction_u8(a);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["samples/s"] = benchmark::Counter(double(st.iterations() * batch), benchmark::Counter::kIsRate);
}

// One head of one sequence (128 tokens, head size 32: MiniLM's and BERT-base's sequence), warm.
void attention_head(benchmark::State& st, const Kernel* kr, int64_t head_size) {
  const int64_t tokens = 128;
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> qkv(size_t(3 * tokens * head_size)), out(size_t(tokens * head_size));
  for (float& f : qkv) f = n(rng);
  LineVector<float> scratch(size_t(attention_scratch_floats(tokens, head_size)));
  AttentionTask t;
  t.q = qkv.data(), t.k = t.q + tokens * head_size, t.v = t.k + tokens * head_size;
  t.ld_q = t.ld_k = t.ld_v = t.ld_out = head_size;
  t.scale = 1.f / std::sqrt(float(head_size));
  t.tokens = tokens, t.head_size = head_size, t.out = out.data(), t.scratch = scratch.data();
  for (auto _ : st) {
    kr->attention()(t);
    benchmark::DoNotOptimize(out.data());
  }
  const double flops = 4.0 * double(tokens * tokens * head_size);  // QK and PV multiply-adds
  st.counters["GFLOP/s"] = benchmark::Counter(flops * double(st.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

// The operator on one MiniLM layer's batch: 32 sequences x 128 tokens x 12 heads of 32, in FP32
// or with BF16 or INT8 products where the CPU has them.
void attention_op(benchmark::State& st, AttentionPrecision precision) {
  const int64_t batch = 32, tokens = 128, heads = 12, d = 32, width = heads * d;
  std::mt19937 rng(4);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> qkv(size_t(batch * tokens * 3 * width)), out(size_t(batch * tokens * width));
  for (float& f : qkv) f = n(rng);
  AttentionArgs a;
  a.batch = batch, a.tokens = tokens, a.heads = heads, a.head_size = d;
  a.q = qkv.data(), a.k = a.q + width, a.v = a.k + width, a.ld_q = a.ld_k = a.ld_v = 3 * width;
  a.out = out.data(), a.ld_out = width, a.threads = 1, a.precision = precision;
  for (auto _ : st) {
    attention_f32(a);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["sequences/s"] = benchmark::Counter(double(st.iterations() * batch), benchmark::Counter::kIsRate);
  st.SetLabel(attention_kernel_name(d, precision));
}

// Residual + LayerNorm over one pass of MiniLM (1024 tokens x 384), warm: a kernel on all rows,
// or the operator on 1 thread; bytes/s counts x, residual and out once each.
void layer_norm(benchmark::State& st, const Kernel* kr) {
  const int64_t rows = 1024, width = 384;
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.f, 1.f);
  std::vector<float> x(size_t(rows * width)), res(x.size()), out(x.size()), gamma(static_cast<size_t>(width)),
      beta(static_cast<size_t>(width));
  for (auto* v : {&x, &res, &gamma, &beta})
    for (float& f : *v) f = n(rng);
  LayerNormArgs a;
  a.rows = rows, a.width = width, a.x = x.data(), a.ld_x = width, a.residual = res.data(), a.ld_residual = width;
  a.gamma = gamma.data(), a.beta = beta.data(), a.eps = 1e-12f, a.out = out.data(), a.ld_out = width, a.threads = 1;
  LayerNormTask t;
  t.x = a.x, t.ld_x = width, t.residual = a.residual, t.ld_residual = width, t.gamma = a.gamma, t.beta = a.beta;
  t.eps = a.eps, t.rows = rows, t.width = width, t.out = a.out, t.ld_out = width;
  for (auto _ : st) {
    if (kr)
      kr->layer_norm()(t);
    else
      layer_norm_f32(a);
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["GB/s"] = benchmark::Counter(3.0 * double(x.size() * sizeof(float)) * double(st.iterations()) * 1e-9,
                                           benchmark::Counter::kIsRate);
}

const int kRegistered = [] {
  benchmark::RegisterBenchmark("operator/layer-norm/1024x384", layer_norm, nullptr)->Unit(benchmark::kMicrosecond);
  for (const Kernel& kr : registry())
    if (kr.op == Op::LayerNorm && runs_here(kr))
      benchmark::RegisterBenchmark((std::string(kr.name) + "/1024x384").c_str(), layer_norm, &kr)
          ->Unit(benchmark::kMicrosecond);
  for (auto p : {AttentionPrecision::F32, AttentionPrecision::BF16, AttentionPrecision::Int8}) {
    const std::string suffix = p == AttentionPrecision::F32 ? "" : std::string("-") + attention_precision_name(p);
    benchmark::RegisterBenchmark(("operator/attention" + suffix + "/b32x128x12x32").c_str(), attention_op, p)
        ->Unit(benchmark::kMillisecond);
  }
  for (const Kernel& kr : registry())
    if (kr.op == Op::Attention && runs_here(kr))
      for (int64_t d : {32, 64})
        benchmark::RegisterBenchmark((std::string(kr.name) + "/128x" + std::to_string(d)).c_str(), attention_head, &kr,
                                     d)
            ->Unit(benchmark::kMicrosecond);
  benchmark::RegisterBenchmark("operator/dot-interaction-u8/b2048/26x10000x128", dot_interaction_op, 2048, false)
      ->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark("operator/dot-interaction-u8/int8-tables/b2048/26x10000x128", dot_interaction_op, 2048,
                               true)
      ->Unit(benchmark::kMillisecond);
  for (const Kernel& kr : registry())
    if (kr.op == Op::DotInteraction && kr.isa <= max_isa())
      benchmark::RegisterBenchmark((std::string(kr.name) + "/27x128").c_str(),
                                   kr.dtype == DType::F32 ? dot_interaction : s8_table_interaction, &kr);
  for (const Case& c : kCases) {
    const std::string shape = std::string(c.int8 ? "int8/" : "f32/") + c.pattern + "@" +
                              std::to_string(int(c.sparsity * 100)) + "/" + std::to_string(c.m) + "x" +
                              std::to_string(c.k) + "x" + std::to_string(c.n) +
                              (c.activation == Activation::GELU ? "/gelu" : "") + (c.u8_out ? "/u8" : "");
    benchmark::RegisterBenchmark(("operator/" + shape).c_str(), op, c, false)->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("onednn/" + shape).c_str(), op, c, true)->Unit(benchmark::kMicrosecond);
  }
  for (const Kernel& kr : registry()) {
    if (kr.isa > max_isa() || kr.op != Op::Spmm) continue;
    const bool ref = kr.isa == Isa::Scalar;
    for (int64_t m : {1, 2, 4, 8, 16, 32, 64, 128}) {
      if ((ref && m != 16) || (kr.max_m && m > kr.max_m)) continue;
      std::string name = std::string(kr.name) + "/m" + std::to_string(m) + "/768x768/" +
                         (kr.weights == WeightFormat::Octets ? "2:4" : "90%");
      benchmark::RegisterBenchmark(name.c_str(), spmm, &kr, m);
    }
    // Packing X for m = 16 and 128, or for the most rows a small-m kernel takes.
    for (int64_t m : kr.max_m ? std::vector<int64_t>{kr.max_m} : std::vector<int64_t>{16, 128})
      benchmark::RegisterBenchmark((std::string(kr.name) + "/pack/m" + std::to_string(m) + "/k768").c_str(), pack, &kr,
                                   m);
  }
  return 0;
}();

}  // namespace
}  // namespace spruce::kernels

BENCHMARK_MAIN();
