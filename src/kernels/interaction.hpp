// The dot-interaction microkernels (contract and registry entries: kernel.hpp; operator:
// spruce/interaction.hpp).
#pragma once
#include <cstdint>

#include "kernel.hpp"

namespace spruce::kernels {

namespace ref {
void f32_dot_interaction_u8(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void s8_table_dot_interaction_u8(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                 int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp);
}  // namespace ref
namespace x86 {
void f32_dot_interaction_u8_avx2(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void f32_dot_interaction_u8_avx512(const float* const* v, int64_t count, int64_t dim, const U8Quant& q, uint8_t* out);
void s8_table_dot_interaction_u8_avx2(const float* dense, const int8_t* const* rows, const float* scales, int64_t count,
                                      int64_t dim, const U8Quant& q, uint8_t* out, float* scratch, const float** vp);
void s8_table_dot_interaction_u8_avx512(const float* dense, const int8_t* const* rows, const float* scales,
                                        int64_t count, int64_t dim, const U8Quant& q, uint8_t* out, float* scratch,
                                        const float** vp);
}  // namespace x86

}  // namespace spruce::kernels
