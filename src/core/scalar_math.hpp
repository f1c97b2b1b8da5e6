// gelu.hpp's math policy on one float: what the scalar epilogue and the scalar references run,
// with the same operations (one rounding per fma) as the vector policies run on 16 or 8 lanes.
#pragma once
#include <cmath>

namespace spruce {

struct ScalarMath {
  using V = float;
  static float set(float c) { return c; }
  static float mul(float a, float b) { return a * b; }
  static float div(float a, float b) { return a / b; }
  static float fma(float a, float b, float c) { return std::fma(a, b, c); }
  static float min(float a, float b) { return a < b ? a : b; }
  static float max(float a, float b) { return a > b ? a : b; }
  static float round(float a) { return std::nearbyint(a); }
  static float scale(float a, float n) { return std::ldexp(a, int(n)); }  // n in [-126, 0]
};

}  // namespace spruce
