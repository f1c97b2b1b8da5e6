// The kernel table of every operation: best first, references last. Dispatch, tests and
// benchmarks all read it; what a kernel accepts follows from its fields (accepts()).
#include <array>
#include <string>

#include "interaction.hpp"
#include "kernel.hpp"
#include "reference/ref.hpp"
#include "spruce/error.hpp"
#include "x86/x86.hpp"

namespace spruce::kernels {
namespace {

using namespace x86;
constexpr DType F = DType::F32, S = DType::S8;
constexpr Isa Vnni = Isa::Avx512Vnni, Avx512 = Isa::Avx512, Avx2 = Isa::Avx2, Scalar = Isa::Scalar;
constexpr WeightFormat Strips = WeightFormat::Strips, Quads = WeightFormat::QuadStrips, Octets = WeightFormat::Octets;

constexpr Kernel spmm(const char* name, DType d, Isa isa, int h, WeightFormat wf, SpmmFn run, PackFn pack,
                      Layout layout = Layout::Gather, int64_t max_m = 0, Feature needs = Feature::None) {
  const int kg = wf == Octets                     ? 8
                 : wf == WeightFormat::TileBlocks ? 64
                 : wf == WeightFormat::Windows    ? 16
                 : d == S                         ? 4
                                                  : 1;
  return Kernel{name, Op::Spmm, d, isa, h, kg, false, wf, layout, max_m, needs, run, pack};
}
// The same kernel, for blocks of whole quads only (LaneWindows).
constexpr Kernel for_whole_quads(Kernel k) {
  k.whole_quads = true;
  return k;
}
// AMX: strips of 16 output channels listing the union of their rows' input channels, whatever
// the pattern's block height, in tiles of 64 input channels.
constexpr Kernel amx(const char* name, WeightFormat wf, SpmmFn run, PackFn pack, Layout layout) {
  return Kernel{name, Op::Spmm, S, Isa::Amx, 16, 64, true, wf, layout, 0, Feature::None, run, pack};
}
constexpr Kernel attention(const char* name, Isa isa, int head_multiple, AttentionFn run, DType d = DType::F32) {
  return Kernel{name,
                Op::Attention,
                d,
                isa,
                1,
                head_multiple,
                false,
                WeightFormat::None,
                Layout::Gather,
                0,
                d == DType::BF16 && isa != Scalar ? Feature::Bf16 : Feature::None,
                run,
                nullptr};
}
constexpr Kernel layer_norm(const char* name, Isa isa, LayerNormFn run) {
  return Kernel{name, Op::LayerNorm, F,   isa,    1, 1, false, WeightFormat::None, Layout::Gather,
                0,    Feature::None, run, nullptr};
}
template <typename Fn>
constexpr Kernel dot(const char* name, DType d, Isa isa, Fn run) {
  return Kernel{name, Op::DotInteraction, d,   isa,    1, 1, false, WeightFormat::None, Layout::Gather,
                0,    Feature::None,      run, nullptr};
}

const std::array kKernels{
    // Sparse GEMM, INT8: the small-m kernels first, so that a problem with a small m finds them.
    // Windows of input channels (VBMI), as far as they beat the strip and quad kernels: for blocks
    // 4 rows high up to m = 4 for whole quads (4x16) and 8 for the rest (4x1), Zen 5; for blocks
    // under 4 rows high the lane windows up to m = 8 for whole quads (1x4) and 32 for scattered
    // nonzeros (1x1), Zen 4 (the quad and strip kernels win at m = 16 and 64). The operator also
    // keeps the 4-high kernels' X rows in L1 (few_max_m).
    spmm("s8-spmm-4x1-w-m8-avx512vnni", S, Vnni, 4, WeightFormat::Windows, s8_spmm_4x1_w_avx512vnni,
         ref::pack_u8_windows, Layout::Windows, 8, Feature::Vbmi),
    spmm("s8-spmm-4x4-w-m4-avx512vnni", S, Vnni, 4, WeightFormat::Windows, s8_spmm_4x1_w_avx512vnni,
         ref::pack_u8_windows, Layout::Windows, 4, Feature::Vbmi),
    spmm("s8-spmm-1x1-w-m32-avx512vnni", S, Vnni, 16, WeightFormat::LaneWindows, s8_spmm_lane_windows_avx512vnni,
         ref::pack_u8_windows, Layout::Windows, 32, Feature::Vbmi),
    for_whole_quads(spmm("s8-spmm-1x4-w-m8-avx512vnni", S, Vnni, 16, WeightFormat::LaneWindows,
                         s8_spmm_lane_windows_avx512vnni, ref::pack_u8_windows, Layout::Windows, 8, Feature::Vbmi)),
    spmm("s8-spmm-1x4-m2-avx512vnni", S, Vnni, 16, WeightFormat::RowLanes, s8_spmm_1x4_m2_avx512vnni, ref::pack_u8_rows,
         Layout::Rows, 2),
    spmm("s8-spmm-1x1-m4-avx512vnni", S, Vnni, 16, WeightFormat::QuadMasks, s8_spmm_1x1_m4_avx512vnni,
         ref::pack_u8_rows, Layout::Rows, 4),
    spmm("s8-spmm-4x1-m8-avx512vnni", S, Vnni, 4, Strips, s8_spmm_4x1_m8_avx512vnni, ref::pack_u8_m8, Layout::M8, 4),
    spmm("s8-spmm-16x64-amx", S, Isa::Amx, 16, WeightFormat::TileBlocks, s8_spmm_16x64_amx, ref::pack_u8_rows64,
         Layout::Rows64),
    amx("s8-spmm-16x4-amx", Quads, s8_spmm_16x4_amx, pack_u8_quads_avx512, Layout::Quads),
    amx("s8-spmm-16x1-amx", Strips, s8_spmm_16x1_amx, pack_u8_gather64_avx512, Layout::Gather64),
    spmm("s8-spmm-4of8-avx512vnni", S, Vnni, 16, Octets, s8_spmm_4of8_avx512vnni, ref::pack_u8_rows, Layout::Rows),
    spmm("s8-spmm-4x4-avx512vnni", S, Vnni, 4, Quads, s8_spmm_4x4_avx512vnni, pack_u8_quads_avx512, Layout::Quads),
    spmm("s8-spmm-1x4-avx512vnni", S, Vnni, 1, Quads, s8_spmm_1x4_avx512vnni, pack_u8_quads_avx512, Layout::Quads),
    spmm("s8-spmm-4x1-avx512vnni", S, Vnni, 4, Strips, s8_spmm_4x1_avx512vnni, pack_u8_avx512),
    spmm("s8-spmm-1x1-avx512vnni", S, Vnni, 1, Strips, s8_spmm_1x1_avx512vnni, pack_u8_avx512),
    // Without AVX-512 VNNI: exact 16-bit products (vpmaddwd) on activations widened to int16.
    spmm("s8-spmm-4x1-m4-avx2", S, Avx2, 4, Strips, s8_spmm_4x1_m4_avx2, ref::pack_u8_m8, Layout::M8, 4),
    spmm("s8-spmm-4x1-avx2", S, Avx2, 4, Strips, s8_spmm_4x1_avx2, pack_s16_avx2, Layout::Words),
    spmm("s8-spmm-1x1-avx2", S, Avx2, 1, Strips, s8_spmm_1x1_avx2, pack_s16_avx2, Layout::Words),
    spmm("s8-spmm-ref", S, Scalar, 1, Strips, ref::spmm_s8, ref::pack_u8),
    // Sparse GEMM, FP32.
    spmm("f32-spmm-16x1-avx512", F, Avx512, 16, Strips, f32_spmm_avx512<16>, pack_f32_avx512),
    spmm("f32-spmm-8x1-avx512", F, Avx512, 8, Strips, f32_spmm_avx512<8>, pack_f32_avx512),
    spmm("f32-spmm-4x1-avx512", F, Avx512, 4, Strips, f32_spmm_avx512<4>, pack_f32_avx512),
    spmm("f32-spmm-2x1-avx512", F, Avx512, 2, Strips, f32_spmm_avx512<2>, pack_f32_avx512),
    spmm("f32-spmm-1x1-avx512", F, Avx512, 1, Strips, f32_spmm_avx512<1>, pack_f32_avx512),
    spmm("f32-spmm-8x1-m2-avx2", F, Avx2, 8, Strips, f32_spmm_m2_avx2<8>, pack_f32_avx2, Layout::Gather, 2),
    spmm("f32-spmm-4x1-m2-avx2", F, Avx2, 4, Strips, f32_spmm_m2_avx2<4>, pack_f32_avx2, Layout::Gather, 2),
    spmm("f32-spmm-8x1-avx2", F, Avx2, 8, Strips, f32_spmm_avx2<8>, pack_f32_avx2),
    spmm("f32-spmm-4x1-avx2", F, Avx2, 4, Strips, f32_spmm_avx2<4>, pack_f32_avx2),
    spmm("f32-spmm-2x1-avx2", F, Avx2, 2, Strips, f32_spmm_avx2<2>, pack_f32_avx2),
    spmm("f32-spmm-1x1-avx2", F, Avx2, 1, Strips, f32_spmm_avx2<1>, pack_f32_avx2),
    spmm("f32-spmm-ref", F, Scalar, 1, Strips, ref::spmm_f32, ref::pack_f32),
    // Dot interaction (DLRM) over f32 tables, and over row-wise INT8 tables.
    dot("f32-dot-interaction-u8-avx512", F, Avx512, DotInteractionFn(x86::f32_dot_interaction_u8_avx512)),
    dot("f32-dot-interaction-u8-avx2", F, Avx2, DotInteractionFn(x86::f32_dot_interaction_u8_avx2)),
    dot("f32-dot-interaction-u8-ref", F, Scalar, DotInteractionFn(ref::f32_dot_interaction_u8)),
    dot("s8-table-dot-interaction-u8-avx512vnni", S, Vnni,
        S8TableDotInteractionFn(x86::s8_table_dot_interaction_u8_avx512vnni)),
    dot("s8-table-dot-interaction-u8-avx2", S, Avx2, S8TableDotInteractionFn(x86::s8_table_dot_interaction_u8_avx2)),
    dot("s8-table-dot-interaction-u8-ref", S, Scalar, S8TableDotInteractionFn(ref::s8_table_dot_interaction_u8)),
    // Scaled dot-product attention, one head of one sequence per call (transformer encoders).
    attention("f32-attention-avx512", Avx512, 16, x86::f32_attention_avx512),
    attention("f32-attention-avx2", Avx2, 8, x86::f32_attention_avx2),
    attention("f32-attention-ref", Scalar, 1, ref::f32_attention),
    attention("bf16-attention-avx512", Avx512, 32, x86::bf16_attention_avx512, DType::BF16),
    attention("bf16-attention-ref", Scalar, 2, ref::bf16_attention, DType::BF16),
    attention("s8-attention-avx512vnni", Vnni, 16, x86::s8_attention_avx512vnni, DType::S8),
    attention("s8-attention-ref", Scalar, 1, ref::s8_attention, DType::S8),
    // Residual add + LayerNorm over rows (transformer encoders), any width.
    layer_norm("f32-layer-norm-avx512", Avx512, x86::f32_layer_norm_avx512),
    layer_norm("f32-layer-norm-avx2", Avx2, x86::f32_layer_norm_avx2),
    layer_norm("f32-layer-norm-ref", Scalar, ref::f32_layer_norm),
};

// N:M with at most 4 nonzeros in every aligned 8 input channels: 2:4, 1:4, 4:8, 1:8, 2:8...
bool fits_octets(const Pattern& p) { return p.is_nm() && 8 % p.m() == 0 && 8 / p.m() * p.n() <= 4; }

}  // namespace

bool Kernel::accepts(const Problem& p) const {
  if (p.op != op || p.dtype != dtype) return false;
  if (max_m > 0 && (p.m < 1 || p.m > max_m)) return false;
  if (op == Op::Attention) return p.k >= 1 && p.k % kg == 0;
  if (op == Op::LayerNorm) return p.k >= 1;
  if (op != Op::Spmm) return true;
  if (p.packed_for) return p.packed_for->weights == weights && p.packed_for->h == h && p.packed_for->kg == kg;
  if (any_rows && p.pattern.is_nm()) return false;  // N:M's row-wise groups have their own format (Octets)
  // A strip of h output channels shares its input-channel list; it pays off when the pattern's
  // blocks span those h channels (for N:M, blocks are one row).
  const BlockGrid g = block_grid(p.pattern, std::max<int64_t>(p.n, 1), std::max<int64_t>(p.k, 1));
  switch (weights) {
    case WeightFormat::Octets: return fits_octets(p.pattern);
    case WeightFormat::TileBlocks: return !p.pattern.is_nm() && g.block_cols % 64 == 0 && g.block_rows % 16 == 0;
    case WeightFormat::QuadStrips:
      return !p.pattern.is_nm() && g.block_cols % 4 == 0 && (any_rows || g.block_rows % h == 0);
    case WeightFormat::Strips: return any_rows || g.block_rows % h == 0;
    // One lane per output channel: for blocks one channel high, where channels share nothing.
    // Whole quads (1x4, 1x16): each row's own list of quads, one row per lane.
    case WeightFormat::RowLanes: return !p.pattern.is_nm() && g.block_rows == 1 && g.block_cols % 4 == 0;
    // Nonzeros scattered over a row's quads (1x1, 2x1, 1x2, N:M): the panel's quads with row masks.
    case WeightFormat::QuadMasks: return g.block_rows < 4 && g.block_cols % 4 != 0;
    case WeightFormat::Windows:  // whole quads only up to m = 4 (see the table)
      return !p.pattern.is_nm() && g.block_rows % 4 == 0 && (max_m <= 4 || g.block_cols % 4 != 0);
    // Blocks under 4 rows high, whole quads (1x4) or not (1x1) as the entry says.
    case WeightFormat::LaneWindows:
      return !p.pattern.is_nm() && g.block_rows % 4 != 0 && (g.block_cols % 4 == 0) == whole_quads;
    case WeightFormat::None: return false;
  }
  return false;
}

std::span<const Kernel> registry() { return kKernels; }

namespace {
bool has(Feature f) { return f == Feature::None || (f == Feature::Bf16 ? avx512_bf16() : avx512_vbmi()); }
bool allowed(const Kernel& k, Isa cap) { return k.isa <= cap && k.isa <= detected_isa() && has(k.needs); }
}  // namespace

bool runs_here(const Kernel& k) { return allowed(k, max_isa()); }

const Kernel& select(const Problem& p, Isa cap) {
  for (const Kernel& k : kKernels)
    if (allowed(k, cap) && k.accepts(p)) return k;
  usage_error("no kernel accepts this problem");  // unreachable for valid problems: the references accept them
}

const Kernel* find(const std::string& name) {
  for (const Kernel& k : kKernels)
    if (name == k.name) return &k;
  return nullptr;
}

}  // namespace spruce::kernels
