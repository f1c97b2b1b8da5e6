// s8-spmm-4x1-avx512vnni and s8-spmm-1x1-avx512vnni: u8 activations x s8 strip-CSR weights.
//
// Vectorized over m. For each group of 4 input channels (k0..k3) of a strip, the 4 xt rows are
// loaded (16*V consecutive m each) and interleaved with two rounds of unpack into 4 registers of
// u8 quads (x[m][k0], x[m][k1], x[m][k2], x[m][k3]); each strip row's 4 weights are one dword,
// broadcast, and vpdpbusd accumulates 16 m x 4 k per instruction. The interleave (4 loads, 6
// shuffles) is shared by the H rows of the strip: 4x1 blocks give 16 vpdpbusd per interleave.
// The xt layout (kernel.hpp) is permuted so that the accumulators come out in natural m order.
#include <immintrin.h>

#include <algorithm>
#include <type_traits>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

template <int V>
inline __m512i load_row(const uint8_t* p) {
  if constexpr (V == 4)
    return _mm512_loadu_si512(p);
  else
    return _mm512_maskz_loadu_epi8((__mmask64(1) << (16 * V)) - 1, p);
}

// One strip, one chunk: accumulators for H rows x 16*V m, left in tile rows [0, H) (stride 64).
template <int H, int V>
inline void strip(const uint8_t* xc, int64_t ld, const int32_t* k, const int32_t* wq, int64_t nj, int32_t* tile) {
  constexpr int q = 4 * V;  // valid lanes per accumulator
  __m512i acc[H][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_si512();
  for (int64_t j = 0; j < nj; j += 4) {
    const __m512i x0 = load_row<V>(xc + k[j] * ld), x1 = load_row<V>(xc + k[j + 1] * ld);
    const __m512i x2 = load_row<V>(xc + k[j + 2] * ld), x3 = load_row<V>(xc + k[j + 3] * ld);
    const __m512i l01 = _mm512_unpacklo_epi8(x0, x1), h01 = _mm512_unpackhi_epi8(x0, x1);
    const __m512i l23 = _mm512_unpacklo_epi8(x2, x3), h23 = _mm512_unpackhi_epi8(x2, x3);
    const __m512i xq[4] = {_mm512_unpacklo_epi16(l01, l23), _mm512_unpackhi_epi16(l01, l23),
                           _mm512_unpacklo_epi16(h01, h23), _mm512_unpackhi_epi16(h01, h23)};
    const int32_t* wg = wq + (j / 4) * H;
    for (int r = 0; r < H; ++r) {
      const __m512i wb = _mm512_set1_epi32(wg[r]);
      for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], xq[i], wb);
    }
  }
  for (int r = 0; r < H; ++r)
    for (int i = 0; i < 4; ++i) {
      if constexpr (V == 4)
        _mm512_storeu_si512(tile + r * 64 + 16 * i, acc[r][i]);
      else
        _mm512_mask_storeu_epi32(tile + r * 64 + q * i, __mmask16((1u << q) - 1), acc[r][i]);
    }
}

