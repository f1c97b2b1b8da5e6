// The one kernel table: best first, references last. Dispatch, tests and benchmarks read it.
#include <array>
#include <cstring>
#include <string>

#include "kernel.hpp"
#include "reference/ref.hpp"
#include "spruce/error.hpp"
#include "x86/x86.hpp"

namespace spruce::kernels {
namespace {

template <DType D, int H>
bool takes(const Problem& p) { return p.dtype == D && p.h == H; }
bool takes_nm8(const Problem& p) { return p.dtype == DType::S8 && p.h == 16 && p.nm8; }
bool takes_narrow(const Problem& p) { return p.dtype == DType::S8 && p.h == 4 && p.m >= 1 && p.m <= 4; }
bool takes_quads4(const Problem& p) { return p.dtype == DType::S8 && p.h == 4 && p.quads; }
bool takes_quads1(const Problem& p) { return p.dtype == DType::S8 && p.h == 1 && p.quads; }
template <DType D>
bool takes_any(const Problem& p) { return p.dtype == D; }

using namespace x86;
constexpr DType F = DType::F32, S = DType::S8;

constexpr Layout Q = Layout::Quads;

const std::array<Kernel, 13> kKernels{{
    {"s8-spmm-2of4-avx512vnni", S, Isa::Avx512Vnni, takes_nm8, s8_spmm_2of4_avx512vnni, ref::pack_u8_rows, Layout::Rows},
    {"s8-spmm-4x1m4-avx512vnni", S, Isa::Avx512Vnni, takes_narrow, s8_spmm_4x1m4_avx512vnni, ref::pack_u8_narrow, Layout::Narrow},
    {"s8-spmm-4x4-avx512vnni", S, Isa::Avx512Vnni, takes_quads4, s8_spmm_4x4_avx512vnni, pack_u8_quads_avx512, Q},
    {"s8-spmm-1x4-avx512vnni", S, Isa::Avx512Vnni, takes_quads1, s8_spmm_1x4_avx512vnni, pack_u8_quads_avx512, Q},
    {"s8-spmm-4x1-avx512vnni", S, Isa::Avx512Vnni, takes<S, 4>, s8_spmm_4x1_avx512vnni, pack_u8_avx512},
    {"s8-spmm-1x1-avx512vnni", S, Isa::Avx512Vnni, takes<S, 1>, s8_spmm_1x1_avx512vnni, pack_u8_avx512},
    {"f32-spmm-16x1-avx512", F, Isa::Avx512, takes<F, 16>, f32_spmm_avx512<16>, pack_f32_avx512},
    {"f32-spmm-8x1-avx512", F, Isa::Avx512, takes<F, 8>, f32_spmm_avx512<8>, pack_f32_avx512},
    {"f32-spmm-4x1-avx512", F, Isa::Avx512, takes<F, 4>, f32_spmm_avx512<4>, pack_f32_avx512},
    {"f32-spmm-2x1-avx512", F, Isa::Avx512, takes<F, 2>, f32_spmm_avx512<2>, pack_f32_avx512},
    {"f32-spmm-1x1-avx512", F, Isa::Avx512, takes<F, 1>, f32_spmm_avx512<1>, pack_f32_avx512},
    {"s8-spmm-ref", S, Isa::Scalar, takes_any<S>, ref::spmm_s8, ref::pack_u8},
    {"f32-spmm-ref", F, Isa::Scalar, takes_any<F>, ref::spmm_f32, ref::pack_f32},
}};

}  // namespace

std::span<const Kernel> registry() { return kKernels; }

const Kernel& select(const Problem& p, Isa cap) {
  for (const Kernel& k : kKernels)
    if (k.isa <= cap && k.isa <= detected_isa() && k.accepts(p)) return k;
  usage_error("no kernel accepts this problem");  // unreachable: the references accept every problem
}

const Kernel* find(const char* name) {
  for (const Kernel& k : kKernels)
    if (!std::strcmp(k.name, name)) return &k;
  return nullptr;
}

}  // namespace spruce::kernels
