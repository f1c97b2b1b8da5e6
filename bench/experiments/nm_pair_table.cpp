// An experiment, not part of the build: INT8 2:4 with the lanes over 16 rows of the activations
// instead of 16 output channels, so that no byte shuffle sits beside each vpdpbusd. For every
// block of 16 rows and 64 inputs, a table holds each of the 36 ways two 2:4 groups can pick their
// activations (vpermt2b), 64 bytes each; the kernel then loads one table entry per vpdpbusd, found
// by an offset packed with the weights, and broadcasts the channel's 4 weights from memory.
// It checks itself against a scalar product, then prints its time and the time per vpdpbusd.
//
//   clang++ -O3 -march=icelake-server -o /tmp/nm_pair_table bench/experiments/nm_pair_table.cpp
//   /tmp/nm_pair_table 128 768 768 100            # M K N repetitions
//   clang++ -O3 -march=icelake-server -DFIXED_OFFSETS -o /tmp/nm_fixed bench/experiments/nm_pair_table.cpp
//
// Zen 4 (family 25), 2026-12-05: 465-509 us at 128x768x768 (2.7-3.0 cycles per vpdpbusd), against
// 252 us for s8-spmm-4of8 (1.5 cycles per vpdpbusd + vpshufb pair); with every channel reading the
// same table entry (-DFIXED_OFFSETS: wrong results, timing only) still 299 us. The loads, not the
// shuffles, bound it there, so it was not taken further (docs/performance/zen4.md, the 2:4 row).
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#ifdef FIXED_OFFSETS
#define TABLE_OFFSET (q * 36 * 64)
#else
#define TABLE_OFFSET e.off
#endif

static const int pairs[6][2] = {{0, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 3}};
struct Rec {
  int8_t w[4];
  uint16_t off;
  uint16_t pad;
};

