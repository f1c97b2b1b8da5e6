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

namespace ref {
void f32_dot_interaction_u8(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
}
namespace x86 {
void f32_dot_interaction_u8_avx2(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void f32_dot_interaction_u8_avx512(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
}

}  // namespace spruce::kernels
