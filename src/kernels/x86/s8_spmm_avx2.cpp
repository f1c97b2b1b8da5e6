// s8-spmm-4x1-avx2 and s8-spmm-1x1-avx2: u8 activations x s8 strip-CSR weights, for CPUs with
// AVX2 but no AVX-512 VNNI. Exact: every product is formed in 16 bits and summed into 32.
//
// AVX2's u8 x s8 instruction, vpmaddubsw, saturates its 16-bit pair sums (2 x 255 x -128 does not
// fit), so it cannot match the reference. These kernels use vpmaddwd instead: the activations are
// packed as int16 (Layout::Words), and for each group of 4 input channels (k0..k3) of a strip the
// 4 xt rows (16 m each) are interleaved with one round of unpack into pairs (x[m][k0], x[m][k1])
// and (x[m][k2], x[m][k3]). Each strip row's 4 weights are sign-extended to two int16 pairs and
// broadcast; two vpmaddwd and two vpaddd then accumulate 8 m x 4 k. The weights stay in the s8
// Strips format that the VNNI kernels read (a dword of 4 s8 per row and group). The xt layout is
// permuted so that the unpacks leave the accumulators in natural m order.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../kernel.hpp"
#include "store_avx2.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

constexpr int kTileLd = 64;  // tile row stride: up to 4 chunks of 16 m
constexpr int kAhead = 8;    // list positions ahead whose activation rows are prefetched

// Strip rows' weights of one group, sign-extended to int16: 128-bit lane L holds rows 2L, 2L+1,
// each as two dwords (w0, w1) and (w2, w3). Lanes are duplicated so that vpshufd broadcasts.
template <int H>
struct GroupWeights {
  __m256i lane[(H + 1) / 2];
  explicit GroupWeights(const int32_t* wg) {
    __m128i b;
    if constexpr (H == 4)
      b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wg));
    else if constexpr (H == 2)
      b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(wg));
    else
      b = _mm_cvtsi32_si128(wg[0]);
    const __m256i v = _mm256_cvtepi8_epi16(b);
    lane[0] = _mm256_permute2x128_si256(v, v, 0x00);
    if constexpr (H > 2) lane[1] = _mm256_permute2x128_si256(v, v, 0x11);
  }
  // Row r's pair (w0, w1) (p = 0) or (w2, w3) (p = 1) in every dword.
  __m256i pair(int r, int p) const {
    const __m256i v = lane[r / 2];
    if (r % 2 == 0) return p == 0 ? _mm256_shuffle_epi32(v, 0x00) : _mm256_shuffle_epi32(v, 0x55);
    return p == 0 ? _mm256_shuffle_epi32(v, 0xAA) : _mm256_shuffle_epi32(v, 0xFF);
  }
};

// One strip, V chunks of 16 m: accumulators for H rows, left in tile rows [0, H) (stride kTileLd).
template <int H, int V>
inline void strip(const int16_t* xc, int64_t ld, const int32_t* k, const int32_t* wq, int64_t nj, int32_t* tile) {
  __m256i acc[H][2 * V];
  for (auto& row : acc)
    for (auto& v : row) v = _mm256_setzero_si256();
  for (int64_t j = 0; j < nj; j += 4) {
    const int16_t *r0 = xc + k[j] * ld, *r1 = xc + k[j + 1] * ld;
    const int16_t *r2 = xc + k[j + 2] * ld, *r3 = xc + k[j + 3] * ld;
    const GroupWeights<H> w(wq + (j / 4) * H);
    if (j + kAhead + 4 <= nj)
      for (int t = 0; t < 4; ++t)
        for (int v = 0; v < V; v += 2)
          _mm_prefetch(reinterpret_cast<const char*>(xc + k[j + kAhead + t] * ld + 16 * v), _MM_HINT_T0);
    for (int v = 0; v < V; ++v) {
      const __m256i x0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r0 + 16 * v));
      const __m256i x1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r1 + 16 * v));
      const __m256i x2 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r2 + 16 * v));
      const __m256i x3 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r3 + 16 * v));
      const __m256i p01[2] = {_mm256_unpacklo_epi16(x0, x1), _mm256_unpackhi_epi16(x0, x1)};
      const __m256i p23[2] = {_mm256_unpacklo_epi16(x2, x3), _mm256_unpackhi_epi16(x2, x3)};
      for (int r = 0; r < H; ++r) {
        const __m256i w01 = w.pair(r, 0), w23 = w.pair(r, 1);
        for (int h = 0; h < 2; ++h) {
          __m256i& a = acc[r][2 * v + h];
          a = _mm256_add_epi32(a, _mm256_madd_epi16(p01[h], w01));
          a = _mm256_add_epi32(a, _mm256_madd_epi16(p23[h], w23));
        }
      }
    }
  }
  for (int r = 0; r < H; ++r)
    for (int i = 0; i < 2 * V; ++i)
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(tile + r * kTileLd + 8 * i), acc[r][i]);
}

