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
// BF16 or INT8 where asked for and a vector kernel takes the head size; otherwise FP32 (the scalar
// references are for tests, never a fallback).
const kernels::Kernel& attention_kernel(int64_t head_size, AttentionPrecision precision) {
  kernels::Problem p;
  p.op = kernels::Op::Attention;
  p.k = head_size;
  if (precision != AttentionPrecision::F32) {
    p.dtype = precision == AttentionPrecision::BF16 ? kernels::DType::BF16 : kernels::DType::S8;
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
  const auto fn = attention_kernel(a.head_size, a.precision).attention();
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

const char* attention_kernel_name(int64_t head_size, AttentionPrecision precision) {
  if (head_size < 1) usage_error("attention_kernel_name: head_size must be positive");
  return attention_kernel(head_size, precision).name;
}

const char* attention_precision_name(AttentionPrecision precision) {
  switch (precision) {
    case AttentionPrecision::BF16: return "bf16";
    case AttentionPrecision::Int8: return "int8";
    default: return "f32";
  }
}

AttentionPrecision parse_attention_precision(const std::string& name) {
  for (auto p : {AttentionPrecision::F32, AttentionPrecision::BF16, AttentionPrecision::Int8})
    if (name == attention_precision_name(p)) return p;
  usage_error("unknown attention precision '" + name + "': expected f32, bf16 or int8");
}

}  // namespace spruce
