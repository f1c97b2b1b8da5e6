#include "spruce/schedule.hpp"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "spruce/error.hpp"

namespace spruce {

Decay parse_decay(std::string_view t) {
  if (t == "exp") return Decay::Exp;
  if (t == "cos") return Decay::Cos;
  if (t == "linear") return Decay::Linear;
  if (t == "cube") return Decay::Cube;
  usage_error("unknown sparsity_decay_type '" + std::string(t) + "': valid are exp, cos, linear, cube");
}

std::string to_string(Decay d) {
  switch (d) {
    case Decay::Exp: return "exp";
    case Decay::Cos: return "cos";
    case Decay::Linear: return "linear";
    case Decay::Cube: return "cube";
  }
  return "?";
}

double decay_curve(Decay d, double s0, double sT, double p) {
  p = std::clamp(p, 0.0, 1.0);
  switch (d) {
    case Decay::Linear: return s0 + (sT - s0) * p;
    case Decay::Cos: return sT + (s0 - sT) * (1.0 + std::cos(std::numbers::pi * p)) / 2.0;
    case Decay::Cube: return sT + (s0 - sT) * std::pow(1.0 - p, 3.0);
    case Decay::Exp: {
      // Geometric in density; falls back to linear when the target density is zero.
      double d0 = 1.0 - s0, dT = 1.0 - sT;
      if (d0 <= 0.0 || dT <= 0.0) return s0 + (sT - s0) * p;
      return 1.0 - std::pow(d0, 1.0 - p) * std::pow(dT, p);
    }
  }
  return sT;
}

bool Schedule::prunes_at(int64_t step) const {
  if (step < start_step || step > end_step) return false;
  if (step == start_step || step == end_step) return true;
  return (step - start_step) % std::max<int64_t>(1, frequency) == 0;
}

double Schedule::target_at(int64_t step) const {
  if (step < start_step) return initial;
  if (oneshot() || step >= end_step) return target;
  int64_t f = std::max<int64_t>(1, frequency);
  int64_t last = (step - start_step) / f * f;  // steps since start of the last pruning step
  double p = double(last) / double(end_step - start_step);
  return decay_curve(decay, initial, target, p);
}

}  // namespace spruce
