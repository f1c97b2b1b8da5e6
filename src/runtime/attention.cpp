// The attention operator: checks sizes, threads over (sequence, head) tasks, runs the chosen kernel.
#include "spruce/attention.hpp"

#include <omp.h>

#include <cmath>
#include <string>

#include "kernels/attention.hpp"
#include "kernels/kernel.hpp"
#include "spruce/error.hpp"

namespace spruce {
namespace {
// BF16 where asked for and a vector kernel takes the head size; otherwise FP32 (the scalar BF16
// reference is for tests, never a fallback).
const kernels::Kernel& attention_kernel(int64_t head_size, bool bf16) {
  kernels::Problem p;
  p.op = kernels::Op::Attention;
  p.k = head_size;
  if (bf16) {
    p.dtype = kernels::DType::BF16;
    const kernels::Kernel& k = kernels::select(p);
    if (k.isa != Isa::Scalar) return k;
    p.dtype = kernels::DType::F32;
  }
  return kernels::select(p);
}

void check(const AttentionArgs& a) {
  const int64_t width = a.heads * a.head_size;
  const bool ok = a.batch >= 0 && a.tokens >= 0 && a.heads >= 1 && a.head_size >= 1 && a.ld_q >= width &&
                  a.ld_k >= width && a.ld_v >= width && a.ld_out >= width && std::isfinite(a.scale) &&
                  (a.batch * a.tokens == 0 || (a.q && a.k && a.v && a.out));
  if (!ok)
    usage_error("attention_f32: bad sizes (batch " + std::to_string(a.batch) + ", tokens " + std::to_string(a.tokens) +
                ", heads " + std::to_string(a.heads) + " x " + std::to_string(a.head_size) + ", strides q " +
                std::to_string(a.ld_q) + ", k " + std::to_string(a.ld_k) + ", v " + std::to_string(a.ld_v) + ", out " +
                std::to_string(a.ld_out) + "; each stride must be at least heads x head_size)");
}
}  // namespace

void attention_f32(const AttentionArgs& a) {
  check(a);
  const auto fn = attention_kernel(a.head_size, a.bf16).attention();
  const float scale = a.scale != 0.f ? a.scale : 1.f / std::sqrt(float(a.head_size));
  const int64_t tasks = a.batch * a.heads;
  const int threads =
      int(std::min<int64_t>(a.threads > 0 ? a.threads : omp_get_max_threads(), std::max<int64_t>(tasks, 1)));
  const size_t scratch_floats = size_t(kernels::attention_scratch_floats(a.tokens, a.head_size));
#pragma omp parallel num_threads(threads)
  {
    kernels::LineVector<float> scratch(scratch_floats);
#pragma omp for schedule(static)
    for (int64_t task = 0; task < tasks; ++task) {
      const int64_t b = task / a.heads, h = task % a.heads, row = b * a.tokens, col = h * a.head_size;
      kernels::AttentionTask t;
      t.q = a.q + row * a.ld_q + col;
      t.k = a.k + row * a.ld_k + col;
      t.v = a.v + row * a.ld_v + col;
      t.ld_q = a.ld_q, t.ld_k = a.ld_k, t.ld_v = a.ld_v;
      t.key_bias = a.key_bias ? a.key_bias + row : nullptr;
      t.scale = scale;
      t.tokens = a.tokens, t.head_size = a.head_size;
      t.out = a.out + row * a.ld_out + col;
      t.ld_out = a.ld_out;
      t.scratch = scratch.data();
      fn(t);
    }
  }
}

const char* attention_kernel_name(int64_t head_size, bool bf16) {
  if (head_size < 1) usage_error("attention_kernel_name: head_size must be positive");
  return attention_kernel(head_size, bf16).name;
}

}  // namespace spruce
