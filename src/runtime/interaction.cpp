// The dot-interaction operator: checks ids, threads over the batch, runs the chosen kernel.
#include "spruce/interaction.hpp"

#include <omp.h>

#include <string>
#include <vector>

#include "kernels/interaction.hpp"
#include "spruce/error.hpp"

namespace spruce {
namespace {
void check(const DotInteractionArgs& a) {
  const int64_t t = int64_t(a.tables.size());
  if (a.batch < 0 || a.dim < 1 || a.ld_dense < a.dim || a.ld_ids < t || a.ld_out < interaction_width(a.dim, t))
    usage_error("dot_interaction_u8: bad sizes (batch " + std::to_string(a.batch) + ", dim " + std::to_string(a.dim) +
                ", " + std::to_string(t) + " tables, strides dense " + std::to_string(a.ld_dense) + ", ids " +
                std::to_string(a.ld_ids) + ", out " + std::to_string(a.ld_out) + ")");
  if (!(a.quant.scale > 0.f)) usage_error("dot_interaction_u8: the output scale must be positive");
  for (int64_t f = 0; f < t; ++f)
    if (a.tables[size_t(f)].rows == nullptr && a.tables[size_t(f)].size > 0)
      usage_error("dot_interaction_u8: table " + std::to_string(f) + " has no rows pointer");
  for (int64_t b = 0; b < a.batch; ++b)
    for (int64_t f = 0; f < t; ++f) {
      const int64_t id = a.ids[b * a.ld_ids + f], size = a.tables[size_t(f)].size;
      if (id < 0 || id >= size)
        data_error("id " + std::to_string(id) + " of sample " + std::to_string(b) + ", categorical feature " +
                   std::to_string(f) + " is out of range: its embedding table has " + std::to_string(size) +
                   " rows, so ids must be in [0, " + std::to_string(size) + ")");
    }
}
}  // namespace

void dot_interaction_u8(const DotInteractionArgs& a) {
  check(a);
  const auto fn = kernels::choose_dot_interaction().fn;
  const int64_t t = int64_t(a.tables.size());
  const int threads = a.threads > 0 ? a.threads : omp_get_max_threads();
#pragma omp parallel num_threads(threads)
  {
    std::vector<const float*> v(size_t(t + 1));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < a.batch; ++b) {
      v[0] = a.dense + b * a.ld_dense;
      const int64_t* ids = a.ids + b * a.ld_ids;
      for (int64_t f = 0; f < t; ++f) v[size_t(f + 1)] = a.tables[size_t(f)].rows + ids[f] * a.dim;
      fn(v.data(), t + 1, a.dim, a.quant, a.out + b * a.ld_out);
    }
  }
}

const char* dot_interaction_kernel_name() { return kernels::choose_dot_interaction().name; }

}  // namespace spruce
