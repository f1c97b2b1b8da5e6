// The dot-interaction kernel registry: best first, the reference last.
#include "kernels/interaction.hpp"

namespace spruce::kernels {
namespace {
constexpr DotInteractionKernel kKernels[] = {
    {"f32-dot-interaction-u8-avx512", Isa::Avx512, x86::f32_dot_interaction_u8_avx512},
    {"f32-dot-interaction-u8-avx2", Isa::Avx2, x86::f32_dot_interaction_u8_avx2},
    {"f32-dot-interaction-u8-ref", Isa::Scalar, ref::f32_dot_interaction_u8},
};
constexpr S8TableDotInteractionKernel kS8Kernels[] = {
    {"s8-table-dot-interaction-u8-avx512", Isa::Avx512, x86::s8_table_dot_interaction_u8_avx512},
    {"s8-table-dot-interaction-u8-avx2", Isa::Avx2, x86::s8_table_dot_interaction_u8_avx2},
    {"s8-table-dot-interaction-u8-ref", Isa::Scalar, ref::s8_table_dot_interaction_u8},
};
}  // namespace

std::span<const DotInteractionKernel> dot_interaction_kernels() { return kKernels; }

const DotInteractionKernel& choose_dot_interaction() {
  static const DotInteractionKernel& chosen = []() -> const DotInteractionKernel& {
    for (const auto& k : kKernels)
      if (k.isa <= max_isa()) return k;
    return kKernels[std::size(kKernels) - 1];
  }();
  return chosen;
}

std::span<const S8TableDotInteractionKernel> s8_table_dot_interaction_kernels() { return kS8Kernels; }

const S8TableDotInteractionKernel& choose_s8_table_dot_interaction() {
  static const S8TableDotInteractionKernel& chosen = []() -> const S8TableDotInteractionKernel& {
    for (const auto& k : kS8Kernels)
      if (k.isa <= max_isa()) return k;
    return kS8Kernels[std::size(kS8Kernels) - 1];
  }();
  return chosen;
}

}  // namespace spruce::kernels
