// GELU in BERT's erf form, GELU(x) = x/2 (1 + erf(x/√2)), and exp on y <= 0, written once over an
// arithmetic M (a float, or a vector of them) so that the scalar epilogue (quant.cpp) and the
// vector ones (store_avx2.hpp, store_avx512.hpp) run the same IEEE operations in the same order and
// round alike: INT8 kernels stay bit-exact against the reference with GELU fused.
//
//   erf(x/√2) = x P(x²) / Q(x²) for |x| <= B, P of degree 6 and Q of degree 4: a near-minimax
//   rational fit on [0, 4√2] (absolute error 5.4e-8 in exact arithmetic), so GELU costs 11 fmas,
//   a division and six other operations, and no exp. Beyond B, erf(x/√2) = ±1 exactly: B is the
//   largest float up to 4√2 where the fit evaluates to 1.0f, so GELU(x) = x above it and 0 below -B
//   (the true values differ by under 6e-8). The error is that of float's erf in PyTorch's
//   x/2 (1 + erf(x/√2)): at most 1.7e-7 max(|x|, 1) absolute; relative, it grows in the negative
//   tail, where GELU is nearly zero.
//   exp(y) = 2^n e^r, n = round(y / ln 2), |r| <= ln 2 / 2, e^r by its degree-7 Taylor polynomial
//
// M provides V, set, mul/div, fma (fused, one rounding), min and max (NaN: the second operand, as
// vminps/vmaxps), round (to nearest even) and scale (v * 2^n).
#pragma once

namespace spruce::gelu_detail {

// erf(x/√2) = x P(x²) / Q(x²), lowest degree first.
inline constexpr float kErfP[7] = {0.79788421554738f,      0.07562892376797116f,  0.0092682087420027f,
                                   3.7932169737560513e-4f, 6.871936522705143e-6f, -4.397413913285114e-8f,
                                   2.1230921428273195e-10f};
inline constexpr float kErfQ[5] = {1.0f, 0.2614506352852447f, 0.030196387633837946f, 0.0019435146940325622f,
                                   6.86030330547619e-5f};
inline constexpr float kErfBound = 5.6568532f;  // P/Q rounds to exactly 1.0f here

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
  const V c = M::min(M::max(x, M::set(-kErfBound)), M::set(kErfBound));  // NaN: -B, and x keeps the NaN
  const V c2 = M::mul(c, c);
  V p = M::set(kErfP[6]);
  for (int i = 5; i >= 0; --i) p = M::fma(p, c2, M::set(kErfP[i]));
  V q = M::set(kErfQ[4]);
  for (int i = 3; i >= 0; --i) q = M::fma(q, c2, M::set(kErfQ[i]));
  const V erf = M::div(M::mul(p, c), q);
  const V half_x = M::mul(x, M::set(0.5f));
  return M::fma(half_x, erf, half_x);
}

}  // namespace spruce::gelu_detail