// m <= 16 (V = 1): one xt row is 16 bytes, a quarter of a vector. Four groups of the strip then
// go side by side, one per 128-bit lane: the unpacks work within lanes, so each lane interleaves
// its own group, and one vpdpbusd serves four groups. The lanes are summed at the end of the
// strip. Groups left over (fewer than four) take lane 0 alone.
template <int H>
inline void strip_narrow(const uint8_t* xc, int64_t ld, const int32_t* k, const int32_t* wq, int64_t nj,
                         int32_t* tile) {
  __m512i acc[H][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_si512();
  auto accumulate = [&](__m512i x0, __m512i x1, __m512i x2, __m512i x3, auto weight_of_row) {
    const __m512i l01 = _mm512_unpacklo_epi8(x0, x1), h01 = _mm512_unpackhi_epi8(x0, x1);
    const __m512i l23 = _mm512_unpacklo_epi8(x2, x3), h23 = _mm512_unpackhi_epi8(x2, x3);
    const __m512i xq[4] = {_mm512_unpacklo_epi16(l01, l23), _mm512_unpackhi_epi16(l01, l23),
                           _mm512_unpacklo_epi16(h01, h23), _mm512_unpackhi_epi16(h01, h23)};
    for (int r = 0; r < H; ++r) {
      const __m512i wb = weight_of_row(r);
      for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], xq[i], wb);
    }
  };
  // xt row of list position j into lane L (L > 0 merges into x). L is a compile-time constant
  // (std::integral_constant): vinserti32x4 takes its lane as an immediate.
  auto row_into = [&](__m512i x, auto L, int64_t j) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xc + k[j] * ld));
    if constexpr (decltype(L)::value == 0)
      return _mm512_zextsi128_si512(v);
    else
      return _mm512_inserti32x4(x, v, decltype(L)::value);
  };
  constexpr std::integral_constant<int, 0> lane0;
  constexpr std::integral_constant<int, 1> lane1;
  constexpr std::integral_constant<int, 2> lane2;
  constexpr std::integral_constant<int, 3> lane3;
  int64_t j = 0;
  for (; j + 16 <= nj; j += 16) {
    __m512i x[4];
    for (int t = 0; t < 4; ++t) {
      x[t] = row_into(_mm512_setzero_si512(), lane0, j + t);
      x[t] = row_into(x[t], lane1, j + 4 + t);
      x[t] = row_into(x[t], lane2, j + 8 + t);
      x[t] = row_into(x[t], lane3, j + 12 + t);
    }
    // Lane L's weights: group j/4 + L, row r, at wq[(j/4 + L) * H + r].
    const int32_t* wg = wq + (j / 4) * H;
    if constexpr (H == 4) {
      const __m512i w = _mm512_loadu_si512(wg);  // lane L = the four rows of group L
      accumulate(x[0], x[1], x[2], x[3], [&](int r) {
        switch (r) {
          case 0: return _mm512_shuffle_epi32(w, _MM_PERM_AAAA);
          case 1: return _mm512_shuffle_epi32(w, _MM_PERM_BBBB);
          case 2: return _mm512_shuffle_epi32(w, _MM_PERM_CCCC);
          default: return _mm512_shuffle_epi32(w, _MM_PERM_DDDD);
        }
      });
    } else {
      accumulate(x[0], x[1], x[2], x[3], [&](int r) {
        const __m512i idx =
            _mm512_setr_epi32(0, 0, 0, 0, H, H, H, H, 2 * H, 2 * H, 2 * H, 2 * H, 3 * H, 3 * H, 3 * H, 3 * H);
        return _mm512_permutexvar_epi32(_mm512_add_epi32(idx, _mm512_set1_epi32(r)),
                                        _mm512_maskz_loadu_epi32(__mmask16((1u << (4 * H)) - 1), wg));
      });
    }
  }
  for (; j < nj; j += 4) {
    const int32_t* wg = wq + (j / 4) * H;
    accumulate(row_into(_mm512_setzero_si512(), lane0, j), row_into(_mm512_setzero_si512(), lane0, j + 1),
               row_into(_mm512_setzero_si512(), lane0, j + 2), row_into(_mm512_setzero_si512(), lane0, j + 3),
               [&](int r) { return _mm512_set1_epi32(wg[r]); });
  }
  // Row r's 16 m: acc[r][i] summed over its lanes gives m = 4i..4i+3.
  for (int r = 0; r < H; ++r)
    _mm512_storeu_si512(tile + r * 64, sum_lane_blocks(acc[r][0], acc[r][1], acc[r][2], acc[r][3]));
}

