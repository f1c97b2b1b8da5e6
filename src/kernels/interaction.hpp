// Dot-interaction microkernels (public operator: spruce/interaction.hpp) and their registry.
//
// A kernel handles one sample: `v` points at its `count` vectors of `dim` floats; it writes
// out[0..dim) = q(v[0]) and out[dim + p] = q(dot(v[i], v[j])) for pair p = i * (i - 1) / 2 + j.
// Summation order, fixed for every kernel so that they agree bit for bit: lane l = 0..15 sums
// fma(a[k], b[k], s_l) over k = l, l + 16, l + 32, ... (< dim) from s_l = +0; then
// s_l += s_{l+8} (l < 8), s_l += s_{l+4} (l < 4), s_l += s_{l+2} (l < 2), dot = s_0 + s_1.
// Quantization is quantize_u8's: round_half_even(clamp(x * (1 / scale) + zero_point, 0, 255)).
#pragma once
#include <cstdint>
#include <span>

#include "spruce/calibration.hpp"
#include "spruce/cpu.hpp"

namespace spruce::kernels {

using DotInteractionFn = void (*)(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);

struct DotInteractionKernel {
  const char* name;  // e.g. "f32-dot-interaction-u8-avx512"
  Isa isa;           // the least the CPU must support
  DotInteractionFn fn;
};

// Best first; the scalar reference is last and always allowed.
std::span<const DotInteractionKernel> dot_interaction_kernels();
// The first kernel that max_isa() allows.
const DotInteractionKernel& choose_dot_interaction();

// The same with row-wise INT8 embedding rows: v[0] = dense, v[1 + t] = float(rows[t][k]) *
// scales[t] (one rounding, no fused multiply-add), then exactly the f32 kernel's arithmetic. Each
// kernel dequantizes the sample's count - 1 rows once into scratch [(count - 1) * dim] (hot in L1,
// where the f32 kernels reread each row count / 4 times), points vp [count] at them and runs its
// f32 counterpart, so every kernel agrees byte for byte with the reference and with the f32
// operator on the dequantized tables.
using S8TableDotInteractionFn = void (*)(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                         int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp);

struct S8TableDotInteractionKernel {
  const char* name;  // e.g. "s8-table-dot-interaction-u8-avx512"
  Isa isa;
  S8TableDotInteractionFn fn;
};

std::span<const S8TableDotInteractionKernel> s8_table_dot_interaction_kernels();
const S8TableDotInteractionKernel& choose_s8_table_dot_interaction();

namespace ref {
void f32_dot_interaction_u8(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void s8_table_dot_interaction_u8(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                 int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp);
}
namespace x86 {
void f32_dot_interaction_u8_avx2(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void f32_dot_interaction_u8_avx512(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void s8_table_dot_interaction_u8_avx2(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                      int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp);
void s8_table_dot_interaction_u8_avx512(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                        int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp);
}

}  // namespace spruce::kernels
