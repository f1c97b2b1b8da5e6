// The microkernel contract, the kernel-side weight format and the one kernel registry.
// Internal to spruce (src/), not installed: public callers use spruce/spmm.hpp.
//
// Microkernels are pure: pointers, sizes and params in; no allocation, no threads, no environment.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "spruce/cpu.hpp"
#include "spruce/matrix.hpp"
#include "spruce/quant.hpp"

namespace spruce::kernels {

enum class DType { F32, S8 };  // S8 = u8 activations x s8 weights

// Strip-CSR: output channels in strips of h rows; per strip, the sorted list of input channels k
// where any row of the strip is nonzero, padded to a multiple of kg (1 for f32, 4 for s8) by
// repeating the last k with zero weights. Every pattern packs into it; the strip height only
// changes how much work is shared. Weights for list position j = g*kg + t and strip row r live at
// w[g*kg*h + r*kg + t]: f32 [col][h]; s8 [group][h][4] (one dword per row, as vpdpbusd reads it).
template <typename T>
struct StripWeights {
  int h = 1, kg = 1;
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> ptr;   // strips() + 1 offsets into k
  std::vector<int32_t> k;     // input channels
  std::vector<T> w;           // values, layout above; rows past `rows` are zero
  std::vector<int32_t> wsum;  // s8: per output channel, sum_k w[n][k] (zero-point compensation)
  std::vector<uint8_t> sel;   // Rows layout only (make_nm8)
  int64_t strips() const { return int64_t(ptr.size()) - 1; }
};
// quads: list whole aligned quads of input channels (4q..4q+3) wherever one of them is nonzero,
// for the Quads layout below (columns past `cols` get zero weights).
StripWeights<float> make_strips(MatrixView<const float> w, int h);
StripWeights<int8_t> make_strips(MatrixView<const int8_t> w, int h, bool quads = false);
// For N:M with at most 4 nonzeros in every aligned 8 input channels of a row (2:4, 1:4, 4:8):
// panels of 16 output channels (h = 16, kg = 8); for panel p and octet q (Q = ceil(cols/8)),
// w[((p * Q + q) * 16 + r) * 4 + t] is row r's t-th kept weight in the octet and sel[same] its
// position 0..7 in the octet (zero weights pad). ptr[p] = p * Q. Throws if a row breaks the rule.
StripWeights<int8_t> make_nm8(MatrixView<const int8_t> w);

struct StripView {
  int h = 1, kg = 1;
  int64_t rows = 0, cols = 0;
  const int64_t* ptr = nullptr;
  const int32_t* k = nullptr;
  const void* w = nullptr;
  const uint8_t* sel = nullptr;
};
template <typename T>
StripView view(const StripWeights<T>& s) {
  return {s.h, s.kg, s.rows, s.cols, s.ptr.data(), s.k.data(), s.w.data(), s.sel.data()};
}

// Epilogue parameters, indexed by global output channel n (see spruce/quant.hpp for the arithmetic).
struct Epilogue {
  Activation act = Activation::None;
  const float* bias = nullptr;    // [N] or null
  const float* scale = nullptr;   // s8: [N] = x_scale * w_scale[n]
  const int32_t* comp = nullptr;  // s8: [N] = x_zero_point * sum_k w[n][k]
  OutType out = OutType::F32;     // s8 may requantize to U8/S8; f32 is always F32
  float y_inv_scale = 1.0f, y_zero_point = 0.0f;
};

// Packed activations ("xt"), made by each kernel's pack() once per call. Layout::Gather: X[m][k]
// transposed to xt[k * ldxt + pos], one row per input channel:
//  f32: pos = m (natural order), ldxt >= round_up(M, 16) (xt_ld), padding zero.
//  u8 : chunks of cw = u8_chunk(M) columns; inside a chunk, position p = 16L + 4i + j holds
//       m = chunk_start + (cw/4)*i + 4L + j, so that interleaving 4 rows with unpack gives
//       accumulators in natural m order. ldxt >= round_up(M, cw) (xt_ld), padding zero.
// xt_ld() pads rows to an odd number of cache lines, so that rows do not alias in the caches.
// Layout::Quads (u8 only): xt[(q * ldxt + m) * 4 + t] = x[m][4q + t], the VNNI-native order: one
// 64-byte load is 16 m x one aligned quad of input channels, no interleave needed. ldxt counts m.
// Layout::Narrow (u8, m <= 4): xt[k * 4 + m], ldxt = 4: one dword per input channel.
// Layout::Rows (u8): X row-major as given, rows padded to a multiple of 8 input channels with zeros.
enum class Layout { Gather, Quads, Narrow, Rows };
namespace {  // internal linkage, as these are also compiled with AVX-512 flags (epilogue.hpp)
inline int u8_chunk(int64_t m) { return m <= 16 ? 16 : m <= 32 ? 32 : 64; }
inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
inline int64_t u8_pos(int64_t m, int cw) {
  const int64_t c = m / cw * cw, r = m - c, q = cw / 4;
  const int64_t i = r / q, L = (r % q) / 4, j = r % 4;
  return c + 16 * L + 4 * i + j;
}
}  // namespace
int64_t xt_ld(DType d, int64_t m, Layout l = Layout::Gather, int64_t k = 0);  // k: Rows only
size_t xt_bytes(DType d, int64_t m, int64_t k, Layout l = Layout::Gather);

// Saved strips (SparseLinear's PackedLinear): checks every invariant above that `layout`'s kernels
// rely on (bounds, sizes, ordering, zero padding; wsum is ignored) and returns the dense W they
// hold. Throws spruce::Error naming the first broken invariant.
Matrix<float> unpack_strips(const StripWeights<float>& s, Layout layout);
Matrix<int8_t> unpack_strips(const StripWeights<int8_t>& s, Layout layout);

// One call computes output rows [m0, m1) for strips [s0, s1). m0 is a multiple of the chunk
// (16 for f32 is enough; u8_chunk(M) for s8). y(m, n) is at y + m * ldy + n with the
// epilogue's output type.
struct SpmmArgs {
  const void* xt = nullptr;
  int64_t ldxt = 0, m_total = 0;
  int64_t m0 = 0, m1 = 0, s0 = 0, s1 = 0;
  void* y = nullptr;
  int64_t ldy = 0;
  const Epilogue* ep = nullptr;
};
using SpmmFn = void (*)(const StripView& w, const SpmmArgs& a);
// Packs rows [k0, k1) of xt from X[m][k] (lda elements between rows). Elementwise pure.
using PackFn = void (*)(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);

struct Problem {
  DType dtype = DType::F32;
  int h = 1;
  int64_t m = 0, k = 0, n = 0;  // m = 0: any m (the choice made at construction)
  bool quads = false;  // the pattern keeps whole aligned quads of input channels (C % 4 == 0)
  bool nm8 = false;    // N:M with <= 4 nonzeros in every aligned 8 input channels (make_nm8)
};

struct Kernel {
  const char* name;  // "<dtype>-spmm-<h>x1-<isa>" or "<dtype>-spmm-ref"
  DType dtype;
  Isa isa;
  bool (*accepts)(const Problem&);
  SpmmFn run;
  PackFn pack;
  Layout layout = Layout::Gather;  // how pack() lays out xt and which strips run() expects
};

// Every kernel, best first, the references last. Dispatch, tests and benchmarks all read this.
std::span<const Kernel> registry();
// The first kernel that accepts p and whose ISA is <= cap.
const Kernel& select(const Problem& p, Isa cap = max_isa());
const Kernel* find(const char* name);  // by exact name, or null

// Strip height the kernels prefer for a pattern's block rows (1 for N:M, 1x1, 1xC...).
int preferred_h(DType d, int block_rows);

}  // namespace spruce::kernels