// 16 < m <= 32 (V = 2): one xt row is 32 bytes, half a vector. Two groups of the strip go side
// by side, one per 256-bit half, and one vpdpbusd serves both (strip<H, 2> fills half of each
// vpdpbusd). In 128-bit lane L of an accumulator sit group L / 2 and xt positions 16 (L % 2) +
// 4i + d, which are m = 8i + 4 (L % 2) + d (kernel.hpp's chunk order): summing the halves leaves
// m = 8i..8i+7 in order in the low half. A group left over takes the low half alone.
template <int H>
inline void strip_half(const uint8_t* xc, int64_t ld, const int32_t* k, const int32_t* wq, int64_t nj, int32_t* tile) {
  __m512i acc[H][4];
  for (auto& row : acc)
    for (auto& v : row) v = _mm512_setzero_si512();
  auto row = [&](int64_t j) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc + k[j] * ld)); };
  // Row r's weight of group g in the low half, of group g + 1 (or zero) in the high half.
  auto accumulate = [&](const __m512i(&x)[4], const int32_t* wg, int groups) {
    const __m512i l01 = _mm512_unpacklo_epi8(x[0], x[1]), h01 = _mm512_unpackhi_epi8(x[0], x[1]);
    const __m512i l23 = _mm512_unpacklo_epi8(x[2], x[3]), h23 = _mm512_unpackhi_epi8(x[2], x[3]);
    const __m512i xq[4] = {_mm512_unpacklo_epi16(l01, l23), _mm512_unpackhi_epi16(l01, l23),
                           _mm512_unpacklo_epi16(h01, h23), _mm512_unpackhi_epi16(h01, h23)};
    const __m512i w = _mm512_maskz_loadu_epi32(__mmask16((1u << (groups * H)) - 1), wg);
    const __m512i half = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, H, H, H, H, H, H, H, H);
    for (int r = 0; r < H; ++r) {
      const __m512i wb = _mm512_permutexvar_epi32(_mm512_add_epi32(half, _mm512_set1_epi32(r)), w);
      for (int i = 0; i < 4; ++i) acc[r][i] = _mm512_dpbusd_epi32(acc[r][i], xq[i], wb);
    }
  };
  int64_t j = 0;
  for (; j + 8 <= nj; j += 8) {
    __m512i x[4];
    for (int t = 0; t < 4; ++t) x[t] = _mm512_inserti64x4(_mm512_castsi256_si512(row(j + t)), row(j + 4 + t), 1);
    accumulate(x, wq + (j / 4) * H, 2);
  }
  if (j < nj) {
    __m512i x[4];
    for (int t = 0; t < 4; ++t) x[t] = _mm512_zextsi256_si512(row(j + t));
    accumulate(x, wq + (j / 4) * H, 1);
  }
  for (int r = 0; r < H; ++r)
    for (int i = 0; i < 4; ++i) {
      const __m512i both = _mm512_add_epi32(acc[r][i], _mm512_shuffle_i32x4(acc[r][i], acc[r][i], 0x4E));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * 64 + 8 * i), _mm512_castsi512_si256(both));
    }
}

// Strips are finished in panels of 16 output channels (16 / H strips), so the epilogue writes
// whole 64-byte rows of Y.
template <int H, int V>
void spmm_chunked(const StripView& w, const SpmmArgs& a) {
  constexpr int cw = 16 * V, P = 16 / H;
  const uint8_t* xt = static_cast<const uint8_t*>(a.xt);
  const int32_t* wq = static_cast<const int32_t*>(w.w);
  alignas(64) int32_t tile[16 * 64];
  // Panel outer, m inner: a panel's weights stay in L1 while xt streams from L2.
  for (int64_t s = a.s0; s < a.s1; s += P) {
    const int64_t se = std::min<int64_t>(a.s1, s + P), n0 = s * H;
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += cw) {
      for (int64_t t = s; t < se; ++t) {
        const int32_t *k = w.k + w.ptr[t], *wt = wq + w.ptr[t] / 4 * H;
        int32_t* out = tile + (t - s) * H * 64;
        if constexpr (V == 1)
          strip_narrow<H>(xt + m0, a.ldxt, k, wt, w.ptr[t + 1] - w.ptr[t], out);
        else if constexpr (V == 2)
          strip_half<H>(xt + m0, a.ldxt, k, wt, w.ptr[t + 1] - w.ptr[t], out);
        else
          strip<H, V>(xt + m0, a.ldxt, k, wt, w.ptr[t + 1] - w.ptr[t], out);
      }
      store_panel(tile, 64, n0, std::min<int64_t>(w.rows, se * H) - n0, m0, std::min<int64_t>(cw, a.m1 - m0), a);
    }
  }
}

template <int H>
void spmm(const StripView& w, const SpmmArgs& a) {
  switch (u8_chunk(a.m_total)) {
    case 16: return spmm_chunked<H, 1>(w, a);
    case 32: return spmm_chunked<H, 2>(w, a);
    default: return spmm_chunked<H, 4>(w, a);
  }
}

