// SparseLinear: the sparse GEMM operator. Other layers (LibTorch adapter, runtime, CLI) call this.
//
//   Y[m][n] = X[m][k] . W[n][k]^T (+ bias[n]) (-> ReLU | GELU)
//
// W is the pruned weight in DESIGN.md orientation, W[OC][IC] row-major (PyTorch Linear.weight),
// so k = IC = in_features and n = OC = out_features. X is [m][IC], Y is [m][OC], both row-major
// with optional row strides. Raw pointers only: a torch::Tensor's data_ptr() works directly.
//
// FP32: f32 in, f32 out. INT8: u8 activations (QuantParams::x, a U8Quant) x s8 weights (one scale
// per output channel) -> s32 -> dequantize to f32, or requantize to u8/s8 (quant.hpp has the exact
// arithmetic; the zero-point compensation sum_k w[n][k] is folded in at construction).
//
// Two phases, as XNNPACK's create/setup and oneDNN's primitive + scratchpad:
//   1. Construction (and tune()) does all the work that does not depend on the input: packing W
//      into the kernel's format (PackedWeights, whose size is packed_bytes()), the kernel choice
//      from the registry (names like s8-spmm-4x1-avx512vnni; by dtype, pattern and the CPU:
//      cpuid + XGETBV, capped by SPRUCE_MAX_ISA), the oneDNN dense fallback on the same weights,
//      and, for the batch sizes given (options.tune_m or tune()), timing sparse against dense
//      under Fallback::Auto and, for an AMX kernel, its AMX route against its VNNI route. The
//      choices can be saved with the model (PackedLinear).
//   2. run() is const and reentrant: many threads may run one operator at once. Its scratch (the
//      activations packed for the kernel, scratch_bytes(m)) comes from the caller, or from a
//      per-thread buffer. It runs on `threads` OpenMP workers: X is packed once (split over k),
//      then the output is split into (strip range x m block) tiles that the workers take
//      dynamically; a tile is owned by one worker, so no reduction is needed. For the fallback it
//      sets the calling thread's OpenMP thread count (a per-thread setting) for the call and
//      restores it, so other threads and the process keep theirs.
//      Inside an active OpenMP parallel region (callers running their own work side by side), a
//      call runs on the calling thread alone.
//
// Fallback::Auto picks per bucket of m (1-8 alone, then up to each power of two) the path that
// tune() measured faster; a bucket that was not tuned takes the nearest tuned bucket's choice,
// and with nothing tuned the sparse path runs.
//
// Errors (wrong sizes, null pointers, weights that break an N:M pattern) throw spruce::Error
// with a one-line message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "spruce/packed_weights.hpp"
#include "spruce/pattern.hpp"
#include "spruce/quant.hpp"

namespace spruce {

// Never: always sparse; Always: always oneDNN dense. INT8 never runs oneDNN on a host without
// VNNI (its vpmaddubsw saturates, so it would not give the reference's bytes): there INT8 is
// always spruce's exact kernels, whatever the fallback.
enum class Fallback { Auto, Never, Always };
const char* fallback_name(Fallback f);             // "auto" | "never" | "always"
Fallback parse_fallback(const std::string& name);  // throws spruce::Error

// Where Y's rows lie a multiple of 4 KiB apart, a kernel's walk down the rows 64 bytes at a time
// lands every store in one L1 set: on AMD Zen 4 and 5 that walk ran at 9 GB/s against 37 GB/s
// 3 KiB apart, so the operator writes a band of output channels into a buffer and copies each
// row's band to Y in one burst. On an Intel Xeon the walk ran at 17 against 21 GB/s, and the copy
// paid only where a thread's share of Y outgrew twice its L2 (docs/performance/xeon.md). Auto:
// staged on AMD, and on other CPUs past that size; Always: staged on every CPU (for tests and
// measurements); Never: Y written directly. Rows off 4 KiB multiples, and blocks under 64 rows,
// are never staged.
enum class OutputStaging { Auto, Always, Never };

struct SparseLinearOptions {
  int threads = 0;  // 0: OpenMP's default (omp_get_max_threads())
  Activation activation = Activation::None;
  Fallback fallback = Fallback::Auto;
  std::string kernel;           // force a registry kernel by name ("" = dispatch); for tests and benchmarks
  std::vector<int64_t> tune_m;  // batch sizes to tune for (see tune())
  OutputStaging staging = OutputStaging::Auto;
};

// An operator as a saved model stores it, so that loading adopts the packed weights and the
// tuned choices instead of packing and timing again.
struct PackedLinear {
  bool int8 = false;
  int64_t out_features = 0, in_features = 0;
  Pattern pattern;
  QuantParams quant;        // INT8 only
  std::vector<float> bias;  // [out_features], or empty
  PackedWeights weights;
  std::map<int64_t, bool> dense_for_m;  // Fallback::Auto: per bucket of m, whether dense won
  std::map<int64_t, bool> vnni_for_m;   // AMX kernels: per bucket of m, whether the VNNI route won
};

// Tuned choices shared among operators that are alike: the same weight type, shape, pattern,
// kernels, activation, output type, threads, fallback and staging, and sparsity and packed size
// within half a point. An operator tuned with a cache times only the buckets of m that no operator
// alike has timed, and adopts the others' choices: a transformer's 36 layers of three shapes time
// three times, not 36. spruce::torch::convert shares one among a model's layers.
class TuningCache {
 public:
  size_t timed() const { return timed_; }    // buckets timed
  size_t shared() const { return shared_; }  // buckets adopted from an operator alike

