// The sparsity schedule: when to prune and how far, from initial to target sparsity.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace spruce {

// Closed forms, with progress p in [0, 1], s0 the initial and sT the target sparsity:
//   linear  s = s0 + (sT - s0) p
//   cos     s = sT + (s0 - sT) (1 + cos(pi p)) / 2
//   cube    s = sT + (s0 - sT) (1 - p)^3              (Zhu & Gupta, 2017)
//   exp     s = 1 - (1 - s0)^(1 - p) (1 - sT)^p       (each step removes the same share of the
//                                                       weights still kept)
enum class Decay { Exp, Cos, Linear, Cube };
Decay parse_decay(std::string_view text);  // "exp", "cos", "linear", "cube"
std::string to_string(Decay d);
double decay_curve(Decay d, double s0, double sT, double p);

struct Schedule {
  int64_t start_step = 0;
  int64_t end_step = 0;
  int64_t frequency = 1;  // pruning_frequency
  double initial = 0.0;
  double target = 0.9;
  Decay decay = Decay::Exp;

  // Oneshot when start_step == end_step: the full target at start_step.
  bool oneshot() const { return start_step == end_step; }
  // Whether the masks are updated at this step: start_step, every `frequency` steps after it,
  // and end_step.
  bool prunes_at(int64_t step) const;
  // The target in force at `step`: initial before start_step, target from end_step on, and in
  // between the decay curve at progress p = (last pruning step <= step - start) / (end - start).
  double target_at(int64_t step) const;

  bool operator==(const Schedule&) const = default;
};

}  // namespace spruce