// 16x16 byte transpose inside each 128-bit lane: out[c] byte t = r[t] byte c.
inline void transpose16x16_lanes(__m512i r[16]) {
  __m512i s[16];
  for (int p = 0; p < 8; ++p) {
    s[2 * p] = _mm512_unpacklo_epi8(r[2 * p], r[2 * p + 1]);
    s[2 * p + 1] = _mm512_unpackhi_epi8(r[2 * p], r[2 * p + 1]);
  }  // s[2p+h] word w: rows 2p,2p+1 at c = 8h + w
  for (int qd = 0; qd < 4; ++qd)
    for (int h = 0; h < 2; ++h) {
      r[4 * qd + 2 * h] = _mm512_unpacklo_epi16(s[4 * qd + h], s[4 * qd + 2 + h]);
      r[4 * qd + 2 * h + 1] = _mm512_unpackhi_epi16(s[4 * qd + h], s[4 * qd + 2 + h]);
    }  // r[4q+e] dword d: rows 4q..4q+3 at c = 4e + d
  for (int u = 0; u < 2; ++u)
    for (int e = 0; e < 4; ++e) {
      s[8 * u + 2 * e] = _mm512_unpacklo_epi32(r[8 * u + e], r[8 * u + 4 + e]);
      s[8 * u + 2 * e + 1] = _mm512_unpackhi_epi32(r[8 * u + e], r[8 * u + 4 + e]);
    }  // s[8u+f] qword x: rows 8u..8u+7 at c = 2f + x
  for (int f = 0; f < 8; ++f) {
    r[2 * f] = _mm512_unpacklo_epi64(s[f], s[8 + f]);
    r[2 * f + 1] = _mm512_unpackhi_epi64(s[f], s[8 + f]);
  }
}

}  // namespace

void s8_spmm_4x1_avx512vnni(const StripView& w, const SpmmArgs& a) { spmm<4>(w, a); }
void s8_spmm_1x1_avx512vnni(const StripView& w, const SpmmArgs& a) { spmm<1>(w, a); }

// The u8 xt layout of kernel.hpp, 16 rows x 64 input channels per step through registers.
namespace {
void pack_u8_chunks(int cw, const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  uint8_t* out = static_cast<uint8_t*>(xt);
  const int qw = cw / 4;
  // Only the chunks holding rows of X; the row padding past them is not read (kernel.hpp).
  const int64_t used = round_up(m, cw);
  for (int64_t c0 = 0; c0 < used; c0 += cw)
    for (int L = 0; L < cw / 16; ++L)
      for (int64_t kb = k0; kb < k1; kb += 64) {
        const int64_t kn = std::min<int64_t>(64, k1 - kb);
        const __mmask64 km = kn == 64 ? ~__mmask64(0) : (__mmask64(1) << kn) - 1;
        __m512i r[16];
        for (int t = 0; t < 16; ++t) {
          const int64_t row = c0 + qw * (t / 4) + 4 * L + t % 4;
          r[t] = row < m ? _mm512_maskz_loadu_epi8(km, xs + row * lda + kb) : _mm512_setzero_si512();
        }
        transpose16x16_lanes(r);
        for (int c = 0; c < 16; ++c) {
          uint8_t* dst = out + (kb + c) * ldxt + c0 + 16 * L;
          if (c < kn) _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_extracti32x4_epi32(r[c], 0));
          if (16 + c < kn)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 16 * ldxt), _mm512_extracti32x4_epi32(r[c], 1));
          if (32 + c < kn)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 32 * ldxt), _mm512_extracti32x4_epi32(r[c], 2));
          if (48 + c < kn)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + 48 * ldxt), _mm512_extracti32x4_epi32(r[c], 3));
        }
      }
}

}  // namespace

void pack_u8_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  pack_u8_chunks(u8_chunk(m), x, m, lda, k0, k1, xt, ldxt);
}

void pack_u8_gather64_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  pack_u8_chunks(64, x, m, lda, k0, k1, xt, ldxt);
}

}  // namespace spruce::kernels::x86
