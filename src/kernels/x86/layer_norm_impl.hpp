// The vector LayerNorm kernel, written once over a math policy X (X::W floats per vector) and
// compiled once per ISA (f32_layer_norm_avx2.cpp, f32_layer_norm_avx512.cpp). Per row: v = x +
// residual is written to out while its sum builds up in two vector accumulators; then the squared
// deviations; then the normalized row over out. Channels past the last whole vector go one at a
// time. Include only from files compiled with the policy's ISA flags.
#pragma once
#include <cmath>

#include "kernels/layer_norm.hpp"

namespace spruce::kernels::x86 {
namespace {  // internal linkage: each ISA's file has its own copy

template <typename X>
void layer_norm(const LayerNormTask& t) {
  using V = typename X::V;
  constexpr int W = X::W;
  const int64_t vw = t.width / W * W;  // channels in whole vectors
  const V one = X::set(1.f), zero = X::zero();
  for (int64_t r = 0; r < t.rows; ++r) {
    const float* x = t.x + r * t.ld_x;
    const float* res = t.residual ? t.residual + r * t.ld_residual : nullptr;
    float* out = t.out + r * t.ld_out;
    V s0 = X::zero(), s1 = X::zero();
    int64_t c = 0;
    for (; c + 2 * W <= vw; c += 2 * W) {
      V a = X::load(x + c), b = X::load(x + c + W);
      if (res) a = X::add(a, X::load(res + c)), b = X::add(b, X::load(res + c + W));
      X::store(out + c, a), X::store(out + c + W, b);
      s0 = X::add(s0, a), s1 = X::add(s1, b);
    }
    for (; c < vw; c += W) {
      const V a = res ? X::add(X::load(x + c), X::load(res + c)) : X::load(x + c);
      X::store(out + c, a);
      s0 = X::add(s0, a);
    }
    float tail = 0.f;
    for (; c < t.width; ++c) tail += out[c] = res ? x[c] + res[c] : x[c];
    const float mean = (X::hsum(X::add(s0, s1)) + tail) / float(t.width);
    const V m = X::set(mean);
    V q0 = X::zero(), q1 = X::zero();
    for (c = 0; c + 2 * W <= vw; c += 2 * W) {
      const V a = X::sub(X::load(out + c), m), b = X::sub(X::load(out + c + W), m);
      q0 = X::fma(a, a, q0), q1 = X::fma(b, b, q1);
    }
    for (; c < vw; c += W) {
      const V a = X::sub(X::load(out + c), m);
      q0 = X::fma(a, a, q0);
    }
    float squares = 0.f;
    for (; c < t.width; ++c) squares = std::fma(out[c] - mean, out[c] - mean, squares);
    const float rstd = 1.f / std::sqrt((X::hsum(X::add(q0, q1)) + squares) / float(t.width) + t.eps);
    const V rs = X::set(rstd);
    for (c = 0; c < vw; c += W) {
      const V g = t.gamma ? X::load(t.gamma + c) : one, b = t.beta ? X::load(t.beta + c) : zero;
      X::store(out + c, X::fma(X::mul(X::sub(X::load(out + c), m), rs), g, b));
    }
    for (; c < t.width; ++c)
      out[c] = std::fma((out[c] - mean) * rstd, t.gamma ? t.gamma[c] : 1.f, t.beta ? t.beta[c] : 0.f);
  }
}

}  // namespace
}  // namespace spruce::kernels::x86
