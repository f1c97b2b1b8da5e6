// x86 kernels, each compiled with its own ISA flags (src/kernels/CMakeLists.txt). Call only
// through the registry, which checks the running CPU first.
#pragma once
#include "../kernel.hpp"

namespace spruce::kernels::x86 {

void s8_spmm_4x1_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_1x1_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_4x4_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_1x4_avx512vnni(const StripView& w, const SpmmArgs& a);
void pack_u8_quads_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void s8_spmm_4x1_m8_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_4x1_w_avx512vnni(const StripView& w, const SpmmArgs& a);         // needs AVX512_VBMI
void s8_spmm_lane_windows_avx512vnni(const StripView& w, const SpmmArgs& a);  // needs AVX512_VBMI
void s8_spmm_1x4_m2_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_1x1_m4_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_4of8_avx512vnni(const StripView& w, const SpmmArgs& a);
void s8_spmm_16x64_amx(const StripView& w, const SpmmArgs& a);
void s8_spmm_16x4_amx(const StripView& w, const SpmmArgs& a);
void s8_spmm_16x1_amx(const StripView& w, const SpmmArgs& a);
void pack_u8_gather64_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void pack_u8_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);

void s8_spmm_4x1_avx2(const StripView& w, const SpmmArgs& a);
void s8_spmm_1x1_avx2(const StripView& w, const SpmmArgs& a);
void s8_spmm_4x1_m4_avx2(const StripView& w, const SpmmArgs& a);
void pack_s16_avx2(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);

template <int H>
void f32_spmm_avx512(const StripView& w, const SpmmArgs& a);
extern template void f32_spmm_avx512<1>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx512<2>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx512<4>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx512<8>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx512<16>(const StripView&, const SpmmArgs&);
void pack_f32_avx512(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);

template <int H>
void f32_spmm_avx2(const StripView& w, const SpmmArgs& a);
extern template void f32_spmm_avx2<1>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx2<2>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx2<4>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_avx2<8>(const StripView&, const SpmmArgs&);
template <int H>
void f32_spmm_m2_avx2(const StripView& w, const SpmmArgs& a);
extern template void f32_spmm_m2_avx2<4>(const StripView&, const SpmmArgs&);
extern template void f32_spmm_m2_avx2<8>(const StripView&, const SpmmArgs&);
void pack_f32_avx2(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);

}  // namespace spruce::kernels::x86
