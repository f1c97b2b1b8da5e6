// The microkernel contract, the packed weight format the kernels read, and the one registry of
// every kernel of every operation. Internal to spruce (src/), not installed: public callers use
// spruce/spmm.hpp, spruce/packed_weights.hpp, spruce/interaction.hpp, spruce/attention.hpp and
// spruce/layer_norm.hpp.
//
// Microkernels are pure: pointers, sizes and params in; no allocation, no threads, no environment.
#pragma once
#include <cstdint>
#include <new>
#include <span>
#include <variant>
#include <vector>

#include "attention.hpp"
#include "layer_norm.hpp"
#include "spruce/calibration.hpp"
#include "spruce/cpu.hpp"
#include "spruce/matrix.hpp"
#include "spruce/packed_weights.hpp"
#include "spruce/pattern.hpp"
#include "spruce/quant.hpp"

namespace spruce::kernels {

enum class Op { Spmm, DotInteraction, Attention, LayerNorm };
// spmm: S8 = u8 activations x s8 weights; dot interaction: the tables; attention: FP32 in and
// out, with BF16 products summed in FP32 (BF16) or 8-bit products summed in int32 (S8).
enum class DType { F32, S8, BF16 };

// The packed weights (spmm only) are Strip-CSR in one of three formats:
//  Strips: output channels in strips of h rows; per strip, the sorted list of input channels k
//    where any row of the strip is nonzero, padded to a multiple of kg (1 for f32, 4 for s8) by
//    repeating the last k with zero weights. Every pattern packs into it; h only changes how much
//    work is shared. Weights for list position j = g*kg + t and strip row r live at
//    w[g*kg*h + r*kg + t]: f32 [col][h]; s8 [group][h][4] (one dword per row, as vpdpbusd reads it).
//  QuadStrips: Strips that list whole aligned quads of input channels (4q..4q+3) wherever one of
//    them is nonzero (columns past `cols` get zero weights); padding repeats the last quad. s8 only.
//  AMX tiles are Strips or QuadStrips with h = 16 and kg = 64: each group of 64 list positions is
//    then one 16 x 64-byte tile, w[g * 1024 + r * 64 + t], as tileloadd reads the A operand.
//  Octets: for N:M with at most 4 nonzeros in every aligned 8 input channels of a row (2:4, 1:4,
//    4:8): panels of 16 output channels (h = 16, kg = 8); for panel p and octet q (Q = ceil(cols/8)),
//    w[((p * Q + q) * 16 + r) * 4 + t] is row r's t-th kept weight in the octet and sel[same] its
//    position 0..7 in the octet (zero weights pad). ptr[p] = p * Q; no k list. s8 only.
//  TileBlocks: strips of 16 output channels listing the aligned blocks of 64 input channels
//    where any of the 16 is nonzero (k holds each block's first input channel); each block is one
//    AMX B tile, w[j * 1024 + q * 64 + c * 4 + t] = W[16 s + c][k[j] + 4 q + t], zero past the edges.
//    s8 only; the pattern's blocks must cover 16 x 64 (16x64, 32x64, ...).
//  RowLanes: every output channel lists its own aligned quads of input channels (wherever one of
//    the four is nonzero), and 16 channels walk their lists side by side, one per vector lane.
//    The channels are sorted by list length (longest first) into panels of 16 so that a panel's
//    lists end together; perm[p * 16 + l] is the channel in lane l of panel p (-1: none). Panel
//    p's steps are entries ptr[p] .. ptr[p + 1] (whole steps of 16): entry e = ptr[p] + 16 j + l
//    is lane l's j-th quad, k[e] its first input channel, w[e * 4 + t] the weight of k[e] + t.
//    A shorter list is padded by repeating its last quad (quad 0 if empty) with zero weights.
//    s8 only (h = 16, kg = 4).
//  QuadMasks: panels of 16 output channels (in order) over every aligned quad of input channels:
//    for panel p and quad q (Q = ceil(cols/4) quads, ptr[p] = p * Q, no k list), the 16-bit mask
//    in sel[2(p Q + q)], sel[2(p Q + q) + 1] (little-endian) says which rows' weight dwords are
//    nonzero. Only those dwords are stored, quad after quad, rows ascending; panel p's first
//    dword is wptr[p]. s8 only (h = 16, kg = 4).
//  Windows: strips of 4 output channels (as Strips with h = 4) whose list of input channels is cut
//    into chunks of 16 positions (4 groups of 4) that lie in one window of 128 input channels:
//    chunk c of strip st (ptr[st] <= c < ptr[st + 1]) has its window's first input channel in
//    k[c] (a multiple of 64, below cols), sel[16 c + 4 g + t] = position (g, t)'s input channel
//    minus k[c] (0..127), and w[64 c + 16 g + 4 r + t] = row r's weight there. Within a strip the
//    input channels of positions with a nonzero weight ascend; unused positions have zero
//    weights. s8 only (h = 4, kg = 16).
//  LaneWindows: panels of 16 output channels, one per vector lane, each channel listing its own
//    input channels (blocks under 4 rows high), 4 per lane in each chunk, every chunk inside one
//    window of 64 input channels: chunk c of panel p (ptr[p] <= c < ptr[p + 1]) has its window's
//    first input channel in k[c] (a multiple of 64, below cols; a window's chunks are consecutive),
//    sel[64 c + 4 l + t] = lane l's t-th input channel minus k[c] (0..63) and w[64 c + 4 l + t]
//    its weight. Within a panel, each lane's input channels with a nonzero weight ascend; unused
//    positions have zero weights. s8 only (h = 16, kg = 4).
enum class WeightFormat { None, Strips, QuadStrips, Octets, TileBlocks, RowLanes, QuadMasks, Windows, LaneWindows };

// Cache-line-aligned storage: AMX tile rows and AVX-512 loads that straddle two lines run at
// half speed or worse.
template <typename T>
struct LineAllocator {
  using value_type = T;
  LineAllocator() = default;
  template <typename U>
  LineAllocator(const LineAllocator<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
  void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
  bool operator==(const LineAllocator&) const { return true; }
};
template <typename T>
using LineVector = std::vector<T, LineAllocator<T>>;

template <typename T>
struct StripWeights {
  int h = 1, kg = 1;
  int64_t rows = 0, cols = 0;
  std::vector<int64_t> ptr;   // strips() + 1 offsets into k (Octets: into groups)
  std::vector<int32_t> k;     // input channels
  LineVector<T> w;            // values, layout above; rows past `rows` are zero
  std::vector<uint8_t> sel;   // Octets only
  std::vector<int32_t> perm;  // RowLanes only
  std::vector<int64_t> wptr;  // QuadMasks only
  int64_t strips() const { return int64_t(ptr.size()) - 1; }
};

struct StripView {
  int h = 1, kg = 1;
  int64_t rows = 0, cols = 0;
  const int64_t* ptr = nullptr;
  const int32_t* k = nullptr;
  const void* w = nullptr;
  const uint8_t* sel = nullptr;
  const int32_t* perm = nullptr;
  const int64_t* wptr = nullptr;
};
template <typename T>
StripView view(const StripWeights<T>& s) {
  return {s.h, s.kg, s.rows, s.cols, s.ptr.data(), s.k.data(), s.w.data(), s.sel.data(), s.perm.data(), s.wptr.data()};
}

// Epilogue parameters, indexed by global output channel n (see spruce/quant.hpp for the arithmetic).
struct Epilogue {
  Activation act = Activation::None;
  const float* bias = nullptr;    // [N] or null
  const float* scale = nullptr;   // s8: [N] = x.scale * w_scale[n]
  const int32_t* comp = nullptr;  // s8: [N] = x.zero_point * sum_k w[n][k]
  OutType out = OutType::F32;     // s8 may requantize to U8/S8; f32 is always F32
  float y_inv_scale = 1.0f, y_zero_point = 0.0f;
};

// Packed activations ("xt"), made by each kernel's pack() once per call. Layout::Gather: X[m][k]
// transposed to xt[k * ldxt + pos], one row per input channel:
//  f32: pos = m (natural order), ldxt >= round_up(M, 16) (xt_ld), padding zero.
//  u8 : chunks of cw = u8_chunk(M) columns; inside a chunk, position p = 16L + 4i + j holds
//       m = chunk_start + (cw/4)*i + 4L + j, so that interleaving 4 rows with unpack gives
//       accumulators in natural m order. ldxt >= round_up(M, cw) (xt_ld); positions of rows
//       past M inside the chunks are zero, and the bytes past round_up(M, cw) are neither written
//       nor read.
// xt_ld() pads rows of whole cache lines to an odd number of lines, so that rows do not alias in
// the caches; shorter rows (u8 at m <= 32, int16 at m <= 16) are packed back to back.
// Layout::Quads (u8 only): xt[(q * ldxt + m) * 4 + t] = x[m][4q + t], the VNNI-native order: one
// 64-byte load is 16 m x one aligned quad of input channels, no interleave needed. ldxt counts m.
// Layout::M8 (u8, m <= 4; named when it also held 8): xt[k * ldxt + m], ldxt = 4: one dword per
// input channel, holding its 4 m (zero past M).
// Layout::Rows (u8): X row-major as given, rows padded to a multiple of 8 input channels with zeros.
// Layout::Gather64 (u8): Gather with chunks of cw = 64 whatever M is (the AMX kernels' B tiles).
// Layout::Rows64 (u8): Rows padded to a multiple of 64 input channels and of 16 m with zeros, so
// that a 16 x 64-byte AMX tile loads straight from it.
// Layout::Windows (u8): X row-major as given, rows padded with zeros to round_up(k, 64) + 64 input
// channels, so that a window of 128 from any multiple of 64 below k loads whole.
// Layout::Words (u8 widened to int16, for AVX2's vpmaddwd): xt[k * ldxt + pos], chunks of 16 m;
// inside a chunk, position p holds m = chunk_start + words_m(p): the middle two of the four
// groups of 4 are swapped, so that unpacking two rows within 128-bit lanes gives accumulators in
// natural m order. ldxt counts int16 (xt_ld); positions of rows past M inside the last chunk are
// zero, and the elements past round_up(M, 16) are neither written nor read.
enum class Layout { Gather, Quads, M8, Rows, Gather64, Rows64, Words, Windows };
namespace {  // internal linkage, as these are also compiled with AVX-512 flags (epilogue.hpp)
inline int u8_chunk(int64_t m) { return m <= 16 ? 16 : m <= 32 ? 32 : 64; }
inline int64_t round_up(int64_t v, int64_t to) { return (v + to - 1) / to * to; }
inline int64_t words_m(int64_t p) {
  const int64_t g = p / 4;
  return (g == 1 ? 2 : g == 2 ? 1 : g) * 4 + p % 4;
}
inline int64_t u8_pos(int64_t m, int cw) {
  const int64_t c = m / cw * cw, r = m - c, q = cw / 4;
  const int64_t i = r / q, L = (r % q) / 4, j = r % 4;
  return c + 16 * L + 4 * i + j;
}
}  // namespace
int64_t xt_ld(DType d, int64_t m, Layout l = Layout::Gather, int64_t k = 0);  // k: Rows only
size_t xt_bytes(DType d, int64_t m, int64_t k, Layout l = Layout::Gather);

// One call computes output rows [m0, m1) for strips [s0, s1). m0 is a multiple of the chunk
// (16 for f32 is enough; u8_chunk(M) for s8). y(m, n) is element y_at(m, n) of y, in the
// epilogue's output type: y's column 0 is output channel y_col0 (the operator points y at a
// staging buffer for a band of output channels, see sparse_linear.cpp).
struct SpmmArgs {
  const void* xt = nullptr;
  int64_t ldxt = 0, m_total = 0;
  int64_t m0 = 0, m1 = 0, s0 = 0, s1 = 0;
  void* y = nullptr;
  int64_t ldy = 0, y_col0 = 0;
  const Epilogue* ep = nullptr;
  int64_t y_at(int64_t m, int64_t n) const { return m * ldy + n - y_col0; }
};
using SpmmFn = void (*)(const StripView& w, const SpmmArgs& a);
// Packs rows [k0, k1) of xt from X[m][k] (lda elements between rows). Elementwise pure.
using PackFn = void (*)(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);

// Dot interaction, one sample per call: `v` points at its `count` vectors of `dim` floats; the
// kernel writes out[0..dim) = q(v[0]) and out[dim + p] = q(dot(v[i], v[j])) for pair p =
// i * (i - 1) / 2 + j. Summation order, fixed for every kernel so that they agree bit for bit:
// lane l = 0..15 sums fma(a[k], b[k], s_l) over k = l, l + 16, l + 32, ... (< dim) from s_l = +0;
// then s_l += s_{l+8} (l < 8), s_l += s_{l+4} (l < 4), s_l += s_{l+2} (l < 2), dot = s_0 + s_1.
// Quantization is quantize_u8's: round_half_even(clamp(x * (1 / scale) + zero_point, 0, 255)).
using DotInteractionFn = void (*)(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
// The same over row-wise INT8 vectors (DType::S8), all in integers: v[1 + t] = rows[t] with scale
// scales[t], and v[0] = the dense vector quantized as quantize_embedding_rows quantizes a row
// (s8_quantize_row: scale max|x| / 127, q = clamp(nearbyint(x / scale), -127, 127); scale 0 and
// all zeros where the row is zero or not finite). Each pair's dot product is exact in int32, and
// out[dim + p] = q(float(dot) * (scale_i * scale_j)); out[0..dim) = q(dense), from the f32 values.
// No summation order to agree on: every kernel gives the reference's bytes. `scratch` holds
// s8_table_scratch_bytes(count, dim) bytes (any alignment), the kernel's own.
using S8TableDotInteractionFn = void (*)(const float* dense, const int8_t* const* rows, const float* scales,
                                         int64_t count, int64_t dim, const U8Quant& q, uint8_t* out, uint8_t* scratch);
// Room for the quantized dense vector, a copy of every vector (s16 at most) and their transpose
// (dim rounded up to 64, vectors to 16), two words per vector, and a line for alignment.
constexpr int64_t s8_table_scratch_bytes(int64_t count, int64_t dim) {
  const int64_t d = (dim + 63) / 64 * 64, v = (count + 15) / 16 * 16;
  return d + 2 * count * d + 2 * d * v + 8 * v + 64;
}

struct Kernel;

// CPU features some kernels need besides their ISA level, which CPUs of one level may lack:
// AVX512_BF16 (spruce::avx512_bf16(): not on Ice Lake) and AVX512_VBMI (spruce::avx512_vbmi():
// not on Skylake-X or Cascade Lake, which have VNNI).
enum class Feature { None, Bf16, Vbmi };

// What an operation needs from a kernel. Attention: k = head_size (dtype F32). LayerNorm: k = width (F32).
// Spmm: W is n x k, pruned to `pattern`; m rows of X (m = 0: any m, the choice made when the weights are packed).
// `packed_for`, when set, says the weights are already packed for that kernel: only kernels that read the same format
// and tile accept (how the operator picks a second kernel for small m on the same weights).
struct Problem {
  Op op = Op::Spmm;
  DType dtype = DType::F32;
  Pattern pattern;
  int64_t m = 0, k = 0, n = 0;
  const Kernel* packed_for = nullptr;
};

// One registry entry. Names: "<dtype>-<op>-<tile>[-mN]-<isa>", the tile being h x (input channels
// per weight group): s8-spmm-4x1-avx512vnni reads strips of 4 output channels listing single input
// channels, s8-spmm-4x4 quads, s8-spmm-4of8 at most 4 of every 8 input channels; -mN only runs
// m <= N. The kernels with formats of their own (RowLanes, QuadMasks, Windows, LaneWindows) are
// named by the blocks they serve: s8-spmm-1x4-m2, s8-spmm-1x1-m4, s8-spmm-4x1-w-m8, s8-spmm-4x4-w-m4,
// s8-spmm-1x1-w-m32 and s8-spmm-1x4-w-m8 (w: windows). Reference kernels (isa scalar) end in
// "-ref".
struct Kernel {
  const char* name;
  Op op;
  DType dtype;
  Isa isa;
  int h = 1, kg = 1;                          // spmm tile: output channels per strip, k per group;
                                              // attention: head_size must be a multiple of kg
  bool any_rows = false;                      // accepts blocks of any height: a strip lists its rows' union
  WeightFormat weights = WeightFormat::None;  // what it reads (spmm)
  Layout layout = Layout::Gather;             // how pack() lays out xt (spmm)
  int64_t max_m = 0;                          // > 0: only for 1 <= m <= max_m
  Feature needs = Feature::None;              // besides `isa`
  std::variant<SpmmFn, DotInteractionFn, S8TableDotInteractionFn, AttentionFn, LayerNormFn> run;
  PackFn pack = nullptr;     // activations (spmm)
  bool whole_quads = false;  // LaneWindows: only for blocks of whole quads (1x4); else scattered nonzeros (1x1)

  // Whether this kernel can run p (ignoring the CPU: see select()).
  bool accepts(const Problem& p) const;
  SpmmFn spmm() const { return std::get<SpmmFn>(run); }
  DotInteractionFn dot_interaction() const { return std::get<DotInteractionFn>(run); }
  S8TableDotInteractionFn s8_table_dot_interaction() const { return std::get<S8TableDotInteractionFn>(run); }
  AttentionFn attention() const { return std::get<AttentionFn>(run); }
  LayerNormFn layer_norm() const { return std::get<LayerNormFn>(run); }
};

// Every kernel of every operation, best first within each operation, references last. Dispatch,
// tests and benchmarks all read this.
std::span<const Kernel> registry();
// Whether k may run here: its ISA within the CPU's and SPRUCE_MAX_ISA, and the feature it needs.
bool runs_here(const Kernel& k);
// The first kernel that accepts p and whose ISA is <= cap (and the CPU's). Throws if none does
// (never for a valid problem: the references accept every one).
const Kernel& select(const Problem& p, Isa cap = max_isa());
const Kernel* find(const std::string& name);  // by exact name, or null

// Packs dense pruned W for kernel k (an spmm kernel) in its format. Throws spruce::Error (usage)
// when W does not fit the format (a row with more than 4 nonzeros in an octet).
PackedWeights pack_weights(const Kernel& k, MatrixView<const float> w);
PackedWeights pack_weights(const Kernel& k, MatrixView<const int8_t> w);

}  // namespace spruce::kernels

namespace spruce {
// The packed arrays behind PackedWeights, as the kernels read them.
struct PackedWeights::Impl {
  const kernels::Kernel* kernel = nullptr;
  kernels::StripWeights<float> f32;
  kernels::StripWeights<int8_t> s8;
  std::vector<int32_t> wsum;  // s8: per output channel, sum_k w[n][k] (zero-point compensation)
  double sparsity = 0;
  kernels::StripView view;  // of f32 or s8
};
}  // namespace spruce
