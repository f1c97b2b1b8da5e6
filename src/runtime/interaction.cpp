// The dot-interaction operator: checks ids, threads over the batch, runs the chosen kernel.
#include "spruce/interaction.hpp"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "kernels/interaction.hpp"
#include "kernels/kernel.hpp"
#include "spruce/error.hpp"

namespace spruce {
namespace {
int64_t table_count(const DotInteractionArgs& a) {
  return int64_t(a.tables.empty() ? a.int8_tables.size() : a.tables.size());
}

int64_t table_size(const DotInteractionArgs& a, int64_t f) {
  return a.tables.empty() ? a.int8_tables[size_t(f)].size : a.tables[size_t(f)].size;
}

void check(const DotInteractionArgs& a) {
  const int64_t t = table_count(a);
  if (!a.tables.empty() && !a.int8_tables.empty())
    usage_error("dot_interaction_u8: give either f32 tables or int8_tables, not both");
  if (a.batch < 0 || a.dim < 1 || a.ld_dense < a.dim || a.ld_ids < t || a.ld_out < interaction_width(a.dim, t))
    usage_error("dot_interaction_u8: bad sizes (batch " + std::to_string(a.batch) + ", dim " + std::to_string(a.dim) +
                ", " + std::to_string(t) + " tables, strides dense " + std::to_string(a.ld_dense) + ", ids " +
                std::to_string(a.ld_ids) + ", out " + std::to_string(a.ld_out) + ")");
  if (!(a.quant.scale > 0.f)) usage_error("dot_interaction_u8: the output scale must be positive");
  for (int64_t f = 0; f < t; ++f) {
    const bool missing = a.tables.empty()
                             ? (a.int8_tables[size_t(f)].rows == nullptr || a.int8_tables[size_t(f)].scales == nullptr)
                             : a.tables[size_t(f)].rows == nullptr;
    if (missing && table_size(a, f) > 0)
      usage_error("dot_interaction_u8: table " + std::to_string(f) + " has no rows (or scales) pointer");
  }
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t f = 0; f < t; ++f) {
      const int64_t id = a.ids[b * a.ld_ids + f], size = table_size(a, f);
      if (id < 0 || id >= size)
        data_error("id " + std::to_string(id) + " of sample " + std::to_string(b) + ", categorical feature " +
                   std::to_string(f) + " is out of range: its embedding table has " + std::to_string(size) +
                   " rows, so ids must be in [0, " + std::to_string(size) + ")");
    }
}

constexpr int64_t kPrefetchAhead = 2;

const kernels::Kernel& dot_kernel(kernels::DType tables) {
  kernels::Problem p;
  p.op = kernels::Op::DotInteraction;
  p.dtype = tables;
  return kernels::select(p);
}

void int8_table_interaction(const DotInteractionArgs& a, int threads) {
  const auto fn = dot_kernel(kernels::DType::S8).s8_table_dot_interaction();
  const int64_t t = int64_t(a.int8_tables.size());
#pragma omp parallel num_threads(threads)
  {
    std::vector<const int8_t*> rows(static_cast<size_t>(t));
    std::vector<float> scales(static_cast<size_t>(t));
    std::vector<uint8_t> scratch(size_t(kernels::s8_table_scratch_bytes(t + 1, a.dim)));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < a.batch; ++b) {
      const int64_t* ids = a.ids + b * a.ld_ids;
      if (b + kPrefetchAhead <
          a.batch) {  // the rows of a sample a few ahead: random, so no hardware prefetcher finds them
        const int64_t* next = ids + kPrefetchAhead * a.ld_ids;
        for (int64_t f = 0; f < t; ++f) {
          const Int8EmbeddingTable& tab = a.int8_tables[size_t(f)];
          const int8_t* row = tab.rows + next[f] * a.dim;
          for (int64_t off = 0; off < a.dim; off += 64) __builtin_prefetch(row + off);
          __builtin_prefetch(tab.scales + next[f]);
        }
      }
      for (int64_t f = 0; f < t; ++f) {
        const Int8EmbeddingTable& tab = a.int8_tables[size_t(f)];
        rows[size_t(f)] = tab.rows + ids[f] * a.dim;
        scales[size_t(f)] = tab.scales[ids[f]];
      }
      fn(a.dense + b * a.ld_dense, rows.data(), scales.data(), t + 1, a.dim, a.quant, a.out + b * a.ld_out,
         scratch.data());
    }
  }
}
}  // namespace

void quantize_embedding_rows(const float* rows, int64_t size, int64_t dim, int8_t* rows_out, float* scales_out) {
  if (size < 0 || dim < 1) usage_error("quantize_embedding_rows: bad sizes");
  for (int64_t r = 0; r < size; ++r) {
    const float* x = rows + r * dim;
    if (!std::all_of(x, x + dim, [](float v) { return std::isfinite(v); }))
      data_error("quantize_embedding_rows: row " + std::to_string(r) + " is not finite");
    scales_out[r] = kernels::s8_quantize_row(x, dim, rows_out + r * dim);  // the dense row's rule too
  }
}

void dot_interaction_u8(const DotInteractionArgs& a) {
  check(a);
  const int threads = a.threads > 0 ? a.threads : omp_get_max_threads();
  if (!a.int8_tables.empty()) return int8_table_interaction(a, threads);
  const auto fn = dot_kernel(kernels::DType::F32).dot_interaction();
  const int64_t t = int64_t(a.tables.size());
#pragma omp parallel num_threads(threads)
  {
    std::vector<const float*> v(size_t(t + 1));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < a.batch; ++b) {
      v[0] = a.dense + b * a.ld_dense;
      const int64_t* ids = a.ids + b * a.ld_ids;
      if (b + kPrefetchAhead < a.batch) {
        const int64_t* next = ids + kPrefetchAhead * a.ld_ids;
        for (int64_t f = 0; f < t; ++f) {
          const float* row = a.tables[size_t(f)].rows + next[f] * a.dim;
          for (int64_t off = 0; off < a.dim; off += 16) __builtin_prefetch(row + off);
        }
      }
      for (int64_t f = 0; f < t; ++f) v[size_t(f + 1)] = a.tables[size_t(f)].rows + ids[f] * a.dim;
      fn(v.data(), t + 1, a.dim, a.quant, a.out + b * a.ld_out);
    }
  }
}

const char* dot_interaction_kernel_name() { return dot_kernel(kernels::DType::F32).name; }
const char* int8_table_dot_interaction_kernel_name() { return dot_kernel(kernels::DType::S8).name; }

}  // namespace spruce
