// f32-spmm-{1,2,4,8,16}x1-avx512: f32 activations x f32 strip-CSR weights.
//
// Vectorized over m: for each nonzero input channel k of a strip, 16*V consecutive m of xt row k
// are loaded once and multiplied into the strip's H rows with the weight broadcast from memory
// (vfmadd231ps zmm, zmm, m32bcst). H*V accumulators stay in registers: 1x8, 2x8, 4x4, 8x2, 16x1.
#include <immintrin.h>

#include <algorithm>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

template <int H>
constexpr int vmax() {
  return H >= 16 ? 1 : H >= 8 ? 2 : H >= 4 ? 4 : 8;
}

template <int H, int V>
inline void strip(const float* xc, int64_t ld, const int32_t* k, const float* w, int64_t nj, float* tile) {
  __m512 acc[H][V];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_ps();
  for (int64_t j = 0; j < nj; ++j) {
    const float* xr = xc + k[j] * ld;
    __m512 xv[V];
    for (int v = 0; v < V; ++v) xv[v] = _mm512_loadu_ps(xr + 16 * v);
    for (int r = 0; r < H; ++r) {
      const __m512 wb = _mm512_set1_ps(w[j * H + r]);
      for (int v = 0; v < V; ++v) acc[r][v] = _mm512_fmadd_ps(wb, xv[v], acc[r][v]);
    }
  }
  for (int r = 0; r < H; ++r)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(tile + r * 128 + 16 * v, acc[r][v]);
}

// One panel of 16 output channels (strips [s, se)) for 16*V rows from m0, then its epilogue:
// whole 64-byte rows of Y.
template <int H, int V>
void panel(const StripView& w, const SpmmArgs& a, int64_t s, int64_t se, int64_t m0, float* tile) {
  const float* xc = static_cast<const float*>(a.xt) + m0;
  const float* wv = static_cast<const float*>(w.w);
  for (int64_t t = s; t < se; ++t) {
    const int64_t j0 = w.ptr[t];
    strip<H, V>(xc, a.ldxt, w.k + j0, wv + j0 * H, w.ptr[t + 1] - j0, tile + (t - s) * H * 128);
  }
  const int64_t n0 = s * H;
  store_panel(tile, 128, n0, std::min<int64_t>(w.rows, se * H) - n0, m0, std::min<int64_t>(16 * V, a.m1 - m0), a);
}

// The widest tile that the remaining m needs: nv of V vectors (xt is padded to 16).
template <int H, int V>
void panel_upto(int64_t nv, const StripView& w, const SpmmArgs& a, int64_t s, int64_t se, int64_t m0, float* tile) {
  if constexpr (V == 1)
    panel<H, 1>(w, a, s, se, m0, tile);
  else if (nv >= V)
    panel<H, V>(w, a, s, se, m0, tile);
  else
    panel_upto<H, V - 1>(nv, w, a, s, se, m0, tile);
}

}  // namespace

// Panel outer, m inner: a panel's weights stay in L1 while xt streams from L2.
template <int H>
void f32_spmm_avx512(const StripView& w, const SpmmArgs& a) {
  constexpr int V = vmax<H>(), P = 16 / H;
  alignas(64) float tile[16 * 128];
  for (int64_t s = a.s0; s < a.s1; s += P) {
    const int64_t se = std::min<int64_t>(a.s1, s + P);
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += 16 * V) panel_upto<H, V>((a.m1 - m0 + 15) / 16, w, a, s, se, m0, tile);
  }
}

template void f32_spmm_avx512<1>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx512<2>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx512<4>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx512<8>(const StripView&, const SpmmArgs&);
template void f32_spmm_avx512<16>(const StripView&, const SpmmArgs&);

// xt[k][m] = x[m][k] through 16x16 register transposes; padding columns are zero.
void pack_f32_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const float* xs = static_cast<const float*>(x);
  float* out = static_cast<float*>(xt);
  for (int64_t m0 = 0; m0 < ldxt; m0 += 16)
    for (int64_t kb = k0; kb < k1; kb += 16) {
      const int64_t kn = std::min<int64_t>(16, k1 - kb);
      const __mmask16 km = __mmask16((1u << kn) - 1);
      __m512 r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = m0 + i < m ? _mm512_maskz_loadu_ps(km, xs + (m0 + i) * lda + kb) : _mm512_setzero_ps();
      transpose16x16(r);
      for (int c = 0; c < kn; ++c) _mm512_storeu_ps(out + (kb + c) * ldxt + m0, r[c]);
    }
}

}  // namespace spruce::kernels::x86
