// s8-spmm-4x4-avx512vnni and s8-spmm-1x4-avx512vnni: patterns whose blocks are whole aligned
// quads of input channels (1x4, 4x16, 1x8, ...). xt is in the VNNI-native Quads layout, so one
// 64-byte load gives 16 m x 4 input channels and feeds H vpdpbusd directly: no interleave.
#include <immintrin.h>

#include <algorithm>
#include <utility>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

template <int H>
constexpr int vmax() {
  return H >= 4 ? 4 : 8;
}

// U independent sets of accumulators, used in turn: with few rows and m chunks (1x4 at m <= 32),
// one chain of vpdpbusd would wait on its own latency at every quad.
template <int H, int V>
inline void strip(const uint8_t* xc, int64_t ld, const int32_t* k, const int32_t* wq, int64_t nj, int32_t* tile) {
  constexpr int U = H * V >= 4 ? 1 : 4 / (H * V);
  __m512i acc[U][H][V];
  for (auto& set : acc)
    for (auto& row : set)
      for (auto& v : row) v = _mm512_setzero_si512();
  // The quad starting at input channel c is at xc + (c / 4) * ld * 4 = xc + c * ld (c is a
  // multiple of 4); the strip lists each quad as 4 entries and its H weight dwords.
  auto quad = [&](const int32_t* kp, const int32_t* wg, __m512i(&a)[H][V]) {
    const uint8_t* xr = xc + int64_t(*kp) * ld;
    __m512i xv[V];
    for (int v = 0; v < V; ++v) xv[v] = _mm512_loadu_si512(xr + 64 * v);
    for (int r = 0; r < H; ++r) {
      const __m512i wb = _mm512_set1_epi32(wg[r]);
      for (int v = 0; v < V; ++v) a[r][v] = _mm512_dpbusd_epi32(a[r][v], xv[v], wb);
    }
  };
  // Counted in entries, not pointers: an empty strip may come with k == nullptr.
  int64_t j = 0;
  for (; j + 4 * U <= nj; j += 4 * U, wq += U * H)
    for (int u = 0; u < U; ++u) quad(k + j + 4 * u, wq + u * H, acc[u]);
  // The last quads (fewer than U) with constant set indices, so that the sets stay in registers.
  [&]<int... u>(std::integer_sequence<int, u...>) {
    ((j + 4 * u < nj ? quad(k + j + 4 * u, wq + u * H, acc[u]) : void()), ...);
  }
  (std::make_integer_sequence<int, U - 1>());
  for (int u = 1; u < U; ++u)
    for (int r = 0; r < H; ++r)
      for (int v = 0; v < V; ++v) acc[0][r][v] = _mm512_add_epi32(acc[0][r][v], acc[u][r][v]);
  for (int r = 0; r < H; ++r)
    for (int v = 0; v < V; ++v) _mm512_storeu_si512(tile + r * 128 + 16 * v, acc[0][r][v]);
}

template <int H, int V>
void panel(const StripView& w, const SpmmArgs& a, int64_t s, int64_t se, int64_t m0, int32_t* tile) {
  const uint8_t* xc = static_cast<const uint8_t*>(a.xt) + m0 * 4;
  const int32_t* wq = static_cast<const int32_t*>(w.w);
  for (int64_t t = s; t < se; ++t)
    strip<H, V>(xc, a.ldxt, w.k + w.ptr[t], wq + w.ptr[t] / 4 * H, w.ptr[t + 1] - w.ptr[t], tile + (t - s) * H * 128);
  const int64_t n0 = s * H;
  store_panel(tile, 128, n0, std::min<int64_t>(w.rows, se * H) - n0, m0, std::min<int64_t>(16 * V, a.m1 - m0), a);
}

template <int H, int V>
void panel_upto(int64_t nv, const StripView& w, const SpmmArgs& a, int64_t s, int64_t se, int64_t m0, int32_t* tile) {
  if constexpr (V == 1)
    panel<H, 1>(w, a, s, se, m0, tile);
  else if (nv >= V)
    panel<H, V>(w, a, s, se, m0, tile);
  else
    panel_upto<H, V - 1>(nv, w, a, s, se, m0, tile);
}

template <int H>
void spmm(const StripView& w, const SpmmArgs& a) {
  constexpr int V = vmax<H>(), P = 16 / H;
  alignas(64) int32_t tile[16 * 128];
  for (int64_t s = a.s0; s < a.s1; s += P) {
    const int64_t se = std::min<int64_t>(a.s1, s + P);
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += 16 * V) panel_upto<H, V>((a.m1 - m0 + 15) / 16, w, a, s, se, m0, tile);
  }
}

}  // namespace

void s8_spmm_4x4_avx512vnni(const StripView& w, const SpmmArgs& a) { spmm<4>(w, a); }
void s8_spmm_1x4_avx512vnni(const StripView& w, const SpmmArgs& a) { spmm<1>(w, a); }

// Quads layout: a 16 x 16 dword transpose of 16 rows x 64 input channels per step.
void pack_u8_quads_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  const int64_t q1 = (k1 + 3) / 4;
  for (int64_t m0 = 0; m0 < ldxt; m0 += 16)
    for (int64_t kb = k0; kb < k1; kb += 64) {
      const int64_t kn = std::min<int64_t>(64, k1 - kb);
      const __mmask64 km = kn == 64 ? ~__mmask64(0) : (__mmask64(1) << kn) - 1;
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = m0 + i < m ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi8(km, xs + (m0 + i) * lda + kb))
                          : _mm512_setzero_ps();
      transpose16x16(r);
      for (int64_t c = 0; c < 16 && kb / 4 + c < q1; ++c)
        _mm512_storeu_ps(reinterpret_cast<float*>(out + ((kb / 4 + c) * ldxt + m0) * 4), r[c]);
    }
}

}  // namespace spruce::kernels::x86