int main(int argc, char** argv) {
  int M = argc > 1 ? atoi(argv[1]) : 128, K = argc > 2 ? atoi(argv[2]) : 768, N = argc > 3 ? atoi(argv[3]) : 768;
  int reps = argc > 4 ? atoi(argv[4]) : 200;
  const int KC = 64, GP = KC / 8;  // group pairs per chunk
  std::mt19937 rng(1);
  std::vector<uint8_t> X(M * K);
  for (auto& x : X) x = rng() & 255;
  std::vector<int8_t> W(N * K, 0);
  std::vector<int> combo(N * (K / 8));
  for (int n = 0; n < N; ++n)
    for (int g = 0; g < K / 8; ++g) {
      int c0 = rng() % 6, c1 = rng() % 6;
      combo[n * (K / 8) + g] = c0 * 6 + c1;
      for (int h = 0; h < 2; ++h) {
        int c = h ? c1 : c0;
        for (int j = 0; j < 2; ++j) {
          int8_t v;
          do v = rng() & 255;
          while (!v);
          W[n * K + g * 8 + h * 4 + pairs[c][j]] = v;
        }
      }
    }
  // pack: for chunk, for n, for gp: record
  int chunks = K / KC;
  std::vector<Rec> P((size_t)chunks * N * GP);
  for (int c = 0; c < chunks; ++c)
    for (int n = 0; n < N; ++n)
      for (int q = 0; q < GP; ++q) {
        int g = c * GP + q, cb = combo[n * (K / 8) + g];
        Rec& r = P[((size_t)c * N + n) * GP + q];
        int c0 = cb / 6, c1 = cb % 6;
        r.w[0] = W[n * K + g * 8 + pairs[c0][0]];
        r.w[1] = W[n * K + g * 8 + pairs[c0][1]];
        r.w[2] = W[n * K + g * 8 + 4 + pairs[c1][0]];
        r.w[3] = W[n * K + g * 8 + 4 + pairs[c1][1]];
        r.off = (uint16_t)((q * 36 + cb) * 64);
        r.pad = 0;
      }
  // permute indices for each combo: dst byte (m*4 + j) <- src byte from [m][8 bytes] (two zmm: m 0-7, 8-15)
  __m512i idx[36];
  for (int cb = 0; cb < 36; ++cb) {
    alignas(64) uint8_t b[64];
    int c0 = cb / 6, c1 = cb % 6;
    for (int m = 0; m < 16; ++m) {
      int pos[4] = {pairs[c0][0], pairs[c0][1], 4 + pairs[c1][0], 4 + pairs[c1][1]};
      for (int j = 0; j < 4; ++j) b[m * 4 + j] = (uint8_t)(m * 8 + pos[j]);
    }
    idx[cb] = _mm512_load_si512(b);
  }
  alignas(64) static uint8_t table[GP * 36 * 64];
  std::vector<int32_t> acc((size_t)N * 16);
  std::vector<int32_t> out((size_t)M * N);
  auto run = [&] {
    for (int mb = 0; mb < M; mb += 16) {
      std::fill(acc.begin(), acc.end(), 0);
      for (int c = 0; c < chunks; ++c) {
        for (int q = 0; q < GP; ++q) {  // gather [m][8] for 16 m
          alignas(64) uint8_t s[128];
          for (int m = 0; m < 16; ++m) memcpy(s + m * 8, &X[(mb + m) * K + c * KC + q * 8], 8);
          __m512i a = _mm512_load_si512(s), b = _mm512_load_si512(s + 64);
          for (int cb = 0; cb < 36; ++cb)
            _mm512_store_si512(table + (q * 36 + cb) * 64, _mm512_permutex2var_epi8(a, idx[cb], b));
        }
        const Rec* r = &P[(size_t)c * N * GP];
        for (int n = 0; n < N; n += 8, r += 8 * GP) {
          __m512i a0 = _mm512_load_si512(&acc[(n + 0) * 16]), a1 = _mm512_load_si512(&acc[(n + 1) * 16]);
          __m512i a2 = _mm512_load_si512(&acc[(n + 2) * 16]), a3 = _mm512_load_si512(&acc[(n + 3) * 16]);
          __m512i a4 = _mm512_load_si512(&acc[(n + 4) * 16]), a5 = _mm512_load_si512(&acc[(n + 5) * 16]);
          __m512i a6 = _mm512_load_si512(&acc[(n + 6) * 16]), a7 = _mm512_load_si512(&acc[(n + 7) * 16]);
#define STEP(A, j)                                                                                                \
  {                                                                                                               \
    const Rec& e = r[(j)*GP + q];                                                                                 \
    A = _mm512_dpbusd_epi32(A, _mm512_load_si512(table + TABLE_OFFSET), _mm512_set1_epi32(*(const int32_t*)e.w)); \
  }
          for (int q = 0; q < GP; ++q) {
            STEP(a0, 0) STEP(a1, 1) STEP(a2, 2) STEP(a3, 3) STEP(a4, 4) STEP(a5, 5) STEP(a6, 6) STEP(a7, 7)
          }
          _mm512_store_si512(&acc[(n + 0) * 16], a0);
          _mm512_store_si512(&acc[(n + 1) * 16], a1);
          _mm512_store_si512(&acc[(n + 2) * 16], a2);
          _mm512_store_si512(&acc[(n + 3) * 16], a3);
          _mm512_store_si512(&acc[(n + 4) * 16], a4);
          _mm512_store_si512(&acc[(n + 5) * 16], a5);
          _mm512_store_si512(&acc[(n + 6) * 16], a6);
          _mm512_store_si512(&acc[(n + 7) * 16], a7);
        }
      }
      for (int n = 0; n < N; ++n)
        for (int m = 0; m < 16 && mb + m < M; ++m) out[(size_t)(mb + m) * N + n] = acc[n * 16 + m];
    }
  };
  run();
  long bad = 0;
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      int32_t s = 0;
      for (int k = 0; k < K; ++k) s += X[m * K + k] * W[n * K + k];
      if (s != out[(size_t)m * N + n]) ++bad;
    }
  printf("mismatches %ld\n", bad);
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    run();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  double dp = (double)M / 16 * N * K / 8;
  printf("M %d K %d N %d: median %.1f us min %.1f us; %.0f vpdpbusd, %.2f ns each\n", M, K, N, t[t.size() / 2], t[0],
         dp, t[t.size() / 2] * 1e3 / dp);
}
