#include "spruce/calibration.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

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

// Li, "Reservoir-sampling algorithms of time complexity O(n(1 + log(N/n)))", ACM TOMS 1994.
void ActivationObserver::draw_next() {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  auto open = [&] { return std::max(u(rng_), 1e-300); };  // (0, 1): logs stay finite
  w_ *= std::exp(std::log(open()) / double(capacity_));
  // Values skipped before the next one kept: geometric, with success probability w_.
  const double skip = std::floor(std::log(open()) / std::log1p(-w_));
  next_ += 1 + int64_t(std::min(skip, 4e18));
}

void ActivationObserver::observe(const float* v, int64_t n) {
  if (n <= 0) return;
  float lo = seen_ == 0 ? v[0] : min_, hi = seen_ == 0 ? v[0] : max_;
  uint32_t non_finite = 0;  // one pass, branch-free: the compiler vectorizes it
  for (int64_t i = 0; i < n; ++i) {
    uint32_t bits;
    std::memcpy(&bits, &v[i], 4);
    non_finite |= uint32_t((bits & 0x7f800000u) == 0x7f800000u);
    lo = v[i] < lo ? v[i] : lo;
    hi = v[i] > hi ? v[i] : hi;
  }
  if (non_finite) data_error("calibration saw a non-finite activation value (NaN or inf): check the model's inputs");
  min_ = lo;
  max_ = hi;
  int64_t i = 0;
  while (i < n && sample_.size() < capacity_) {
    sample_.push_back(v[i++]);
    if (sample_.size() == capacity_) {
      w_ = 1.0;
      next_ = seen_ + i - 1;  // the index of the value just kept
      draw_next();
    }
  }
  const int64_t end = seen_ + n;  // indices [seen_ + i, end) remain
  while (sample_.size() == capacity_ && next_ < end) {
    const auto slot = std::uniform_int_distribution<size_t>(0, capacity_ - 1)(rng_);
    sample_[slot] = v[next_ - seen_];
    draw_next();
  }
  seen_ = end;
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
