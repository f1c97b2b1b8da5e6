// An experiment, not part of the build: does writing a staged output band to Y with streaming
// (non-temporal) stores pay once something reads Y? Times an INT8 SparseLinear with an FP32 output
// (the producer) and then quantize_u8 over Y (the consumer, as an INT8 next layer begins), one
// thread, and prints the medians. The streaming variant needs a patch to run_banded in
// src/runtime/sparse_linear.cpp (not kept): when SPRUCE_NT_COPY is set and the band's bytes are a
// multiple of 64, copy each row with _mm_stream_si128 from the stage to Y, then _mm_sfence().
//
//   B=build; g++ -O2 -std=c++20 -fopenmp -Iinclude bench/experiments/staged_output_consumer.cpp \
//     $B/src/runtime/libspruce_runtime.a $B/src/kernels/libspruce_kernels.a $B/src/core/libspruce_core.a \
//     -ldnnl -o /tmp/pair
//   /tmp/pair 128 768 3072 4x1 0.9 200; SPRUCE_NT_COPY=1 /tmp/pair 128 768 3072 4x1 0.9 200   # M K N pattern sparsity
//   reps
//
// Zen 4 (family 25), 2026-12-06, medians of two rounds: docs/performance/zen4.md ("Tried:
// streaming stores for the staged output").
#include <omp.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <spruce/quant.hpp>
#include <spruce/spmm.hpp>
#include <vector>
using namespace spruce;
int main(int argc, char** argv) {
  int64_t m = atoll(argv[1]), k = atoll(argv[2]), n = atoll(argv[3]);
  Pattern p = Pattern::parse(argv[4]);
  double sp = atof(argv[5]);
  int reps = argc > 6 ? atoi(argv[6]) : 50;
  std::mt19937 g(1);
  std::vector<int8_t> w(n * k);
  for (auto& v : w) v = int8_t(int(g() % 255) - 127);
  // prune blocks p.rows x p.cols at random
  int64_t br = p.block_rows(n), bc = p.block_cols(k);
  for (int64_t i = 0; i < n; i += br)
    for (int64_t j = 0; j < k; j += bc)
      if (std::uniform_real_distribution<>(0, 1)(g) < sp)
        for (int64_t a = i; a < std::min(n, i + br); ++a)
          for (int64_t b = j; b < std::min(k, j + bc); ++b) w[a * k + b] = 0;
  QuantParams q;
  q.x = U8Quant{0.05f, 3};
  q.w_scales.assign(n, 0.01f);
  q.out = OutType::F32;
  SparseLinearOptions o;
  o.threads = 1;
  o.fallback = Fallback::Never;
  SparseLinear op(w.data(), n, k, p, q, nullptr, o);
  uint8_t* x = (uint8_t*)aligned_alloc(64, m * k);
  for (int64_t i = 0; i < m * k; ++i) x[i] = g() % 256;
  float* y = (float*)aligned_alloc(64, m * n * 4);
  uint8_t* yq = (uint8_t*)aligned_alloc(64, m * n);
  std::vector<double> tp, tc;
  for (int r = 0; r < reps; ++r) {
    auto t0 = std::chrono::steady_clock::now();
    op.run(x, m, y);
    auto t1 = std::chrono::steady_clock::now();
    quantize_u8(y, m * n, U8Quant{0.05f, 3}, yq);
    auto t2 = std::chrono::steady_clock::now();
    tp.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    tc.push_back(std::chrono::duration<double, std::micro>(t2 - t1).count());
  }
  std::sort(tp.begin(), tp.end());
  std::sort(tc.begin(), tc.end());
  printf("%s %ldx%ldx%ld staged=%d producer %.1f consumer %.1f total %.1f us (sum %d)\n",
         getenv("SPRUCE_NT_COPY") ? "NT " : "RFO", m, k, n, (int)op.stages_output(m), tp[reps / 2], tc[reps / 2],
         tp[reps / 2] + tc[reps / 2], yq[7]);
}
