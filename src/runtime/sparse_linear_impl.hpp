// The SparseLinear operator's state, shared by its construction and run (sparse_linear.cpp) and
// its saved form (packed_linear.cpp). Internal to src/runtime.
#pragma once
#include <omp.h>

#include <map>
#include <memory>
#include <vector>

#include "dense.hpp"
#include "kernels/kernel.hpp"
#include "spruce/spmm.hpp"

namespace spruce {

struct SparseLinear::Impl {
  kernels::DType dtype = kernels::DType::F32;
  int64_t oc = 0, ic = 0;
  Pattern pattern;
  SparseLinearOptions opt;
  QuantParams q;
  PackedWeights weights;
  const kernels::Kernel* kernel = nullptr;  // the one the weights are packed for
  const kernels::Kernel* small = nullptr;   // for m <= small->max_m on the same weights, or null
  // Where the weights are packed for an AMX kernel, the best VNNI kernel also runs on a second
  // packing ("low" route): AMX fills 16-row tiles, so a few rows of X waste most of each, and
  // where the AMX kernel must gather (4x1, 4x16) VNNI can win at any m. Untuned, m < kLowM takes
  // the low route; tune() times both routes per bucket of m (low_for_m).
  static constexpr int64_t kLowM = 16;
  const kernels::Kernel* low = nullptr;
  const kernels::Kernel* low_small = nullptr;
  PackedWeights low_weights;
  std::map<int64_t, bool> low_for_m;
  // A few rows of X run a kernel with a packing of its own where one serves the pattern, whatever
  // the host: with VBMI windows of input channels (Windows for blocks 4 rows high, LaneWindows for
  // the rest), without it RowLanes and QuadMasks for blocks one channel high. For m <= few_max_m,
  // ahead of both routes above.
  const kernels::Kernel* few = nullptr;
  PackedWeights few_weights;
  int64_t few_max_m = 0;  // few->max_m, or fewer (init)
  std::vector<float> bias, scale;
  std::vector<int32_t> comp;
  kernels::Epilogue ep;
  std::unique_ptr<runtime::DenseMatmul> dense;
  std::map<int64_t, bool> dense_for_m;  // Fallback::Auto: per bucket of m, from tune()
  bool repacked = false;                // built from a PackedLinear whose weights could not be adopted

  int nthreads() const { return opt.threads > 0 ? opt.threads : omp_get_max_threads(); }
  // The workers of one call: the calling thread alone inside an active parallel region, whose
  // threads run their own work side by side (a nested team would have one thread anyway).
  int call_threads() const { return omp_in_parallel() ? 1 : nthreads(); }
  bool runs_low(int64_t m) const;
  // route: 2 = few rows, 1 = low, 0 = main, -1 = as tuned (few rows where it runs m, else runs_low).
  bool few_route(int64_t m, int route) const { return few && m <= few_max_m && (route < 0 || route == 2); }
  bool low_route(int64_t m, int route) const { return route < 0 ? runs_low(m) : low && route == 1; }
  const kernels::Kernel& kernel_for(int64_t m, int route = -1) const {
    if (few_route(m, route)) return *few;
    if (low_route(m, route)) return low_small && m <= low_small->max_m ? *low_small : *low;
    return small && m <= small->max_m ? *small : *kernel;
  }
  const PackedWeights& weights_for(int64_t m, int route = -1) const {
    if (few_route(m, route)) return few_weights;
    return low_route(m, route) ? low_weights : weights;
  }
  bool runs_dense(int64_t m) const;
  size_t scratch_bytes(int64_t m, int route = -1) const;
  void run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy, std::span<uint8_t> scratch) const;
  void run_sparse(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy, uint8_t* scratch, int route = -1) const;
  // Whether run() at m rows writes Y (ldy elements a row) through the staging buffer.
  bool stages_output(int64_t m, int64_t ldy) const;
  void run_dense(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) const;
};

namespace runtime {

// The kernel dispatch picks for a weight of this pattern and shape (or the one `forced` names).
const kernels::Kernel& choose_kernel(kernels::DType dtype, const Pattern& pattern, int64_t oc, int64_t ic,
                                     const std::string& forced);
// Everything after the weights are packed: kernels, bias, epilogue, zero-point compensation, the
// oneDNN fallback, and tuning for s.opt.tune_m. Shapes and quant params must have been checked.
void init(SparseLinear::Impl& s, PackedWeights weights, const Pattern& p, const float* bias, const QuantParams* q);
void check_shape(int64_t oc, int64_t ic, const void* w);
// N:M patterns bind the weights: more than N nonzeros in a group of M breaks them (block
// patterns only say where zeros are expected; any zeros run correctly).
template <typename T>
bool fits_pattern(const Pattern& p, const T* w, int64_t oc, int64_t ic);
std::string breaks_pattern(const Pattern& p);  // the message for weights that do not fit
void check_quant(const QuantParams& q, int64_t oc);

}  // namespace runtime
}  // namespace spruce
