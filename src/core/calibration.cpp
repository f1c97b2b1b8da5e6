#include "spruce/calibration.hpp"

#include <algorithm>
#include <cmath>

#include "spruce/error.hpp"

namespace spruce {

CalibrationMethod parse_calibration(std::string_view t) {
  if (t == "minmax") return CalibrationMethod::MinMax;
  if (t == "percentile") return CalibrationMethod::Percentile;
  usage_error("unknown calibration method '" + std::string(t) + "': valid are minmax, percentile");
}

std::string to_string(CalibrationMethod m) { return m == CalibrationMethod::MinMax ? "minmax" : "percentile"; }

ActivationObserver::ActivationObserver(size_t reservoir, uint64_t seed)
    : capacity_(std::max<size_t>(1, reservoir)), rng_(seed) {
  sample_.reserve(capacity_);
}

void ActivationObserver::observe(const float* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float x = v[i];
    if (!std::isfinite(x))
      data_error("calibration saw a non-finite activation value (NaN or inf): check the model's inputs");
    min_ = seen_ == 0 ? x : std::min(min_, x);
    max_ = seen_ == 0 ? x : std::max(max_, x);
    ++seen_;
    if (sample_.size() < capacity_) {
      sample_.push_back(x);
    } else {  // reservoir sampling: each value seen so far is kept with equal probability
      const auto j = std::uniform_int_distribution<int64_t>(0, seen_ - 1)(rng_);
      if (j < int64_t(capacity_)) sample_[size_t(j)] = x;
    }
  }
}

U8Quant ActivationObserver::choose(CalibrationMethod m, double percentile) const {
  if (seen_ == 0) usage_error("calibration saw no data: run at least one batch through the model first");
  if (m == CalibrationMethod::MinMax) return u8_quant_for_range(min_, max_);
  if (!(percentile > 50.0 && percentile <= 100.0))
    usage_error("calibration percentile must be in (50, 100], e.g. 99.99");
  std::vector<float> s = sample_;
  auto at = [&](double p) {
    const auto k = static_cast<size_t>(std::llround(p / 100.0 * double(s.size() - 1)));
    std::nth_element(s.begin(), s.begin() + long(k), s.end());
    return s[k];
  };
  return u8_quant_for_range(at(100.0 - percentile), at(percentile));
}

}  // namespace spruce
