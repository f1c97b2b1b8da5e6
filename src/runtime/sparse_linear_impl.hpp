// The SparseLinear operator's state, shared by its construction (sparse_linear.cpp) and its
// packed export and import (packed_linear.cpp). Internal to src/runtime.
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
  double sparsity = 0.0;
  size_t packed_bytes = 0;
  kernels::StripWeights<float> wf;
  kernels::StripWeights<int8_t> ws;
  kernels::StripView view;
  const kernels::Kernel* kernel = nullptr;
  const kernels::Kernel* small = nullptr;  // for m <= 4, when the registry has a better one
  std::vector<float> bias, scale;
  std::vector<int32_t> comp;
  kernels::Epilogue ep;
  std::unique_ptr<runtime::DenseMatmul> dense;
  std::map<int64_t, bool> use_dense;  // decided per bucket of m under Fallback::Auto
  std::vector<uint8_t> xt;            // packed activations, reused across calls

  int nthreads() const { return opt.threads > 0 ? opt.threads : omp_get_max_threads(); }
  void run_sparse(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy);
  void run_dense(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) {
    const int saved = omp_get_max_threads();
    omp_set_num_threads(nthreads());
    dense->run(x, m, ldx, y, ldy);
    omp_set_num_threads(saved);
  }
  void run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy);
  bool repacked = false;  // built from a PackedLinear whose strips could not be adopted
};

namespace runtime {

// The kernel and strip layout that dispatch picks for a weight of this pattern and shape.
struct KernelChoice {
  const kernels::Kernel* kernel = nullptr;
  kernels::Problem problem;  // problem.h is the strip height
};
KernelChoice choose_kernel(kernels::DType dtype, const Pattern& pattern, int64_t oc, int64_t ic,
                           const std::string& forced);

// The kernel for m <= 4, when dispatch has a better one than s.kernel for the same strips.
const kernels::Kernel* choose_small(const SparseLinear::Impl& s, kernels::Problem problem);

// Construction from dense weights W[oc][ic] (f32, or s8 with q): packs, picks the kernels, then
// finish_init(). Shapes and quant params must have been checked (check_shape, check_quant).
void init_from_dense(SparseLinear::Impl& s, const void* w, int64_t oc, int64_t ic, const Pattern& p,
                     const float* bias, const QuantParams* q);
// Bias, epilogue, zero-point compensation (from s.ws.wsum) and the oneDNN fallback on dense W.
void finish_init(SparseLinear::Impl& s, const void* w, const float* bias, const QuantParams* q);
void check_shape(int64_t oc, int64_t ic, const void* w);
void check_quant(const QuantParams& q, int64_t oc);

}  // namespace runtime
}  // namespace spruce
