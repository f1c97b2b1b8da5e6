// Benchmark support, shared by `spruce bench`, the microbenchmarks (bench/) and the tests, so that
// each piece is written once: pruned random weights, the shape suites, verification of the sparse
// operator against the scalar reference, and the timing protocol of BENCHMARKS.md.
//
// The protocol (run_case): weights pruned to the pattern and random inputs; the sparse result is
// verified against the scalar reference before any timing (a case that fails throws, so it prints
// no number). Then rounds interleave oneDNN FP32, oneDNN INT8, the raw sparse path
// (Fallback::Never) and the operator (Fallback::Auto); times are medians, ratios the medians of
// the per-round ratios. Caches are warm: the same weights and inputs are reused across rounds.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"
#include "spruce/quant.hpp"

namespace spruce::bench {

// ---- Pruned random weights -------------------------------------------------------------------

enum class Values {
  Uniform,   // f32 uniform in [-1, 1]: benchmarks
  Integers,  // integers in [-lim, lim] \ {0}: FP32 sums of small integers are exact, so tests
             // compare FP32 results exactly too
};

struct WeightOptions {
  Values values = Values::Uniform;
  int lim = 3;             // Values::Integers only; at most 127 for int8_t weights
  bool empty_row = false;  // zero row 0 as well (empty rows also appear naturally when sparse)
};

// W[rows][cols] (row-major, [OC][IC]) pruned to `pattern`. Block patterns: exactly
// round(sparsity * blocks) random whole blocks are zeroed (edge blocks may be partial), so
// sparsity 0 and 1 give a dense and an all-zero matrix. N:M: N random weights of every M
// consecutive input channels are kept (a partial last group keeps at most N); `sparsity` is
// ignored. Values are drawn first, then the blocks or groups, from `rng`: the same rng state gives
// the same matrix. Throws spruce::Error (usage) for a sparsity outside [0, 1] or a bad lim.
MatrixF pruned_weights(int64_t rows, int64_t cols, const Pattern& pattern, double sparsity, std::mt19937& rng,
                       const WeightOptions& options = {});

// The integer-valued weights as T (float or int8_t; exact, as |w| <= lim <= 127 for int8_t).
template <typename T>
Matrix<T> pruned_integers(int64_t rows, int64_t cols, const Pattern& pattern, double sparsity, std::mt19937& rng,
                          int lim = 3, bool empty_row = false);

// n integers uniform in [lo, hi], as T (inputs and biases for exact tests).
template <typename T>
std::vector<T> random_vec(size_t n, int lo, int hi, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = T(d(rng));
  return v;
}

// n floats uniform in [lo, hi] (benchmark inputs).
std::vector<float> uniform_vec(size_t n, float lo, float hi, std::mt19937& rng);

// ---- Shapes ----------------------------------------------------------------------------------

struct Shape {
  int64_t m = 1, k = 1, n = 1;  // m rows of input (tokens, batch), k = in features, n = out features
  bool operator==(const Shape&) const = default;
};

std::string to_string(const Shape& s);  // "MxKxN"
// "MxKxN" with positive integers; throws spruce::Error (usage) otherwise.
Shape parse_shape(const std::string& text);
// The named suites of BENCHMARKS.md, in order (without "all").
std::vector<std::string> suite_names();
// A suite's shapes; "all" is every suite in order. Throws spruce::Error (usage) for other names.
std::vector<Shape> suite(const std::string& name);

// ---- One benchmark case ----------------------------------------------------------------------

// The data of a case: FP32 weights and inputs, and their INT8 forms (symmetric per-channel s8
// weights by quantize_weights, u8 inputs with a zero point for the range [-1, 1]).
struct CaseData {
  MatrixF w;
  std::vector<float> x;
  Matrix<int8_t> wq;
  std::vector<uint8_t> xq;
  QuantParams q;
};
// Weights by pruned_weights (Values::Uniform), then inputs uniform in [-1, 1], from `rng`.
CaseData make_case(const Shape& s, const Pattern& p, double sparsity, std::mt19937& rng);

// Checks a sparse result y[m][n] against the reference `want`: equal bit for bit for INT8, within
// 1e-5 * k * (1 + |want|) for FP32 (sums in another order). Throws spruce::Error (data) naming the
// case and the first element that differs.
void check_result(const Shape& s, const Pattern& p, bool int8, const float* y, const float* want);

struct Case {
  Shape shape;
  Pattern pattern;
  double sparsity = 0.9;  // the fraction of blocks zeroed; ignored for N:M
  bool int8 = true;       // INT8 (u8 x s8) or FP32, for the sparse path and the dense it is compared to
  int threads = 1;        // for sparse and dense
  int reps = 0;           // timed rounds; 0: default_reps(shape)
};

struct Result {
  Case c;
  int reps = 0;               // timed rounds (after 3 warm-up rounds)
  double sparsity = 0;        // zero weights the operator holds
  std::string sparse_impl;    // the sparse kernel
  std::string dense_impl;     // oneDNN's implementation, in the case's dtype
  std::string operator_impl;  // what the operator (Fallback::Auto) chose
  bool dense_exact = true;    // oneDNN's INT8 equalled the reference (not where it lacks VNNI)
  double sparse_us = 0;       // medians, microseconds
  double dense_us = 0;        // oneDNN in the case's dtype
  double dense_f32_us = 0;    // oneDNN FP32
  double operator_us = 0;
  double speedup = 0;           // dense / sparse, median of the per-round ratios
  double speedup_vs_f32 = 0;    // oneDNN FP32 / sparse
  double operator_speedup = 0;  // dense / operator
  double eff_gops = 0;          // 2mkn / sparse time, in GOP/s
};

// Rounds (3 warm-up + reps) for a mid-size shape: about 4 GOP per path, within [31, 301].
int default_reps(const Shape& s);
// Sets the OpenMP thread count (which oneDNN uses too) to `threads`, or leaves OpenMP's default
// for 0; returns the count in use.
int use_threads(int threads);

// Makes the case's data from `rng`, verifies (sparse against the scalar reference by
// check_result; for INT8, oneDNN dense must equal the reference as well wherever oneDNN has VNNI:
// below it, oneDNN saturates and Result::dense_exact says whether it hit the reference), then times it.
Result run_case(const Case& c, std::mt19937& rng);

// The host line every speed figure carries: its class (cpu.hpp's host_class()), spruce's ISA cap
// and the ISA oneDNN's dense kernels run at, and the CPU (cpu_description()), e.g. "AVX-512 VNNI
// (spruce avx512_vnni, oneDNN avx512_core_bf16) on AMD EPYC, family 26 model 2".
std::string host_line();
std::string dense_max_isa();  // oneDNN's effective ISA in this process

// ---- Timing ----------------------------------------------------------------------------------

// Runs warmup + reps rounds; each round runs every path once, in an order shuffled per round (a
// fixed order gave each path the same predecessor, and with it the same cache state: oneDNN timed
// against itself came out 0.82-0.88x). Returns each path's seconds for the timed rounds:
// times[path][round].
std::vector<std::vector<double>> time_rounds(const std::vector<std::function<void()>>& paths, int reps, int warmup = 3);
double median(std::vector<double> v);  // the upper median of a non-empty list
// The median of num[i] / den[i]: paired timings of one round see the same machine load, so a busy
// second on a shared machine cancels out.
double median_ratio(const std::vector<double>& num, const std::vector<double>& den);

}  // namespace spruce::bench
