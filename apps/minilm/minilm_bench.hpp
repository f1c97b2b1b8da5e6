// `spruce bench-model minilm`: the whole encoder at batch 1, 8 and 32 x 128 tokens, as FP32 dense
// (LibTorch), INT8 dense (oneDNN), FP32 sparse and INT8 sparse (spruce), in one process: throughput,
// p50/p99 latency, the share of time in the Linear layers, and each variant's fidelity.
#pragma once
#include <array>
#include <iosfwd>
#include <string>
#include <vector>

#include "minilm/bert.hpp"
#include "minilm/options.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/spmm.hpp"

namespace minilm {

struct MinilmBenchRecord {
  std::string variant;  // fp32-dense | int8-dense | fp32-sparse | int8-sparse
  int64_t batch = 0, seq_length = 0, iterations = 0;
  double sequences_per_second = 0, p50_ms = 0, p99_ms = 0;
  double linear_share = 0;                     // of one batch's time, spent in the encoder's 36 Linear layers
  std::array<double, kStageCount> stage_ms{};  // one batch's time per Stage (bert.hpp)
  double sparsity = 0;                         // of the encoder's Linear weights
  double cosine_to_own_fp32 = 0;               // held-out mean cosine to the FP32 LibTorch model of the same weights
  double cosine_to_teacher = 0;                // held-out mean cosine to the dense FP32 teacher
  std::string kernels;                         // the kernels the Linear layers run, e.g. "s8-spmm-4x1-avx512vnni x36"
  std::string attention;                       // the attention kernel, e.g. "f32-attention-avx512"
  std::string runs;  // what they ran at this batch's rows, as tuned: "onednn:... x12, s8-... x24"
};

std::vector<MinilmBenchRecord> bench_minilm(const MinilmBenchOptions& options, std::ostream& log);

}  // namespace minilm
