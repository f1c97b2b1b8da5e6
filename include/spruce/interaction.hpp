// DLRM's dot interaction, fused with the embedding gather and the u8 quantization of its output,
// for INT8 inference: one pass per sample instead of gather, stack, bmm, index, cat and quantize.
//
// Per sample b, the vectors are v[0] = dense row b (the bottom MLP's output) and
// v[1 + t] = tables[t].rows[ids[b][t]]; out row b is
//   [ q(v[0][0..dim)) , q(dot(v[i], v[j])) for i = 1..V-1, j = 0..i-1 ]
// (the order of torch::tril_indices(V, V, -1)), with q = U8Quant::quantize (the rounding of
// quantize_u8). With f32 tables the dot products sum in a fixed order (16 interleaved partial
// sums, combined pairwise; src/kernels/kernel.hpp); with INT8 tables they are exact integer sums.
// Either way every kernel gives the same bytes, under every SPRUCE_MAX_ISA cap.
#pragma once
#include <cstdint>
#include <span>

#include "spruce/calibration.hpp"

namespace spruce {

// Pairwise products of `vectors` vectors: vectors * (vectors - 1) / 2.
constexpr int64_t interaction_pairs(int64_t vectors) { return vectors * (vectors - 1) / 2; }

struct EmbeddingTable {
  const float* rows = nullptr;  // [size][dim], row-major, contiguous
  int64_t size = 0;
};

// A row-wise INT8 copy of an embedding table: row r is rows[r][0..dim) (s8) times scales[r], each
// row quantized symmetrically (scale = max |x| / 127, zero where the row is all zero; s8 in
// [-127, 127]), so dequantizing is one f32 multiply: float(q) * scale, rounded once. Symmetric s8,
// not u8 with a zero point: embedding rows are centred on zero (DLRM initializes them uniform in
// +-a), so a zero point would buy no resolution and cost a subtraction per element.
struct Int8EmbeddingTable {
  const int8_t* rows = nullptr;   // [size][dim], row-major, contiguous
  const float* scales = nullptr;  // [size]
  int64_t size = 0;
};

// Quantizes `size` rows of `dim` floats as above into rows_out [size][dim] and scales_out [size].
// Each dequantized element is within scale / 2 of the f32 value (round to nearest, ties to even).
void quantize_embedding_rows(const float* rows, int64_t size, int64_t dim, int8_t* rows_out, float* scales_out);

struct DotInteractionArgs {
  int64_t batch = 0, dim = 0;
  const float* dense = nullptr;  // [batch][ld_dense], first dim used
  int64_t ld_dense = 0;
  std::span<const EmbeddingTable> tables;
  // Row-wise INT8 tables instead of `tables` (exactly one of the two is non-empty, or both empty
  // for a dense-only interaction), for an all-INT8 interaction: the dense row is quantized per
  // sample as quantize_embedding_rows quantizes a table row, every pair's dot product is summed
  // exactly in integers (vpdpbusd), and scaled once: q(float(dot) * scale_i * scale_j). The
  // quantized pairs differ from the f32 operator's on the dequantized tables by the dense row's
  // rounding (half a step of max|x| / 127 per element) and the f32 sums' roundings.
  std::span<const Int8EmbeddingTable> int8_tables;
  const int64_t* ids = nullptr;  // [batch][ld_ids], first tables.size() (or int8_tables.size()) used
  int64_t ld_ids = 0;
  U8Quant quant;
  uint8_t* out = nullptr;  // [batch][ld_out], first dim + interaction_pairs(tables + 1) written
  int64_t ld_out = 0;
  int threads = 0;  // OpenMP threads over the batch; 0: OpenMP's default
};

// Width of an output row: dim + interaction_pairs(tables + 1), tables counting either kind.
constexpr int64_t interaction_width(int64_t dim, int64_t tables) { return dim + interaction_pairs(tables + 1); }

// Checks every id first: one out of its table's range throws spruce::Error (data) naming the
// sample, the table and the range, before anything is written. Bad sizes throw (usage).
void dot_interaction_u8(const DotInteractionArgs& args);

// The kernel dot_interaction_u8 runs under the current SPRUCE_MAX_ISA, e.g.
// "f32-dot-interaction-u8-avx512".
const char* dot_interaction_kernel_name();
// The same for int8_tables, e.g. "s8-table-dot-interaction-u8-avx512vnni".
const char* int8_table_dot_interaction_kernel_name();

}  // namespace spruce
