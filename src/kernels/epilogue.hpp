// Scalar epilogue: the arithmetic of spruce/quant.hpp, one output at a time. Used by the
// reference and by the kernels' tail paths, so every path rounds the same way. Also the row-count
// dispatch of the few-row kernels.
#pragma once
#include <cstdint>
#include <type_traits>

#include "kernel.hpp"

namespace spruce::kernels {
// Internal linkage: this header is also compiled into the AVX-512 files, and a shared inline
// definition could let the linker hand AVX-512 code to a baseline caller (SIGILL on older CPUs).
namespace {

inline float finish_f32(float acc, int64_t n, const Epilogue& ep) {
  float f = acc;
  if (ep.bias) f = f + ep.bias[n];
  return ep.act == Activation::None ? f : apply_activation(f, ep.act);
}

inline float dequantize(int32_t acc, int64_t n, const Epilogue& ep) {
  float f = float(acc - ep.comp[n]) * ep.scale[n];
  if (ep.bias) f = f + ep.bias[n];
  return ep.act == Activation::None ? f : apply_activation(f, ep.act);
}

// Writes the dequantized value f to element `at` of y in the epilogue's output type.
inline void store_out(float f, const Epilogue& ep, void* y, int64_t at) {
  switch (ep.out) {
    case OutType::F32: static_cast<float*>(y)[at] = f; break;
    case OutType::U8: static_cast<uint8_t*>(y)[at] = requantize_u8(f, ep.y_inv_scale, ep.y_zero_point); break;
    case OutType::S8: static_cast<int8_t*>(y)[at] = requantize_s8(f, ep.y_inv_scale, ep.y_zero_point); break;
  }
}

// The epilogue of one accumulator of output channel n and row m (the vector epilogues' tails):
// the same operations in the same order as they.
template <typename Acc>
inline void store_one(Acc acc, int64_t n, int64_t m, const SpmmArgs& a) {
  if constexpr (std::is_integral_v<Acc>)
    store_out(dequantize(acc, n, *a.ep), *a.ep, a.y, a.y_at(m, n));
  else
    static_cast<float*>(a.y)[a.y_at(m, n)] = finish_f32(acc, n, *a.ep);
}

// f(std::integral_constant<int, M>{}) with M = min(N, rows) (nothing for rows < 1): the narrow
// kernels keep M rows of accumulators in registers, so M must be a compile-time constant. The
// m-vector kernels pass the vectors of m left, so that the last tile is no wider than xt.
template <int N, typename F>
inline void with_rows_upto(int64_t rows, F&& f) {
  if (rows < 1) return;
  if constexpr (N > 1)
    if (rows < N) return with_rows_upto<N - 1>(rows, f);
  f(std::integral_constant<int, N>{});
}

}  // namespace
}  // namespace spruce::kernels
