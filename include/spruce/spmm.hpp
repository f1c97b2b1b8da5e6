// SparseLinear: the sparse GEMM operator. Other layers (LibTorch adapter, runtime, CLI) call this.
//
//   Y[m][n] = X[m][k] . W[n][k]^T (+ bias[n]) (-> ReLU | GELU)
//
// W is the pruned weight in DESIGN.md orientation, W[OC][IC] row-major (PyTorch Linear.weight),
// so k = IC = in_features and n = OC = out_features. X is [m][IC], Y is [m][OC], both row-major
// with optional row strides. Raw pointers only: a torch::Tensor's data_ptr() works directly.
//
// FP32: f32 in, f32 out. INT8: u8 activations (x_scale, x_zero_point) x s8 weights (one scale
// per output channel) -> s32 -> dequantize to f32, or requantize to u8/s8 (quant.hpp has the exact
// arithmetic; the zero-point compensation sum_k w[n][k] is folded in at construction).
//
// The operator owns, at construction:
//   - packing: W is packed into the pattern's block-sparse or N:M format (SparseMatrix, its size
//     is packed_bytes()) and into the kernel's strip layout;
//   - kernel choice: from the registry (kernel names like s8-spmm-4x1-avx512vnni), by dtype,
//     pattern and the CPU (cpuid + XGETBV, capped by SPRUCE_MAX_ISA);
//   - threading: OpenMP, `threads` workers. Each run() transposes X once into the kernel's
//     [k][m] layout (split over k), then splits the output into (strip range x m block) tiles that
//     the workers take dynamically; a tile is owned by one worker, so no reduction is needed;
//   - the dense fallback: oneDNN matmul on the same weights. With Fallback::Auto, the first
//     run() in each bucket of m (1-8 alone, then up to each power of two) times the sparse and
//     the dense path on that call's data and keeps the faster, so the operator is never
//     measurably slower than dense.
//
// Errors (wrong sizes, null pointers, weights that break an N:M pattern) throw spruce::Error
// with a one-line message. run() is not reentrant: use one operator per calling thread.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spruce/pattern.hpp"
#include "spruce/quant.hpp"

namespace spruce {

enum class Fallback { Auto, Never, Always };  // Never: always sparse; Always: always oneDNN dense
const char* fallback_name(Fallback f);          // "auto" | "never" | "always"
Fallback parse_fallback(const std::string& name);  // throws spruce::Error

struct SparseLinearOptions {
  int threads = 0;  // 0: OpenMP's default (omp_get_max_threads())
  Activation activation = Activation::None;
  Fallback fallback = Fallback::Auto;
  std::string kernel;  // force a registry kernel by name ("" = dispatch); for tests and benchmarks
};

// An operator's weights as its kernel reads them: what a saved model stores, so that loading it
// adopts the packed arrays instead of packing again. The strip arrays follow the kernel-side
// layout (src/kernels/kernel.hpp) and are opaque to callers: keep them as SparseLinear::packed()
// made them. The constructor that takes them checks every invariant the kernels rely on, so a
// corrupt file gives an error, never a wrong result or a crash.
struct PackedLinear {
  bool int8 = false;
  int64_t out_features = 0, in_features = 0;
  Pattern pattern;
  QuantParams quant;         // INT8 only
  std::vector<float> bias;   // [out_features], or empty
  double sparsity = 0;       // fraction of zero weights
  size_t packed_bytes = 0;   // SparseMatrix bytes, as packed_bytes() reports them
  std::string kernel;        // the registry kernel the strips are laid out for
  int strip_h = 1, strip_kg = 1;
  std::vector<int64_t> strip_ptr;
  std::vector<int32_t> strip_k;
  std::vector<uint8_t> strip_w;    // f32 or s8 values, as bytes
  std::vector<uint8_t> strip_sel;  // N:M panels only
};

class SparseLinear {
 public:
  // FP32. w: W[out_features][in_features], already pruned (zeros are zeros). bias: [out] or null.
  SparseLinear(const float* w, int64_t out_features, int64_t in_features, const Pattern& pattern,
               const float* bias = nullptr, SparseLinearOptions options = {});
  // INT8. w: s8 W[out][in]; q.w_scales has out_features entries; bias in f32, [out] or null.
  SparseLinear(const int8_t* w, int64_t out_features, int64_t in_features, const Pattern& pattern,
               const QuantParams& q, const float* bias = nullptr, SparseLinearOptions options = {});
  // From saved packed weights. When this CPU's dispatch picks the kernel they were laid out for,
  // the arrays are adopted as they are; otherwise they are unpacked and packed for the kernel it
  // picks (repacked() says which). options.kernel, if set, must name that kernel.
  explicit SparseLinear(const PackedLinear& packed, SparseLinearOptions options = {});
  ~SparseLinear();
  SparseLinear(SparseLinear&&) noexcept;
  SparseLinear& operator=(SparseLinear&&) noexcept;

  // FP32: x [m][in] (row stride ldx, 0 = in), y [m][out] (row stride ldy, 0 = out).
  void run(const float* x, int64_t m, float* y, int64_t ldx = 0, int64_t ldy = 0);
  // INT8: x u8 [m][in]; y is float*, uint8_t* or int8_t* as QuantParams::out says.
  void run(const uint8_t* x, int64_t m, void* y, int64_t ldx = 0, int64_t ldy = 0);

  // What runs for m rows: the sparse kernel's registry name, or "onednn:<impl>" for the fallback
  // (before the first run() with this m under Fallback::Auto: the sparse kernel's name).
  std::string impl(int64_t m) const;
  std::string sparse_kernel() const;  // the registry kernel the sparse path uses
  int threads() const;
  void set_threads(int threads);  // 0 = OpenMP default

  bool is_int8() const;
  int64_t in_features() const;
  int64_t out_features() const;
  const Pattern& pattern() const;
  double sparsity() const;        // fraction of zero weights
  size_t packed_bytes() const;    // bytes of the packed SparseMatrix (values + indices)
  size_t dense_bytes() const;     // out * in * sizeof(weight)
  const QuantParams& quant() const;           // INT8: as given at construction
  const SparseLinearOptions& options() const;
  PackedLinear packed() const;  // a copy of the weights as the kernel reads them, for saving
  bool repacked() const;        // made from a PackedLinear whose layout could not be adopted

  struct Impl;  // opaque: defined in src/runtime

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace spruce
