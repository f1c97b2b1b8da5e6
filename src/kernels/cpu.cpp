// CPU feature detection: cpuid for the instruction sets, XGETBV for the OS-enabled register state.
#include "spruce/cpu.hpp"

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "spruce/error.hpp"

namespace spruce {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

Isa detect() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::Scalar;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return Isa::Scalar;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // SSE + AVX state
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
  if (!ymm_state || __get_cpuid_max(0, nullptr) < 7) return Isa::Scalar;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool f = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  const bool vnni = c & (1u << 11);
  if (!avx2 || !fma) return Isa::Scalar;
  if (!(zmm_state && f && dq && bw && vl)) return Isa::Avx2;
  return vnni ? Isa::Avx512Vnni : Isa::Avx512;
}

}  // namespace

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Vnni: return "avx512_vnni";
    default: return "scalar";
  }
}

Isa parse_isa(std::string_view name) {
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni})
    if (isa_name(i) == name) return i;
  usage_error("unknown ISA '" + std::string(name) + "': expected scalar, avx2, avx512 or avx512_vnni");
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa max_isa() {
  static const Isa isa = [] {
    const char* cap = std::getenv("SPRUCE_MAX_ISA");
    if (!cap || !*cap) return detected_isa();
    const Isa want = parse_isa(cap);
    return want < detected_isa() ? want : detected_isa();
  }();
  return isa;
}

int checked_threads(int n, const char* what) {
  if (n < 1 || n > kMaxThreads)
    usage_error(std::string(what) + " " + std::to_string(n) + " is outside 1.." + std::to_string(kMaxThreads));
  return n;
}

}  // namespace spruce
