// oneDNN dense matmul with the same contract as the sparse operator: the dense fallback of
// SparseLinear and the baseline of `spruce bench`. Internal (src/), not a public header.
//   FP32: f32 x f32 -> f32, weights reordered once into oneDNN's preferred layout (format any).
//   INT8: u8 (zero point) x s8 (per-OC scales) -> s32 -> f32 | u8 | s8, per-channel output scales.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "spruce/quant.hpp"

namespace spruce::runtime {

class DenseMatmul {
 public:
  // w is W[oc][ic] row-major (f32 or s8 per `int8`); bias [oc] or null. For int8, q is required.
  DenseMatmul(bool int8, const void* w, int64_t oc, int64_t ic, const float* bias, Activation act,
              const QuantParams* q);
  ~DenseMatmul();
  DenseMatmul(const DenseMatmul&) = delete;
  DenseMatmul& operator=(const DenseMatmul&) = delete;

  // x[m][ic] with row stride ldx, y[m][oc] with row stride ldy (elements).
  void run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy);
  // oneDNN's implementation name for m rows (creates the primitive if needed).
  std::string impl(int64_t m);

 private:
  struct Plan;
  Plan& plan(int64_t m, int64_t ldx, int64_t ldy);
  bool int8_;
  int64_t oc_, ic_;
  std::vector<float> w_f32_, bias_, scales_;
  std::vector<int8_t> w_s8_;
  Activation act_;
  QuantParams q_;
  std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<Plan>> plans_;
  std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> reordered_;  // weights per oneDNN layout
};

}  // namespace spruce::runtime
