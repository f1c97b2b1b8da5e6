// The byte format the packed-weights fuzz target reads (and make_corpus writes): one
// PackedLinear, as a converted-model file stores it, in a form that mutates well.
//
//   u8  flags      bit 0 INT8, bit 1 bias, bit 2 u8 output, bit 3 Fallback::Always,
//                  bits 4-5 activation (0 none, 1 relu, 2 gelu)
//   u8  kernel     index into the sparse GEMM kernels of kernels::registry(); past their end: a
//                  name no kernel has
//   u8  pattern    index into kPatterns
//   u8  strip_h, strip_kg
//   u8  m          rows of the test input: 1 + m % 80
//   u16 out_features, in_features (little-endian; the target skips shapes over 512)
//   then the arrays strip_ptr, strip_k, strip_w, strip_sel, strip_perm, strip_wptr of the packed
//   weights' parts (attributes strip_h, strip_kg): each a u32 count, then that many elements (i64,
//   i32, f32 or i8 bytes, u8, i32, i64), cut short where the input ends; the last three are left
//   out when empty.
//
// Bias, scales and zero points are not in the input: they come valid from the shape, because
// their checks are plain range checks and the interesting invariants are in the strip arrays.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/kernel.hpp"
#include "spruce/spmm.hpp"

namespace spruce::fuzz {

// The sparse GEMM kernels, in registry order: what the kernel byte indexes.
inline std::vector<const kernels::Kernel*> spmm_kernels() {
  std::vector<const kernels::Kernel*> ks;
  for (const kernels::Kernel& k : kernels::registry())
    if (k.op == kernels::Op::Spmm) ks.push_back(&k);
  return ks;
}

inline const char* const kPatterns[] = {"1x1", "4x1", "1x4", "4x16", "16x1", "5x2",       "8x1",
                                        "2x2", "2:4", "1:4", "4:8",  "3:4",  "channelx1", "1xchannel"};
constexpr size_t kPatternCount = sizeof(kPatterns) / sizeof(kPatterns[0]);

struct PackedInput {
  PackedLinear p;       // all but the weights
  PackedParts weights;  // what a model file stores of them
  SparseLinearOptions options;
  int64_t m = 1;
  bool u8_out = false;
};

// The valid bias and quantization parameters for a shape (shared by the target and make_corpus).
inline void fill_params(PackedLinear& p, bool bias, bool u8_out) {
  p.bias.clear();
  if (bias)
    for (int64_t n = 0; n < p.out_features; ++n) p.bias.push_back(float(n % 11) - 5.0f);
  if (!p.int8) return;
  p.quant = QuantParams{};
  p.quant.x.scale = 0.02f;
  p.quant.x.zero_point = 9;
  for (int64_t n = 0; n < p.out_features; ++n) p.quant.w_scales.push_back(0.01f + 0.001f * float(n % 7));
  if (u8_out) {
    p.quant.out = OutType::U8;
    p.quant.y_scale = 0.4f;
    p.quant.y_zero_point = 100;
  }
}

class Reader {
 public:
  Reader(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  template <typename T>
  bool get(T& v) {
    if (n_ - at_ < sizeof(T)) return false;
    std::memcpy(&v, d_ + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  template <typename T>
  std::vector<T> array() {
    uint32_t count = 0;
    if (!get(count)) return {};
    std::vector<T> v(std::min<size_t>(count, (n_ - at_) / sizeof(T)));
    if (!v.empty()) std::memcpy(v.data(), d_ + at_, v.size() * sizeof(T));
    at_ += v.size() * sizeof(T);
    return v;
  }

 private:
  const uint8_t* d_;
  size_t n_, at_ = 0;
};

template <typename T>
void put(std::string& out, const T& v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof(T));
}
template <typename T>
void put_array(std::string& out, const std::vector<T>& v) {
  put(out, uint32_t(v.size()));
  if (!v.empty()) out.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace spruce::fuzz
