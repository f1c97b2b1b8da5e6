// f32-spmm-{1,2,4,8}x1-avx2: f32 activations x f32 strip-CSR weights, for CPUs without AVX-512.
//
// As f32_spmm_avx512.cpp with 8-float vectors: for each nonzero input channel k of a strip, 8*V
// consecutive m of xt row k are loaded once and multiplied into the strip's H rows with the weight
// broadcast from memory. H*V = 8 accumulators stay in registers (two FMA pipes, latency 4):
// 8x1, 4x2, 2x4, 1x8. Strips are finished in panels of 8 output channels.
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx2.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

constexpr int kTileLd = 64;  // tile row stride: up to 8 vectors of m

template <int H>
constexpr int vmax() {
  return 8 / H;
}

template <int H, int V>
inline void strip(const float* xc, int64_t ld, const int32_t* k, const float* w, int64_t nj, float* tile) {
  __m256 acc[H][V];
  for (auto& row : acc)
    for (auto& v : row) v = _mm256_setzero_ps();
  for (int64_t j = 0; j < nj; ++j) {
    const float* xr = xc + k[j] * ld;
    __m256 xv[V];
    for (int v = 0; v < V; ++v) xv[v] = _mm256_loadu_ps(xr + 8 * v);
    for (int r = 0; r < H; ++r) {
      const __m256 wb = _mm256_broadcast_ss(w + j * H + r);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm256_fmadd_ps(wb, xv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < H; ++r)
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(tile + r * kTileLd + 8 * v, acc[r][v]);
}

// One panel of 8 output channels (strips [s, se)) for 8*V rows from m0, then its epilogue.
template <int H, int V>
void panel(const StripView& w, const SpmmArgs& a, int64_t s, int64_t se, int64_t m0, float* tile) {
  const float* xc = static_cast<const float*>(a.xt) + m0;
  const float* wv = static_cast<const float*>(w.w);
  for (int64_t t = s; t < se; ++t) {
    const int64_t j0 = w.ptr[t];
    strip<H, V>(xc, a.ldxt, w.k + j0, wv + j0 * H, w.ptr[t + 1] - j0, tile + (t - s) * H * kTileLd);
  }
  const int64_t n0 = s * H;
  store_panel8(tile, kTileLd, n0, std::min<int64_t>(w.rows, se * H) - n0, m0, std::min<int64_t>(8 * V, a.m1 - m0), a);
}

}  // namespace

// Panel outer, m inner: a panel's weights stay in L1 while xt streams from L2.
template <int H>
void f32_spmm_avx2(const StripView& w, const SpmmArgs& a) {
  constexpr int V = vmax<H>(), P = 8 / H;
  alignas(32) float tile[8 * kTileLd];
  for (int64_t s = a.s0; s < a.s1; s += P) {
    const int64_t se = std::min<int64_t>(a.s1, s + P);
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += 8 * V)
      with_rows_upto<V>((a.m1 - m0 + 7) / 8, [&](auto v) { panel<H, decltype(v)::value>(w, a, s, se, m0, tile); });
  }
}

template void f32_spmm_avx2<1>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx2<2>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx2<4>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx2<8>(const StripView&, const SpmmArgs&);

// xt[k][m] = x[m][k] through 8x8 register transposes; padding columns (to ldxt) are zero.
void pack_f32_avx2(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const float* xs = static_cast<const float*>(x);
  float* out = static_cast<float*>(xt);
  for (int64_t m0 = 0; m0 < ldxt; m0 += 8)
    for (int64_t kb = k0; kb < k1; kb += 8) {
      const int64_t kn = std::min<int64_t>(8, k1 - kb);
      const __m256i km = lanes_below(kn);
      __m256 r[8];
      for (int i = 0; i < 8; ++i)
        r[i] = m0 + i < m ? _mm256_maskload_ps(xs + (m0 + i) * lda + kb, km) : _mm256_setzero_ps();
      transpose8x8(r);
      for (int c = 0; c < kn; ++c) _mm256_storeu_ps(out + (kb + c) * ldxt + m0, r[c]);
    }
}

}  // namespace spruce::kernels::x86
