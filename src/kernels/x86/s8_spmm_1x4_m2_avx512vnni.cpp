// s8-spmm-1x4-m2-avx512vnni: INT8 for m <= 2 when every output row keeps its own input channels
// (1x1, 1x4 blocks: the patterns of unstructured and DeepSparse-style pruning), where AVX512_VBMI
// is missing (s8-spmm-1x4-w-m8 and s8-spmm-1x1-w-m32 otherwise).
//
// A vector over m would be mostly empty at m <= 2, and a strip of rows sharing one list of input
// channels lists the union of its rows (a third of the quads for 90% 1x1 over 4 rows). Here each
// of the 16 lanes is one output row walking its own list of quads (the RowLanes format): per
// step, one vpgatherdd per m fetches the 16 rows' activation quads straight from X, and one
// vpdpbusd adds them in. Rows are sorted by list length into panels, so that the lanes of a
// panel run out together; the epilogue gathers the per-channel parameters through the panel's
// row permutation and scatters the outputs to the rows' places.
#include <immintrin.h>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// The epilogue of one panel at one m: lane l holds output channel rows[l] (< 0: padding).
void finish_lanes(__m512i acc, __m512i rows, int64_t m, const SpmmArgs& a) {
  const Epilogue& ep = *a.ep;
  const __mmask16 valid = _mm512_cmpge_epi32_mask(rows, _mm512_setzero_si512());
  if (ep.out != OutType::F32) {
    alignas(64) int32_t v[16], n[16];
    _mm512_store_si512(v, acc);
    _mm512_store_si512(n, rows);
    for (int l = 0; l < 16; ++l)
      if (n[l] >= 0) store_one(v[l], n[l], m, a);
    return;
  }
  // The arithmetic of RowEpilogue and of the scalar epilogue, in the same order.
  const __m512i comp = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), valid, rows, ep.comp, 4);
  const __m512 scale = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, rows, ep.scale, 4);
  __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(acc, comp)), scale);
  if (ep.bias) f = _mm512_add_ps(f, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), valid, rows, ep.bias, 4));
  f = activate(f, ep.act);
  _mm512_mask_i32scatter_ps(static_cast<float*>(a.y) + a.y_at(m, 0), valid, rows, f, 4);
}

template <int M>
void panels(const StripView& w, const SpmmArgs& a) {
  const uint8_t* x = static_cast<const uint8_t*>(a.xt) + a.m0 * a.ldxt;  // Rows layout
  const int32_t* wq = static_cast<const int32_t*>(w.w);
  for (int64_t p = a.s0; p < a.s1; ++p) {
    // Two accumulators per m: vpdpbusd's latency, not the gathers, would bound a single chain.
    __m512i acc[M][2];
    for (auto& pair : acc) pair[0] = pair[1] = _mm512_setzero_si512();
    const int64_t j1 = w.ptr[p + 1];
    int64_t j = w.ptr[p];
    for (; j + 32 <= j1; j += 32) {
      const __m512i k0 = _mm512_loadu_si512(w.k + j), k1 = _mm512_loadu_si512(w.k + j + 16);
      const __m512i w0 = _mm512_loadu_si512(wq + j), w1 = _mm512_loadu_si512(wq + j + 16);
      for (int m = 0; m < M; ++m) {
        acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], _mm512_i32gather_epi32(k0, x + m * a.ldxt, 1), w0);
        acc[m][1] = _mm512_dpbusd_epi32(acc[m][1], _mm512_i32gather_epi32(k1, x + m * a.ldxt, 1), w1);
      }
    }
    if (j < j1) {
      const __m512i k0 = _mm512_loadu_si512(w.k + j), w0 = _mm512_loadu_si512(wq + j);
      for (int m = 0; m < M; ++m)
        acc[m][0] = _mm512_dpbusd_epi32(acc[m][0], _mm512_i32gather_epi32(k0, x + m * a.ldxt, 1), w0);
    }
    const __m512i rows = _mm512_loadu_si512(w.perm + p * 16);
    for (int m = 0; m < M; ++m) finish_lanes(_mm512_add_epi32(acc[m][0], acc[m][1]), rows, a.m0 + m, a);
  }
}

}  // namespace

void s8_spmm_1x4_m2_avx512vnni(const StripView& w, const SpmmArgs& a) {
  with_rows_upto<2>(a.m1 - a.m0, [&](auto rows) { panels<decltype(rows)::value>(w, a); });
}

}  // namespace spruce::kernels::x86
