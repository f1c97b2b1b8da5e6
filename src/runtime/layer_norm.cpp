// The LayerNorm operator: checks sizes, threads over blocks of rows, runs the chosen kernel.
#include "spruce/layer_norm.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/kernel.hpp"
#include "kernels/layer_norm.hpp"
#include "spruce/error.hpp"

namespace spruce {
namespace {
constexpr int64_t kRowsPerTask = 16;
constexpr int64_t kFloatsPerThread = 16384;  // below this much work per thread, fewer threads

const kernels::Kernel& layer_norm_kernel() {
  kernels::Problem p;
  p.op = kernels::Op::LayerNorm;
  p.k = 1;  // every LayerNorm kernel takes any width
  return kernels::select(p);
}

void check(const LayerNormArgs& a) {
  const bool ok = a.rows >= 0 && a.width >= 1 && a.ld_x >= a.width && a.ld_out >= a.width &&
                  (!a.residual || a.ld_residual >= a.width) && std::isfinite(a.eps) && a.eps >= 0.f &&
                  (a.rows == 0 || (a.x && a.out));
  if (!ok)
    usage_error("layer_norm_f32: bad sizes (rows " + std::to_string(a.rows) + ", width " + std::to_string(a.width) +
                ", strides x " + std::to_string(a.ld_x) + ", residual " + std::to_string(a.ld_residual) + ", out " +
                std::to_string(a.ld_out) + ", eps " + std::to_string(a.eps) +
                "; each stride must be at least the width, eps finite and not negative)");
}
}  // namespace

void layer_norm_f32(const LayerNormArgs& a) {
  check(a);
  const auto fn = layer_norm_kernel().layer_norm();
  const int64_t tasks = (a.rows + kRowsPerTask - 1) / kRowsPerTask;
  const int64_t wanted = a.threads > 0 ? a.threads : omp_get_max_threads();
  const int threads =
      int(std::clamp<int64_t>(std::min(wanted, a.rows * a.width / kFloatsPerThread), 1, std::max<int64_t>(tasks, 1)));
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t r0 = task * kRowsPerTask;
    kernels::LayerNormTask t;
    t.x = a.x + r0 * a.ld_x, t.ld_x = a.ld_x;
    t.residual = a.residual ? a.residual + r0 * a.ld_residual : nullptr, t.ld_residual = a.ld_residual;
    t.gamma = a.gamma, t.beta = a.beta, t.eps = a.eps;
    t.rows = std::min(kRowsPerTask, a.rows - r0), t.width = a.width;
    t.out = a.out + r0 * a.ld_out, t.ld_out = a.ld_out;
    fn(t);
  }
}

const char* layer_norm_kernel_name() { return layer_norm_kernel().name; }

}  // namespace spruce
