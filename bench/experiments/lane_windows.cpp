// An experiment, not part of the build: the lane-window kernel's loop (s8_spmm_lane_windows_avx512vnni.cpp)
// standalone, to choose its window width, row block and chunk grouping. Panels of 16 output channels,
// one per lane; each lane picks 4 input channels per chunk inside a window of WIN; windows outer,
// rows of X inner, in blocks of BLOCK rows. It checks itself against a scalar product (VARIANT 0),
// then prints the median time and ns per chunk and row.
//
//   g++ -O3 -std=c++20 -march=icelake-server -DWIN=64 -o /tmp/lw bench/experiments/lane_windows.cpp
//   /tmp/lw M K N REPS BLOCK [BLOCK_WIDTH DENSITY]   # e.g. /tmp/lw 16 768 3072 300 8; 1x4: ... 8 4
//   -DWIN=128 (vpermi2b over two loads), -DVARIANT=1|2 (vpermb on one half | no permute: timing
//   only), -DQUANT=0.5 -DALIGN=1 (windows start at the next nonzero, chunks for that quantile of
//   lanes), -DG=1|2|4 (chunks of a window held in registers at a time).
//
// Zen 4 (family 25), 2026-12-06, idle: 16x768x3072 1x1 @ 90%, block 8: WIN=64 52 us (0.45 ns per
// chunk and row, 51% of slots filled), WIN=128 60 us (0.63 ns, 62%); VARIANT=1 0.43 ns, VARIANT=2
// 0.39-0.43; QUANT 0.5-0.9 with ALIGN=1 57-70 us (fewer chunks per window). 16x3072x768: block 8
// 51 us, block 7 (7 + 7 + 2 rows) 59-73 us. docs/performance/zen4.md, "Lane windows".
#include <immintrin.h>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>
#ifndef WIN
#define WIN 128
#endif
#ifndef QUANT
#define QUANT 1.0
#endif
#ifndef ALIGN
#define ALIGN 1
#endif
#ifndef G
#define G 4
#endif
#ifndef VARIANT
#define VARIANT 0
#endif
#if VARIANT == 0
#if WIN == 128
#define PERM(lo, s, hi) _mm512_permutex2var_epi8(lo, s, hi)
#else
#define PERM(lo, s, hi) _mm512_permutexvar_epi8(s, lo)
#endif
#elif VARIANT == 1
#define PERM(lo, s, hi) _mm512_permutexvar_epi8(s, lo)
#elif VARIANT == 2
#define PERM(lo, s, hi) _mm512_xor_si512(lo, s)
#endif
struct Packed {
  int64_t n, k;
  std::vector<int64_t> wptr;  // per panel: first window entry
  std::vector<int32_t> wk;    // per window entry: window start
  std::vector<int32_t> wc;    // per window entry: first chunk
  std::vector<uint8_t> sel;   // 64 per chunk
  std::vector<int8_t> w;      // 64 per chunk
};
Packed pack(const std::vector<int8_t>& W, int64_t n, int64_t k) {
  Packed p{n, k};
  int64_t chunks = 0;
  p.wptr.push_back(0);
  for (int64_t p0 = 0; p0 < n; p0 += 16) {
    // Each row's nonzero input channels, taken in order; a window starts at the first untaken one
    // of any row and each row takes up to 4 C of its untaken ones inside it.
    std::vector<std::vector<int>> nz(16);
    std::vector<size_t> next(16, 0);
    for (int r = 0; r < 16 && p0 + r < n; ++r)
      for (int64_t c = 0; c < k; ++c)
        if (W[(p0 + r) * k + c]) nz[r].push_back(int(c));
    for (;;) {
      int64_t w0 = k;
      for (int r = 0; r < 16; ++r)
        if (next[r] < nz[r].size()) w0 = std::min<int64_t>(w0, nz[r][next[r]]);
      if (w0 == k) break;
      w0 = w0 / ALIGN * ALIGN;
      std::vector<int> cnt(16, 0);
      for (int r = 0; r < 16; ++r)
        for (size_t j = next[r]; j < nz[r].size() && nz[r][j] < w0 + WIN; ++j) ++cnt[r];
      std::vector<int> sorted = cnt;
      std::sort(sorted.begin(), sorted.end());
      int take = sorted[std::min(15, int(QUANT * 16))];
      int nc = std::max(1, (take + 3) / 4);
      p.wk.push_back(int32_t(w0));
      p.wc.push_back(int32_t(chunks));
      for (int c = 0; c < nc; ++c, ++chunks)
        for (int r = 0; r < 16; ++r)
          for (int t = 0; t < 4; ++t) {
            size_t j = next[r] + c * 4 + t;
            bool have = c * 4 + t < cnt[r];
            p.sel.push_back(have ? nz[r][j] - w0 : 0);
            p.w.push_back(have ? W[(p0 + r) * k + nz[r][j]] : 0);
          }
      for (int r = 0; r < 16; ++r) next[r] += std::min(cnt[r], nc * 4);
    }
    p.wptr.push_back(int64_t(p.wk.size()));
  }
  p.wc.push_back(int32_t(chunks));
  return p;
}
template <int M>
__attribute__((target("avx512f,avx512bw,avx512vnni,avx512vbmi"))) void kernel(const Packed& p, const uint8_t* x,
                                                                              int64_t ldx, const float* scale, float* y,
                                                                              int64_t ldy) {
  for (int64_t pn = 0; pn < int64_t(p.wptr.size()) - 1; ++pn) {
    __m512i acc[M];
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) acc[m] = _mm512_setzero_si512();
    for (int64_t e = p.wptr[pn]; e < p.wptr[pn + 1]; ++e) {
      const uint8_t* xw = x + p.wk[e];
      int64_t c = p.wc[e];
      const int64_t c1 = p.wc[e + 1];
      auto run = [&](auto cnt) __attribute__((always_inline)) {
        constexpr int C = decltype(cnt)::value;
        const uint8_t* xr = xw;
        asm("" : "+r"(xr));  // not loop-invariant to the compiler: no hoisting of 32 loads
        __m512i s[C], q[C];
#pragma GCC unroll 4
        for (int i = 0; i < C; ++i) {
          s[i] = _mm512_loadu_si512(p.sel.data() + (c + i) * 64);
          q[i] = _mm512_loadu_si512(p.w.data() + (c + i) * 64);
        }
#pragma GCC unroll 16
        for (int m = 0; m < M; ++m) {
          const __m512i lo = _mm512_loadu_si512(xr + m * ldx);
#if WIN == 128
          const __m512i hi = _mm512_loadu_si512(xr + m * ldx + 64);
#endif
#pragma GCC unroll 4
          for (int i = 0; i < C; ++i) acc[m] = _mm512_dpbusd_epi32(acc[m], PERM(lo, s[i], hi), q[i]);
        }
      };
#if G == 4
      for (; c + 4 <= c1; c += 4) run(std::integral_constant<int, 4>());
      switch (c1 - c) {
        case 3: run(std::integral_constant<int, 3>()); break;
        case 2: run(std::integral_constant<int, 2>()); break;
        case 1: run(std::integral_constant<int, 1>()); break;
      }
#elif G == 2
      for (; c + 2 <= c1; c += 2) run(std::integral_constant<int, 2>());
      if (c < c1) run(std::integral_constant<int, 1>());
#else
      for (; c < c1; ++c) run(std::integral_constant<int, 1>());
#endif
    }
    const __m512 sc = _mm512_loadu_ps(scale + pn * 16);
#pragma GCC unroll 16
    for (int m = 0; m < M; ++m) _mm512_storeu_ps(y + m * ldy + pn * 16, _mm512_mul_ps(_mm512_cvtepi32_ps(acc[m]), sc));
  }
}
int main(int argc, char** argv) {
  int64_t M = atoi(argv[1]), K = atoi(argv[2]), N = atoi(argv[3]), reps = argc > 4 ? atoi(argv[4]) : 200;
  int block = argc > 5 ? atoi(argv[5]) : 16;
  std::mt19937 rng(1);
  std::vector<int8_t> W(N * K);
  int bw = argc > 6 ? atoi(argv[6]) : 1;  // block width along k (1x1, 1x4)
  double dens = argc > 7 ? atof(argv[7]) : 0.1;
  for (int64_t i = 0; i < N * K; i += bw) {
    bool keep = std::uniform_real_distribution<double>(0, 1)(rng) < dens;
    for (int t = 0; t < bw && i + t < N * K; ++t) W[i + t] = keep ? int8_t(int(rng() % 255) - 127) : 0;
  }
  int64_t ldx = (K + 63) / 64 * 64 + 64;
  std::vector<uint8_t> X(M * ldx, 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t c = 0; c < K; ++c) X[m * ldx + c] = rng() % 256;
  std::vector<float> scale(N, 1.0f), Y(M * N);
  Packed p = pack(W, N, K);
  auto call = [&] {
    for (int64_t m0 = 0; m0 < M; m0 += block) {
      int rows = int(std::min<int64_t>(block, M - m0));
      const uint8_t* x = X.data() + m0 * ldx;
      float* y = Y.data() + m0 * N;
      switch (rows) {
#define R(v) \
  case v: kernel<v>(p, x, ldx, scale.data(), y, N); break;
        R(1) R(2) R(3) R(4) R(5) R(6) R(7) R(8) R(9) R(10) R(11) R(12) R(13) R(14) R(15) R(16)
      }
    }
  };
  call();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int32_t s = 0;
      for (int64_t c = 0; c < K; ++c) s += int32_t(X[m * ldx + c]) * W[n * K + c];
      if (VARIANT == 0 && float(s) != Y[m * N + n]) {
        printf("mismatch m %ld n %ld: %f vs %d\n", m, n, Y[m * N + n], s);
        return 1;
      }
    }
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    auto a = std::chrono::steady_clock::now();
    call();
    t.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  int64_t chunks = p.wc.back();
  printf("%ldx%ldx%ld block %d: median %.1f us (min %.1f), %ld chunks, fill %.2f, %.2f ns per chunk-row\n", M, K, N,
         block, t[t.size() / 2], t[0], chunks,
         double(std::count_if(W.begin(), W.end(), [](int8_t v) { return v != 0; })) / (chunks * 64),
         t[t.size() / 2] * 1000 / (chunks * double(M)));
}
