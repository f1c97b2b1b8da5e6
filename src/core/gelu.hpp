// GELU in BERT's erf form, GELU(x) = x Φ(x), and exp on y <= 0, written once over an arithmetic M
// (a float, or a vector of them) so that the scalar epilogue (quant.cpp) and the vector ones
// (store_avx2.hpp, store_avx512.hpp) run the same IEEE operations in the same order and round
// alike: INT8 kernels stay bit-exact against the reference with GELU fused.
//
//   Φ(x) = 1 - h for x >= 0, else h, where h = erfc(|x| / √2) / 2
//   erfc(z) = t exp(-z² + P(t)), t = 1 / (1 + z/2)       (Numerical Recipes' erfcc: fractional
//                                                          error below 1.2e-7 for every z >= 0)
//   exp(y) = 2^n e^r, n = round(y / ln 2), |r| <= ln 2 / 2, e^r by its degree-7 Taylor polynomial
//
// M provides V, set, add/sub/mul/div, fma (fused, one rounding), abs, neg, max (NaN: the second
// operand, as vmaxps), round (to nearest even), scale (v * 2^n) and select_nonneg(x, a, b).
#pragma once

namespace spruce::gelu_detail {

inline constexpr float kErfcPoly[10] = {-1.26551223f, 1.00002368f,  0.37409196f, 0.09678418f,  -0.18628806f,
                                        0.27886807f,  -1.13520398f, 1.48851587f, -0.82215223f, 0.17087277f};
inline constexpr float kExpPoly[8] = {1.0f, 1.0f, 1.0f / 2, 1.0f / 6, 1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};

// exp(max(y, -87)) for y <= 0 (NaN: exp(-87), as max passes the bound): 2^n e^r with n in
// [-126, 0], so the scaling stays a normal float. Relative error a few ulp.
template <typename M>
typename M::V exp_from(typename M::V y) {
  using V = typename M::V;
  y = M::max(y, M::set(-87.0f));
  const V n = M::round(M::mul(y, M::set(1.44269504088896341f)));
  V r = M::fma(n, M::set(-0.693359375f), y);  // ln 2 in two parts (Cephes): y - n ln 2, nearly exact
  r = M::fma(n, M::set(2.12194440e-4f), r);
  V e = M::set(kExpPoly[7]);
  for (int i = 6; i >= 0; --i) e = M::fma(e, r, M::set(kExpPoly[i]));
  return M::scale(e, n);
}

template <typename M>
typename M::V gelu_erf(typename M::V x) {
  using V = typename M::V;
  const V z = M::mul(M::abs(x), M::set(0.70710678118654752f));
  const V t = M::div(M::set(1.0f), M::fma(M::set(0.5f), z, M::set(1.0f)));
  V p = M::set(kErfcPoly[9]);
  for (int i = 8; i >= 0; --i) p = M::fma(p, t, M::set(kErfcPoly[i]));
  // -z² as -x (x/2): x/2 is exact and the fma rounds once, where a rounded z would put z² times
  // its rounding error into the exponent (1e-6 relative at x = -4). exp(-87) is still a normal
  // float; below it h is far under float's resolution of Φ.
  const V h = M::mul(M::mul(t, exp_from<M>(M::fma(M::neg(x), M::mul(x, M::set(0.5f)), p))), M::set(0.5f));
  return M::mul(x, M::select_nonneg(x, M::sub(M::set(1.0f), h), h));
}

}  // namespace spruce::gelu_detail
