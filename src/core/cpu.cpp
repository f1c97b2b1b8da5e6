// CPU feature detection: cpuid for the instruction sets, XGETBV for the OS-enabled register state.
#include "spruce/cpu.hpp"

#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <algorithm>
#include <cctype>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "spruce/error.hpp"

namespace spruce {
namespace {

uint64_t xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

// Linux keeps AMX tile data off until the process asks (arch_prctl ARCH_REQ_XCOMP_PERM for
// XFEATURE_XTILEDATA); the permission then holds for every thread of the process.
bool amx_permitted() {
#ifdef SYS_arch_prctl
  constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
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
  const bool amx_tile = d & (1u << 24), amx_int8 = d & (1u << 25);
  const bool tile_state = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  if (!avx2 || !fma) return Isa::Scalar;
  if (!(zmm_state && f && dq && bw && vl)) return Isa::Avx2;
  if (!vnni) return Isa::Avx512;
  return amx_tile && amx_int8 && tile_state && amx_permitted() ? Isa::Amx : Isa::Avx512Vnni;
}

// The brand string (cpuid 0x80000002..4) without its padding, and the vendor's family and model
// numbers as Linux's /proc/cpuinfo prints them (the extended fields folded in).
std::string describe_cpu() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  std::string brand;
  if (static_cast<unsigned>(__get_cpuid_max(0x80000000, nullptr)) >= 0x80000004u)
    for (unsigned leaf = 0x80000002; leaf <= 0x80000004; ++leaf) {
      __get_cpuid(leaf, &a, &b, &c, &d);
      for (unsigned r : {a, b, c, d})
        for (int i = 0; i < 4; ++i) brand += char((r >> (8 * i)) & 0xff);
    }
  brand = brand.c_str();  // up to the first NUL
  const auto first = brand.find_first_not_of(' '), last = brand.find_last_not_of(' ');
  brand = first == std::string::npos ? "unknown CPU" : brand.substr(first, last - first + 1);
  if (!__get_cpuid(1, &a, &b, &c, &d)) return brand;
  const unsigned base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  const unsigned family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
  const unsigned model = base_family == 0x6 || base_family == 0xf ? base_model | (((a >> 16) & 0xf) << 4) : base_model;
  return brand + ", family " + std::to_string(family) + " model " + std::to_string(model);
}

}  // namespace

CpuVendor cpu_vendor() {
  static const CpuVendor vendor = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return CpuVendor::Other;
    char name[13] = {};
    std::memcpy(name, &b, 4), std::memcpy(name + 4, &d, 4), std::memcpy(name + 8, &c, 4);
    const std::string_view v(name);
    if (v == "GenuineIntel") return CpuVendor::Intel;
    return v == "AuthenticAMD" || v == "HygonGenuine" ? CpuVendor::Amd : CpuVendor::Other;
  }();
  return vendor;
}

long l2_cache_bytes() {
  static const long bytes = [] {
    const long b = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return b > 0 ? b : 1L << 20;
  }();
  return bytes;
}

std::string_view cpu_description() {
  static const std::string text = describe_cpu();
  return text;
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Vnni: return "avx512_vnni";
    case Isa::Amx: return "amx";
    default: return "scalar";
  }
}

Isa parse_isa(std::string_view name) {
  // Case-blind, as oneDNN's DNNL_MAX_CPU_ISA is (AVX2 and avx2 alike).
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni, Isa::Amx})
    if (isa_name(i) == lower) return i;
  usage_error("unknown ISA " + in_quotes(name, 40) + ": expected scalar, avx2, avx512, avx512_vnni or amx");
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa max_isa() {
  static const Isa isa = [] {
    const char* cap = std::getenv("SPRUCE_MAX_ISA");
    if (!cap || !*cap) return detected_isa();
    Isa want = Isa::Scalar;
    try {
      want = parse_isa(cap);
    } catch (const Error& e) {  // the message names the variable: nothing on the command line is wrong
      usage_error(std::string("SPRUCE_MAX_ISA: ") + e.what());
    }
    return want < detected_isa() ? want : detected_isa();
  }();
  return isa;
}

namespace {
// CPUID leaf 7, the given subleaf: whether bit `bit` of register `reg` (0 = EAX .. 3 = EDX) is set.
// Only asked where the CPU has AVX-512 at all.
bool leaf7_bit(unsigned subleaf, int reg, int bit) {
  unsigned r[4] = {};
  if (detected_isa() < Isa::Avx512 || __get_cpuid_max(0, nullptr) < 7) return false;
  __cpuid_count(7, subleaf, r[0], r[1], r[2], r[3]);
  return (r[reg] >> bit & 1u) != 0;
}
}  // namespace

bool avx512_bf16() {
  static const bool has = leaf7_bit(1, 0, 5);  // EAX bit 5
  return has && max_isa() >= Isa::Avx512;
}

bool avx512_vbmi() {
  static const bool has = leaf7_bit(0, 2, 1);  // ECX bit 1
  return has && max_isa() >= Isa::Avx512Vnni;
}

std::string_view host_class() {
  switch (max_isa()) {
    case Isa::Amx: return "AMX";
    case Isa::Avx512Vnni: return "AVX-512 VNNI";
    case Isa::Avx512: return "AVX-512";
    case Isa::Avx2: return "AVX2";
    default: return "scalar";
  }
}

int checked_threads(int n, const char* what) {
  if (n < 1 || n > kMaxThreads)
    usage_error(std::string(what) + " " + std::to_string(n) + " is outside 1.." + std::to_string(kMaxThreads));
  return n;
}

}  // namespace spruce