// One panel of 8 output channels (strips [s, se)) for 16*V rows from m0, then its epilogue.
template <int H, int V>
void panel(const StripView& w, const SpmmArgs& a, int64_t s, int64_t se, int64_t m0, int32_t* tile) {
  const int16_t* xc = static_cast<const int16_t*>(a.xt) + m0;
  const int32_t* wq = static_cast<const int32_t*>(w.w);
  for (int64_t t = s; t < se; ++t) {
    const int64_t j0 = w.ptr[t];
    strip<H, V>(xc, a.ldxt, w.k + j0, wq + j0 / 4 * H, w.ptr[t + 1] - j0, tile + (t - s) * H * kTileLd);
  }
  const int64_t n0 = s * H;
  store_panel8(tile, kTileLd, n0, std::min<int64_t>(w.rows, se * H) - n0, m0, std::min<int64_t>(16 * V, a.m1 - m0), a);
}

// Eight accumulators per strip row and chunk pair: 4 rows x 1 chunk, or 1 row x 4 chunks.
template <int H>
void spmm(const StripView& w, const SpmmArgs& a) {
  constexpr int V = 4 / H, P = 8 / H;
  alignas(32) int32_t tile[8 * kTileLd];
  // Panel outer, m inner: a panel's weights stay in L1 while xt streams from L2.
  for (int64_t s = a.s0; s < a.s1; s += P) {
    const int64_t se = std::min<int64_t>(a.s1, s + P);
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += 16 * V)
      with_rows_upto<V>((a.m1 - m0 + 15) / 16, [&](auto v) { panel<H, decltype(v)::value>(w, a, s, se, m0, tile); });
  }
}

// 16x16 byte transpose inside each 128-bit lane: out[c] byte t = r[t] byte c.
inline void transpose16x16_lanes(__m256i r[16]) {
  __m256i s[16];
  for (int p = 0; p < 8; ++p) {
    s[2 * p] = _mm256_unpacklo_epi8(r[2 * p], r[2 * p + 1]);
    s[2 * p + 1] = _mm256_unpackhi_epi8(r[2 * p], r[2 * p + 1]);
  }  // s[2p+h] word w: rows 2p,2p+1 at c = 8h + w
  for (int qd = 0; qd < 4; ++qd)
    for (int h = 0; h < 2; ++h) {
      r[4 * qd + 2 * h] = _mm256_unpacklo_epi16(s[4 * qd + h], s[4 * qd + 2 + h]);
      r[4 * qd + 2 * h + 1] = _mm256_unpackhi_epi16(s[4 * qd + h], s[4 * qd + 2 + h]);
    }  // r[4q+e] dword d: rows 4q..4q+3 at c = 4e + d
  for (int u = 0; u < 2; ++u)
    for (int e = 0; e < 4; ++e) {
      s[8 * u + 2 * e] = _mm256_unpacklo_epi32(r[8 * u + e], r[8 * u + 4 + e]);
      s[8 * u + 2 * e + 1] = _mm256_unpackhi_epi32(r[8 * u + e], r[8 * u + 4 + e]);
    }  // s[8u+f] qword x: rows 8u..8u+7 at c = 2f + x
  for (int f = 0; f < 8; ++f) {
    r[2 * f] = _mm256_unpacklo_epi64(s[f], s[8 + f]);
    r[2 * f + 1] = _mm256_unpackhi_epi64(s[f], s[8 + f]);
  }
}

}  // namespace

void s8_spmm_4x1_avx2(const StripView& w, const SpmmArgs& a) { spmm<4>(w, a); }
void s8_spmm_1x1_avx2(const StripView& w, const SpmmArgs& a) { spmm<1>(w, a); }

// Layout::Words (kernel.hpp): 16 rows x 32 input channels per step, a byte transpose in each
// 128-bit lane (lane 0: channels kb..kb+15, lane 1: the next 16), then zero-extension to int16.
void pack_s16_avx2(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt) {
  const uint8_t* xs = static_cast<const uint8_t*>(x);
  int16_t* out = static_cast<int16_t*>(xt);
  for (int64_t c0 = 0; c0 < round_up(m, 16); c0 += 16)
    for (int64_t kb = k0; kb < k1; kb += 32) {
      const int64_t kn = std::min<int64_t>(32, k1 - kb);
      __m256i r[16];
      for (int t = 0; t < 16; ++t) {
        const int64_t row = c0 + words_m(t);
        if (row >= m) {
          r[t] = _mm256_setzero_si256();
        } else if (kn == 32) {
          r[t] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xs + row * lda + kb));
        } else {
          alignas(32) uint8_t part[32] = {};
          std::memcpy(part, xs + row * lda + kb, size_t(kn));
          r[t] = _mm256_load_si256(reinterpret_cast<const __m256i*>(part));
        }
      }
      transpose16x16_lanes(r);
      for (int c = 0; c < 16; ++c) {
        if (c < kn)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (kb + c) * ldxt + c0),
                              _mm256_cvtepu8_epi16(_mm256_castsi256_si128(r[c])));
        if (16 + c < kn)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + (kb + 16 + c) * ldxt + c0),
                              _mm256_cvtepu8_epi16(_mm256_extracti128_si256(r[c], 1)));
      }
    }
}

}  // namespace spruce::kernels::x86
