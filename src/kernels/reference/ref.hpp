// Scalar reference kernels (the registry's "*-ref" entries) and the dense oracles the tests use.
#pragma once
#include "../kernel.hpp"

namespace spruce::kernels::ref {

void pack_f32(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void pack_u8(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void pack_u8_rows64(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void pack_u8_gather64(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void pack_u8_quads(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt,
                   int64_t ldxt);                                                                        // k0 % 4 == 0
void pack_u8_m8(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);  // m <= 4
void pack_s16(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);    // Words
void pack_u8_rows(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
// Layout::Windows: rows as given; the call that packs the last input channel zeroes the padding.
void pack_u8_windows(const void* x, int64_t m, int64_t lda, int64_t k0, int64_t k1, void* xt, int64_t ldxt);
void spmm_f32(const StripView& w, const SpmmArgs& a);
void spmm_s8(const StripView& w, const SpmmArgs& a);

// Dense oracles straight from the definition (no packing): Y[m][n] = X[m][k] . W[n][k]^T + epilogue.
void dense_f32(const float* x, int64_t m, int64_t k, int64_t n, const float* w, const Epilogue& ep, float* y,
               int64_t ldy);
void dense_s8(const uint8_t* x, int64_t m, int64_t k, int64_t n, const int8_t* w, int32_t x_zero_point,
              const Epilogue& ep, void* y, int64_t ldy);  // ignores ep.comp

}  // namespace spruce::kernels::ref
