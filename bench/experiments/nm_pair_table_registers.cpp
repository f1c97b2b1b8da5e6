// An experiment, not part of the build: the pair-table idea of nm_pair_table.cpp (lanes over 16
// rows of X, a table of the 36 ways two 2:4 groups pick their activations, one 64-byte table load
// per vpdpbusd), at its best case: 24 accumulators held in registers (6 channels x 4 blocks of 16
// rows), each channel's weights broadcast once for the 4 blocks, the table in L1. Beside it the
// same loop with the activations in registers (no table loads), which runs at oneDNN's pace of
// one vpdpbusd a cycle. Timing only (no results are checked): it bounds what the layout can give.
//
//   clang++ -O3 -march=icelake-server -o /tmp/nm_pair_table_registers bench/experiments/nm_pair_table_registers.cpp
//   /tmp/nm_pair_table_registers
//
// Zen 4 (family 25 model 17), 2026-12-07, machine idle, two runs: the table loop 0.40-0.44 ns per
// vpdpbusd, the register loop 0.28-0.30 ns (one a cycle). So a table load costs ~0.45 cycles a
// vpdpbusd even when nothing else does: 2:4 halves the vpdpbusd count, so this layout's ceiling is
// about 2 / 1.45 = 1.4x dense before the table's construction and the output transposes, no more
// than the shuffle kernel (s8-spmm-4of8) already reaches (1.18-1.33x). GCC 12 spills the
// accumulator array here; build it with clang.
#include <immintrin.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <vector>
// per (channel, q): record {int8 w[4]; uint32 off}; table: 2 q x 4 mblocks x 36 x 64B = 18KB
struct Rec {
  int32_t w;
  uint32_t off;
};
int main() {
  const int NCH = 6, MB = 4, Q = 2;
  alignas(64) static uint8_t table[Q][MB][36][64];
  std::mt19937 rng(1);
  for (auto& a : table)
    for (auto& b : a)
      for (auto& c : b)
        for (auto& d : c) d = rng();
  const int NREC = 4096;  // channels*q records, cycled
  std::vector<Rec> recs(NREC);
  for (int i = 0; i < NREC; ++i) recs[i] = {(int32_t)rng(), (uint32_t)(((i % Q) * MB * 36 + rng() % 36) * 64)};
  long iters = 200000;
  __m512i acc[MB][NCH];
  for (auto& a : acc)
    for (auto& b : a) b = _mm512_setzero_si512();
  auto t0 = std::chrono::steady_clock::now();
  const uint8_t* T = &table[0][0][0][0];
  for (long it = 0; it < iters; ++it) {
    const Rec* r = &recs[(it & 511) * NCH];
#pragma GCC unroll 6
    for (int c = 0; c < NCH; ++c) {
      __m512i w = _mm512_set1_epi32(r[c].w);
      const uint8_t* t = T + r[c].off;
#pragma GCC unroll 4
      for (int b = 0; b < MB; ++b) acc[b][c] = _mm512_dpbusd_epi32(acc[b][c], _mm512_load_si512(t + b * 36 * 64), w);
    }
  }
  double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  __m512i s = _mm512_setzero_si512();
  for (auto& a : acc)
    for (auto& b : a) s = _mm512_add_epi32(s, b);
  double n = (double)iters * NCH * MB;
  printf("table: %.3f ns per vpdpbusd (sum %d)\n", ns / n, _mm512_reduce_add_epi32(s));
  // baseline: register-only vpdpbusd, 24 accs, broadcast from memory shared
  for (auto& a : acc)
    for (auto& b : a) b = _mm512_setzero_si512();
  __m512i x[MB];
  for (int b = 0; b < MB; ++b) x[b] = _mm512_load_si512(&table[0][b][0][0]);
  t0 = std::chrono::steady_clock::now();
  for (long it = 0; it < iters; ++it) {
    const Rec* r = &recs[(it & 511) * NCH];
#pragma GCC unroll 6
    for (int c = 0; c < NCH; ++c) {
      __m512i w = _mm512_set1_epi32(r[c].w);
#pragma GCC unroll 4
      for (int b = 0; b < MB; ++b) acc[b][c] = _mm512_dpbusd_epi32(acc[b][c], x[b], w);
    }
  }
  ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  s = _mm512_setzero_si512();
  for (auto& a : acc)
    for (auto& b : a) s = _mm512_add_epi32(s, b);
  printf("regs : %.3f ns per vpdpbusd (sum %d)\n", ns / n, _mm512_reduce_add_epi32(s));
}
