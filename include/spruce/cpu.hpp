// CPU features for kernel dispatch, read once with cpuid and XGETBV (so the OS really saves the
// registers), then capped by the environment variable SPRUCE_MAX_ISA=scalar|avx2|avx512|avx512_vnni|amx.
// On an AMX host, a cap below amx also caps oneDNN's dense kernels at AVX-512 VNNI (see
// runtime/dense.cpp), so that one host measures both classes: "AMX" and "AVX-512 VNNI only".
#pragma once
#include <string_view>

namespace spruce {

// Ordered: each level implies the ones below it.
//   avx2        = AVX2 + FMA
//   avx512      = AVX-512 F, BW, VL, DQ
//   avx512_vnni = avx512 + AVX512_VNNI (vpdpbusd)
//   amx         = avx512_vnni + AMX-TILE and AMX-INT8 (tdpbsud), with the OS's permission to use
//                 the tile data (Linux: arch_prctl(ARCH_REQ_XCOMP_PERM), asked once; refused = no AMX)
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Vnni = 3, Amx = 4 };

std::string_view isa_name(Isa isa);    // "scalar", "avx2", "avx512", "avx512_vnni", "amx"
Isa parse_isa(std::string_view name);  // throws spruce::Error (usage) for an unknown name

// What the CPU and OS support, ignoring the cap. Computed once.
Isa detected_isa();
// min(detected_isa(), SPRUCE_MAX_ISA). Read once; an invalid SPRUCE_MAX_ISA throws spruce::Error.
Isa max_isa();
// Whether BF16 dot products (AVX512_BF16: vdpbf16ps, vcvtne2ps2bf16) may run: the CPU has them
// and SPRUCE_MAX_ISA allows AVX-512. Not a level of Isa: CPUs have VNNI without BF16 (Ice Lake)
// and BF16 without AMX (Zen 4 and 5). Kernels that need it say so (kernels::Kernel::needs).
bool avx512_bf16();
// Whether byte permutes across a vector (AVX512_VBMI: vpermb, vpermi2b) may run: the CPU has them
// and SPRUCE_MAX_ISA allows AVX-512 VNNI. Not a level of Isa either: Cascade Lake has VNNI
// without VBMI. Kernels that need it say so (kernels::Kernel::needs).
bool avx512_vbmi();
// The class of host for figures: "AMX", "AVX-512 VNNI", "AVX-512", "AVX2" or "scalar", from max_isa().
std::string_view host_class();
// The CPU's maker (cpuid leaf 0), for tuning choices that follow the microarchitecture rather
// than the instruction set (e.g. SparseLinear's staged output, which pays on AMD only).
enum class CpuVendor { Intel, Amd, Other };
CpuVendor cpu_vendor();
// Bytes of L2 cache per core (sysconf; 1 MiB where the system does not say).
long l2_cache_bytes();
// The CPU itself, for figures: its brand string and family and model numbers, e.g. "AMD EPYC,
// family 26 model 2" (Zen 5; Zen 3 and 4 are family 25), which the class alone cannot tell apart.
std::string_view cpu_description();

// Thread counts from users are capped: no CPU spruce runs on has more hardware threads, and a
// larger count (a typo, or 100000) would make OpenMP or LibTorch create threads without end.
constexpr int kMaxThreads = 512;
// `n` when 1 <= n <= kMaxThreads; otherwise throws spruce::Error (usage) naming `what`.
int checked_threads(int n, const char* what = "thread count");

}  // namespace spruce
