// oneDNN dense matmul with the same contract as the sparse operator: the dense fallback of
// SparseLinear and the baseline of `spruce bench`. Internal (src/), not a public header.
//   FP32: f32 x f32 -> f32, weights reordered once into oneDNN's preferred layout (format any).
//   INT8: u8 (zero point) x s8 (per-OC scales) -> s32 -> f32 | u8 | s8, per-channel output scales.
// Made from the sparse operator's PackedWeights, it keeps no dense copy of W: a plan that needs a
// weight layout not yet made unpacks them (exactly) and reorders them. Made from dense W (the
// benchmarks' baseline), it keeps a copy for that. Plans are cached per (m, strides) under a
// mutex, so run() is const and may be called from many threads.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "spruce/packed_weights.hpp"
#include "spruce/quant.hpp"

namespace spruce::runtime {

class DenseMatmul {
 public:
  // bias [oc] or null. For INT8 weights, q is required.
  DenseMatmul(const PackedWeights& w, const float* bias, Activation act, const QuantParams* q);
  // w is W[oc][ic] row-major (f32 or s8 per `int8`).
  DenseMatmul(bool int8, const void* w, int64_t oc, int64_t ic, const float* bias, Activation act,
              const QuantParams* q);
  ~DenseMatmul();
  DenseMatmul(const DenseMatmul&) = delete;
  DenseMatmul& operator=(const DenseMatmul&) = delete;

  // x[m][ic] with row stride ldx, y[m][oc] with row stride ldy (elements).
  void run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) const;
  // oneDNN's implementation name for m rows (creates the primitive if needed).
  std::string impl(int64_t m) const;
  // The highest ISA oneDNN uses in this process, after SPRUCE_MAX_ISA's cap (cap_onednn).
  static std::string max_isa();
  // Whether oneDNN's u8 x s8 INT8 is exact here: only with VNNI (vpdpbusd) or AMX. Below them it
  // multiplies with vpmaddubsw, which saturates its 16-bit pair sums (2 x 255 x -128 does not fit).
  static bool int8_exact();
  size_t weight_bytes() const;  // of the reordered copies made so far

 private:
  struct Plan;
  const Plan& plan(int64_t m, int64_t ldx, int64_t ldy) const;
  void init(const float* bias, const QuantParams* q);
  PackedWeights w_;
  Matrix<float> w_f32_;  // dense W when made from it
  Matrix<int8_t> w_s8_;
  bool int8_;
  int64_t oc_, ic_;
  std::vector<float> bias_, scales_;
  Activation act_;
  QuantParams q_;
  mutable std::mutex mutex_;  // guards the two caches below
  // By m, ldx, ldy and the OpenMP thread count: oneDNN splits a primitive's work for the threads
  // it had when made, so a plan made for one thread (inside a caller's parallel region) would run
  // on one thread ever after.
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int>, std::unique_ptr<Plan>> plans_;
  mutable std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> reordered_;  // weights per oneDNN layout
};

}  // namespace spruce::runtime
