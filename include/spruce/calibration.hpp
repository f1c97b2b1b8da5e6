// Post-training calibration of activations: observe real inputs, then choose u8 quantization
// parameters (asymmetric: real = scale * (q - zero_point), q in [0, 255]).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "spruce/quant.hpp"

namespace spruce {

enum class CalibrationMethod {
  MinMax,      // the observed minimum and maximum
  Percentile,  // the given low and high percentiles of the observed values (clips outliers)
};
CalibrationMethod parse_calibration(std::string_view text);  // "minmax", "percentile"
std::string to_string(CalibrationMethod m);

// Watches activation values across calibration batches. Min and max are exact; percentiles come
// from a uniform reservoir sample of at most `reservoir` values (fixed seed: reproducible, and
// the same however the values are split into calls). Past the reservoir's size it draws random
// numbers only for the values it keeps (Li's Algorithm L), not for every value.
class ActivationObserver {
 public:
  explicit ActivationObserver(size_t reservoir = 1 << 16, uint64_t seed = 0x5eed);
  void observe(const float* values, int64_t n);
  int64_t count() const { return seen_; }
  float min() const { return min_; }
  float max() const { return max_; }
  // `percentile` (e.g. 99.99) is the high cut; the low cut is 100 - percentile.
  U8Quant choose(CalibrationMethod m, double percentile = 99.99) const;

 private:
  std::vector<float> sample_;
  size_t capacity_;
  int64_t seen_ = 0;
  float min_ = 0.f, max_ = 0.f;
  std::mt19937_64 rng_;
  double w_ = 0;      // Algorithm L: the running largest of the kept values' random keys
  int64_t next_ = 0;  // the index of the next value kept, once the reservoir is full
  void draw_next();   // advances w_ and next_
};

}  // namespace spruce
