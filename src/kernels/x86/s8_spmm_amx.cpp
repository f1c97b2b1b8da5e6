// s8-spmm-16x4-amx and s8-spmm-16x1-amx: INT8 sparse GEMM on AMX tiles, the weights as the A operand. A strip is 16
// output channels; its packed list holds the aligned input-channel quads where any of the 16 is
// nonzero, in chunks of 16 quads (64 input channels) that are each one 16 x 64-byte A tile. Per
// chunk and 16 rows of X, the 16 listed quads' activations are copied from the Quads layout (one
// 64-byte row each) into a B tile, and tdpbsud (s8 weights x u8 activations) adds into a 16 x 16
// C tile of int32: output channels x m, which the AVX-512 epilogue transposes into Y[m][n]. The
// work shrinks with the strip's quad-union density; patterns whose blocks span 16 output
// channels (16x4, 16x16) pay for no zeros at all. The 16x1 kernel lists single input channels
// instead (any pattern: 16x1 and 4x1 blocks); its B rows are interleaved from four rows of the
// Gather64 layout, which costs two shuffles per 64 bytes.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "../kernel.hpp"
#include "store_avx512.hpp"
#include "x86.hpp"

namespace spruce::kernels::x86 {
namespace {

// ldtilecfg's 64-byte operand: palette 1; tiles 0-3 hold C (16 rows of 16 int32), tile 4 the
// weights (A), tiles 5 and 6 the activations (B); every tile is 16 rows x 64 bytes.
struct alignas(64) TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

void configure_tiles() {
  TileConfig c;
  for (int t = 0; t < 7; ++t) {
    c.colsb[t] = 64;
    c.rows[t] = 16;
  }
  _tile_loadconfig(&c);
}

// B tile for one chunk: row r = activations of rows m0..m0+15 for quad q[r], 64 bytes in the
// Quads layout. Copied so that tileloadd reads one stride.
inline void gather_quads(const uint8_t* xq, int64_t ld4, const int32_t* k, uint8_t* b) {
  for (int r = 0; r < 16; ++r) _mm512_store_si512(b + 64 * r, _mm512_loadu_si512(xq + int64_t(k[4 * r] / 4) * ld4));
}

// B tiles for one chunk of single input channels, for NB blocks of 16 m at once: row r = the
// quads (x[m][k[4r]], .., x[m][k[4r+3]]) of 64 m, interleaved from four rows of the Gather64
// layout with two rounds of unpack; the layout's m order makes block i come out as m 16i..16i+15.
template <int NB>
inline void gather_singles(const uint8_t* xc, int64_t ld, const int32_t* k, uint8_t* b) {
  for (int r = 0; r < 16; ++r) {
    const int32_t* kr = k + 4 * r;
    const __m512i x0 = _mm512_loadu_si512(xc + kr[0] * ld), x1 = _mm512_loadu_si512(xc + kr[1] * ld);
    const __m512i x2 = _mm512_loadu_si512(xc + kr[2] * ld), x3 = _mm512_loadu_si512(xc + kr[3] * ld);
    const __m512i l01 = _mm512_unpacklo_epi8(x0, x1), h01 = _mm512_unpackhi_epi8(x0, x1);
    const __m512i l23 = _mm512_unpacklo_epi8(x2, x3), h23 = _mm512_unpackhi_epi8(x2, x3);
    _mm512_store_si512(b + 64 * r, _mm512_unpacklo_epi16(l01, l23));
    if constexpr (NB > 1) _mm512_store_si512(b + 1024 + 64 * r, _mm512_unpackhi_epi16(l01, l23));
    if constexpr (NB > 2) _mm512_store_si512(b + 2048 + 64 * r, _mm512_unpacklo_epi16(h01, h23));
    if constexpr (NB > 3) _mm512_store_si512(b + 3072 + 64 * r, _mm512_unpackhi_epi16(h01, h23));
  }
}

struct Quads {  // s8-spmm-16x4-amx: xq = xt + m0 * 4, ld = ldxt * 4 (bytes between quads)
  template <int NB>
  static void gather(const uint8_t* xq, int64_t ld, const int32_t* k, uint8_t* b) {
    gather_quads(xq, ld, k, b);
    if constexpr (NB > 1) gather_quads(xq + 64, ld, k, b + 1024);
    if constexpr (NB > 2) gather_quads(xq + 128, ld, k, b + 2048);
    if constexpr (NB > 3) gather_quads(xq + 192, ld, k, b + 3072);
  }
  static const uint8_t* at(const uint8_t* xt, int64_t m0) { return xt + m0 * 4; }
  static int64_t stride(int64_t ldxt) { return ldxt * 4; }
};
struct Singles {  // s8-spmm-16x1-amx: xc = xt + m0, ld = ldxt (bytes between input channels)
  template <int NB>
  static void gather(const uint8_t* xc, int64_t ld, const int32_t* k, uint8_t* b) {
    gather_singles<NB>(xc, ld, k, b);
  }
  static const uint8_t* at(const uint8_t* xt, int64_t m0) { return xt + m0; }
  static int64_t stride(int64_t ldxt) { return ldxt; }
};

// C tiles 0..NB-1 += A (tile 4) x B (one per 16 m, alternating tiles 5 and 6). Tile numbers are
// immediates, hence the unrolling.
template <class G, int NB>
inline void chunk(const int8_t* wa, const uint8_t* x, int64_t ld, const int32_t* k, uint8_t* b) {
  G::template gather<NB>(x, ld, k, b);
  _tile_loadd(4, wa, 64);
  _tile_loadd(5, b, 64);
  _tile_dpbsud(0, 4, 5);
  if constexpr (NB > 1) {
    _tile_loadd(6, b + 1024, 64);
    _tile_dpbsud(1, 4, 6);
  }
  if constexpr (NB > 2) {
    _tile_loadd(5, b + 2048, 64);
    _tile_dpbsud(2, 4, 5);
  }
  if constexpr (NB > 3) {
    _tile_loadd(6, b + 3072, 64);
    _tile_dpbsud(3, 4, 6);
  }
}

// One strip x up to 64 rows of m (NB tiles of 16): accumulate, then store into c (ldc int32).
template <class G, int NB>
void block(const int8_t* wa, const int32_t* k, int64_t chunks, const uint8_t* x, int64_t ld, uint8_t* b, int32_t* c,
           int ldc) {
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (NB > 2) _tile_zero(2);
  if constexpr (NB > 3) _tile_zero(3);
  // Two B buffers, alternating: the next chunk's gather does not wait for this chunk's tile loads.
  for (int64_t j = 0; j < chunks; ++j) chunk<G, NB>(wa + j * 1024, x, ld, k + j * 64, b + (j & 1) * 4096);
  _tile_stored(0, c, ldc * 4);
  if constexpr (NB > 1) _tile_stored(1, c + 16, ldc * 4);
  if constexpr (NB > 2) _tile_stored(2, c + 32, ldc * 4);
  if constexpr (NB > 3) _tile_stored(3, c + 48, ldc * 4);
}

template <class G>
void spmm(const StripView& w, const SpmmArgs& a) {
  constexpr int kLdc = 64;
  alignas(64) uint8_t b[2 * 4 * 1024];
  alignas(64) int32_t c[16 * kLdc];
  const uint8_t* xt = static_cast<const uint8_t*>(a.xt);
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  const int64_t ld = G::stride(a.ldxt);
  configure_tiles();
  for (int64_t s = a.s0; s < a.s1; ++s) {
    const int64_t j0 = w.ptr[s], chunks = (w.ptr[s + 1] - j0) / 64;
    const int8_t* wa = wv + j0 * 16;
    const int32_t* k = w.k + j0;
    const int64_t n0 = s * 16, rows = std::min<int64_t>(16, w.rows - n0);
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += 64) {
      const int64_t mv = std::min<int64_t>(64, a.m1 - m0);
      const uint8_t* x = G::at(xt, m0);
      switch ((mv + 15) / 16) {
        case 1: block<G, 1>(wa, k, chunks, x, ld, b, c, kLdc); break;
        case 2: block<G, 2>(wa, k, chunks, x, ld, b, c, kLdc); break;
        case 3: block<G, 3>(wa, k, chunks, x, ld, b, c, kLdc); break;
        default: block<G, 4>(wa, k, chunks, x, ld, b, c, kLdc); break;
      }
      store_panel(c, kLdc, n0, rows, m0, mv, a);
    }
  }
  _tile_release();
}

// s8-spmm-16x64-amx: the weights are the B operand, one pre-packed tile per listed block of 64
// input channels; the activations' A tiles load straight from the Rows64 layout (16 rows of m x
// 64 input channels, stride ldxt): no gather, no transpose, C comes out as Y[m][n].
template <int NB>
void blocks(const int8_t* wb, const int32_t* k, int64_t nblocks, const uint8_t* x, int64_t ld, int32_t* c, int ldc) {
  _tile_zero(0);
  if constexpr (NB > 1) _tile_zero(1);
  if constexpr (NB > 2) _tile_zero(2);
  if constexpr (NB > 3) _tile_zero(3);
  for (int64_t j = 0; j < nblocks; ++j) {
    const uint8_t* xa = x + k[j];
    _tile_loadd(4, wb + j * 1024, 64);
    _tile_loadd(5, xa, ld);
    _tile_dpbusd(0, 5, 4);
    if constexpr (NB > 1) {
      _tile_loadd(6, xa + 16 * ld, ld);
      _tile_dpbusd(1, 6, 4);
    }
    if constexpr (NB > 2) {
      _tile_loadd(5, xa + 32 * ld, ld);
      _tile_dpbusd(2, 5, 4);
    }
    if constexpr (NB > 3) {
      _tile_loadd(6, xa + 48 * ld, ld);
      _tile_dpbusd(3, 6, 4);
    }
  }
  _tile_stored(0, c, ldc * 4);
  if constexpr (NB > 1) _tile_stored(1, c + 16 * ldc, ldc * 4);
  if constexpr (NB > 2) _tile_stored(2, c + 32 * ldc, ldc * 4);
  if constexpr (NB > 3) _tile_stored(3, c + 48 * ldc, ldc * 4);
}

}  // namespace

