// Post-training calibration of activations: observe real inputs, then choose u8 quantization
// parameters (asymmetric: real = scale * (q - zero_point), q in [0, 255]).
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace spruce {

enum class CalibrationMethod {
  MinMax,      // the observed minimum and maximum
  Percentile,  // the given low and high percentiles of the observed values (clips outliers)
};
CalibrationMethod parse_calibration(std::string_view text);  // "minmax", "percentile"
std::string to_string(CalibrationMethod m);

struct U8Quant {
  float scale = 1.0f;
  int32_t zero_point = 0;
  // round_half_even(clamp(x * (1 / scale) + zero_point, 0, 255)), as quantize_u8 computes it.
  uint8_t quantize(float x) const;
  float dequantize(uint8_t q) const { return scale * float(int32_t(q) - zero_point); }
};

// Quantizes n values with q (vectorizes without SSE4.1: rounding by the 1.5 * 2^23 trick).
void quantize_u8(const float* x, int64_t n, const U8Quant& q, uint8_t* out);

// Parameters for a real range; the range is widened to include 0 so that 0 is exact.
U8Quant u8_quant_for_range(float lo, float hi);

// Watches activation values across calibration batches. Min and max are exact; percentiles come
// from a uniform reservoir sample of at most `reservoir` values (fixed seed: reproducible).
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
};

}  // namespace spruce
