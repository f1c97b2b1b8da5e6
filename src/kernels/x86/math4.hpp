// Math4<X>: a gelu.hpp arithmetic policy over four vectors of policy X (Avx2Math, Avx512Math).
// Lane by lane it runs X's operations, so it gives X's bits; but the four vectors' dependency
// chains are interleaved in program order. gelu_erf and exp_from are long serial chains of fmas,
// and one vector at a time leaves the FMA units waiting on latency: GELU over four vectors at once
// ran 1.3x faster on Zen 3. Include only from files compiled with X's ISA flags.
#pragma once

namespace spruce::kernels::x86 {
namespace {  // internal linkage, as the policies it wraps

template <typename X>
struct Math4 {
  using Lane = typename X::V;
  struct V {
    Lane v[4];
  };
  template <typename F, typename... A>
  [[gnu::always_inline]] static V each(F f, const A&... a) {
    return V{{f(a.v[0]...), f(a.v[1]...), f(a.v[2]...), f(a.v[3]...)}};
  }
  [[gnu::always_inline]] static V set(float c) {
    const Lane x = X::set(c);
    return V{{x, x, x, x}};
  }
  // clang-format off
  [[gnu::always_inline]] static V mul(V a, V b) { return each([](Lane x, Lane y) { return X::mul(x, y); }, a, b); }
  [[gnu::always_inline]] static V div(V a, V b) { return each([](Lane x, Lane y) { return X::div(x, y); }, a, b); }
  [[gnu::always_inline]] static V min(V a, V b) { return each([](Lane x, Lane y) { return X::min(x, y); }, a, b); }
  [[gnu::always_inline]] static V max(V a, V b) { return each([](Lane x, Lane y) { return X::max(x, y); }, a, b); }
  [[gnu::always_inline]] static V scale(V a, V n) { return each([](Lane x, Lane y) { return X::scale(x, y); }, a, n); }
  [[gnu::always_inline]] static V fma(V a, V b, V c) {
    return each([](Lane x, Lane y, Lane z) { return X::fma(x, y, z); }, a, b, c);
  }
  [[gnu::always_inline]] static V round(V a) { return each([](Lane x) { return X::round(x); }, a); }
  // clang-format on
};

}  // namespace
}  // namespace spruce::kernels::x86