void s8_spmm_16x64_amx(const StripView& w, const SpmmArgs& a) {
  constexpr int kLdc = 16;
  alignas(64) int32_t c[64 * kLdc];
  const uint8_t* xt = static_cast<const uint8_t*>(a.xt);
  const int8_t* wv = static_cast<const int8_t*>(w.w);
  configure_tiles();
  for (int64_t s = a.s0; s < a.s1; ++s) {
    const int64_t j0 = w.ptr[s], nb = w.ptr[s + 1] - j0;
    const int64_t n0 = s * 16, rows = std::min<int64_t>(16, w.rows - n0);
    for (int64_t m0 = a.m0; m0 < a.m1; m0 += 64) {
      const int64_t mv = std::min<int64_t>(64, a.m1 - m0);
      const uint8_t* x = xt + m0 * a.ldxt;
      switch ((mv + 15) / 16) {
        case 1: blocks<1>(wv + j0 * 1024, w.k + j0, nb, x, a.ldxt, c, kLdc); break;
        case 2: blocks<2>(wv + j0 * 1024, w.k + j0, nb, x, a.ldxt, c, kLdc); break;
        case 3: blocks<3>(wv + j0 * 1024, w.k + j0, nb, x, a.ldxt, c, kLdc); break;
        default: blocks<4>(wv + j0 * 1024, w.k + j0, nb, x, a.ldxt, c, kLdc); break;
      }
      store_rows(c, kLdc, n0, rows, m0, mv, a);
    }
  }
  _tile_release();
}

void s8_spmm_16x4_amx(const StripView& w, const SpmmArgs& a) { spmm<Quads>(w, a); }
void s8_spmm_16x1_amx(const StripView& w, const SpmmArgs& a) { spmm<Singles>(w, a); }

}  // namespace spruce::kernels::x86