 private:
  friend class SparseLinear;
  struct Choices {
    std::optional<bool> dense, low;  // dense_for_m, vnni_for_m; unset where not tuned
  };
  std::map<std::pair<std::string, int64_t>, Choices> choices_;  // (operator's key, bucket of m)
  size_t timed_ = 0, shared_ = 0;
};

class SparseLinear {
 public:
  // FP32. w: W[out_features][in_features], already pruned (zeros are zeros). bias: [out] or null.
  SparseLinear(const float* w, int64_t out_features, int64_t in_features, const Pattern& pattern,
               const float* bias = nullptr, SparseLinearOptions options = {});
  // INT8. w: s8 W[out][in]; q.w_scales has out_features entries; bias in f32, [out] or null.
  SparseLinear(const int8_t* w, int64_t out_features, int64_t in_features, const Pattern& pattern, const QuantParams& q,
               const float* bias = nullptr, SparseLinearOptions options = {});
  // From saved packed weights. When this CPU's dispatch picks the kernel they were laid out for,
  // the arrays and the tuned choices are adopted as they are; otherwise the weights are unpacked
  // and packed for the kernel it picks, and the choices dropped (repacked() says which).
  explicit SparseLinear(const PackedLinear& packed, SparseLinearOptions options = {});
  ~SparseLinear();
  SparseLinear(SparseLinear&&) noexcept;
  SparseLinear& operator=(SparseLinear&&) noexcept;

  // Fallback::Auto: times the sparse and the dense path for each of these batch sizes (random
  // inputs; interleaved rounds until both paths have run for long enough; the median per-round
  // ratio decides, and sparse must win by 3%, so a near tie keeps dense). Where the weights are
  // packed for an AMX kernel (any fallback but Always), it first times the AMX kernel against the
  // AVX-512 VNNI kernel on a second packing, and keeps the faster for the bucket.
  void tune(std::span<const int64_t> ms);
  // The same, adopting from `cache` what an operator alike has tuned, and adding what it times.
  void tune(std::span<const int64_t> ms, TuningCache& cache);

  // FP32: x [m][in] (row stride ldx, 0 = in), y [m][out] (row stride ldy, 0 = out).
  void run(const float* x, int64_t m, float* y, int64_t ldx = 0, int64_t ldy = 0) const;
  // INT8: x u8 [m][in]; y is float*, uint8_t* or int8_t* as QuantParams::out says.
  void run(const uint8_t* x, int64_t m, void* y, int64_t ldx = 0, int64_t ldy = 0) const;
  // The same with the caller's scratch, at least scratch_bytes(m) bytes.
  void run(const float* x, int64_t m, float* y, int64_t ldx, int64_t ldy, std::span<uint8_t> scratch) const;
  void run(const uint8_t* x, int64_t m, void* y, int64_t ldx, int64_t ldy, std::span<uint8_t> scratch) const;
  size_t scratch_bytes(int64_t m) const;

  // What runs for m rows: the sparse kernel's registry name, or "onednn:<impl>" for the fallback.
  std::string impl(int64_t m) const;
  const std::map<int64_t, bool>& dense_for_m() const;  // the tuned choices, per bucket of m
  const std::map<int64_t, bool>& vnni_for_m() const;   // AMX kernels: where the VNNI route won
  std::string sparse_kernel() const;                   // the registry kernel the sparse path uses
  // Whether run() at m rows writes Y (rows ldy elements apart; 0: out_features) through a staging
  // buffer (see OutputStaging).
  bool stages_output(int64_t m, int64_t ldy = 0) const;
  // Whether oneDNN can run at all: not under Fallback::Never, nor for INT8 where oneDNN's INT8 is
  // not exact (no VNNI). Unlike impl(), it builds no oneDNN primitive.
  bool has_dense_fallback() const;
  int threads() const;
  void set_threads(int threads);  // 0 = OpenMP default

  bool is_int8() const;
  int64_t in_features() const;
  int64_t out_features() const;
  const Pattern& pattern() const;
  double sparsity() const;      // fraction of zero weights
  size_t packed_bytes() const;  // bytes of the packed weights the kernel reads
  size_t memory_bytes() const;  // all weight bytes held: packed, plus oneDNN's copies for the fallback
  size_t dense_bytes() const;   // out * in * sizeof(weight)
  const PackedWeights& weights() const;
  const QuantParams& quant() const;  // INT8: as given at construction
  const SparseLinearOptions& options() const;
  PackedLinear packed() const;  // the weights as the kernel reads them and the tuned choices, for saving
  bool repacked() const;        // made from a PackedLinear whose layout could not be adopted

  struct Impl;  // opaque: defined in src/runtime

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace spruce
