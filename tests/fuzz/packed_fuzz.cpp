// libFuzzer target: the packed-weight validator, through the path a model file's layers take
// (PackedWeights::from_parts(), then SparseLinear(const PackedLinear&)).
//
// Any arrays must either be rejected with spruce::Error or give an operator that runs without
// touching memory it does not own (ASan) and computes what the dense weights that unpack() returns
// compute: exactly for INT8, within rounding for FP32.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>

#include "fuzz_check.hpp"
#include "kernels/kernel.hpp"
#include "packed_format.hpp"
#include "spruce/error.hpp"

using namespace spruce;

namespace {

bool read(const uint8_t* data, size_t size, fuzz::PackedInput& in) {
  fuzz::Reader r(data, size);
  uint8_t flags, kernel, pattern, h, kg, m;
  uint16_t out, inf;
  if (!r.get(flags) || !r.get(kernel) || !r.get(pattern) || !r.get(h) || !r.get(kg) || !r.get(m) || !r.get(out) ||
      !r.get(inf))
    return false;
  // A dense matrix of the layer's shape is allocated before the arrays are checked against it;
  // in a model file the shape must also match the model's own layer, so it is not the file's to choose.
  if (out > 512 || inf > 512) return false;
  PackedLinear& p = in.p;
  p.int8 = flags & 1;
  p.out_features = out;
  p.in_features = inf;
  p.pattern = Pattern::parse(fuzz::kPatterns[pattern % fuzz::kPatternCount]);
  const auto kernels = fuzz::spmm_kernels();
  PackedParts& w = in.weights;
  w.kernel = kernel < kernels.size() ? kernels[kernel]->name : "no-such-kernel";
  w.attributes = {{"strip_h", h}, {"strip_kg", kg}};
  using T = PackedParts::Type;
  auto bytes = [](const auto& v) {
    std::vector<uint8_t> b(v.size() * sizeof(v[0]));
    if (!v.empty()) std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  w.arrays.push_back({"strip_ptr", T::I64, bytes(r.array<int64_t>())});
  w.arrays.push_back({"strip_k", T::I32, bytes(r.array<int32_t>())});
  w.arrays.push_back({"strip_w", p.int8 ? T::I8 : T::F32, r.array<uint8_t>()});
  // The optional arrays, left out when empty: strip_sel (4x4 and quad-mask kernels), strip_perm
  // (row-lane kernel) and strip_wptr (quad-mask kernel).
  if (std::vector<uint8_t> sel = r.array<uint8_t>(); !sel.empty()) w.arrays.push_back({"strip_sel", T::U8, sel});
  if (std::vector<int32_t> perm = r.array<int32_t>(); !perm.empty())
    w.arrays.push_back({"strip_perm", T::I32, bytes(perm)});
  if (std::vector<int64_t> wptr = r.array<int64_t>(); !wptr.empty())
    w.arrays.push_back({"strip_wptr", T::I64, bytes(wptr)});
  in.u8_out = p.int8 && (flags & 4);
  fuzz::fill_params(p, flags & 2, in.u8_out);
  in.options.threads = 1;
  in.options.fallback = flags & 8 ? Fallback::Always : Fallback::Never;
  in.options.activation = Activation((flags >> 4) % 3);
  in.m = 1 + m % 80;
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::PackedInput in;
  if (!read(data, size, in)) return 0;
  PackedLinear& p = in.p;
  std::unique_ptr<SparseLinear> op;
  try {
    p.weights = PackedWeights::from_parts(in.weights, p.int8, p.out_features, p.in_features);
    op = std::make_unique<SparseLinear>(p, in.options);
  } catch (const Error&) {
    return 0;
  }
  // Accepted: the strips must be what the validator says they are. Rebuild the operator from the
  // dense weights they hold, on the scalar reference kernel, and compare outputs.
  const int64_t m = in.m, k = p.in_features, n = p.out_features;
  SparseLinearOptions ref_options = in.options;
  ref_options.fallback = Fallback::Never;
  ref_options.kernel = p.int8 ? "s8-spmm-ref" : "f32-spmm-ref";
  FUZZ_CHECK(kernels::find(in.weights.kernel));
  if (p.int8) {
    const Matrix<int8_t> dense = p.weights.unpack_s8();
    SparseLinear ref(dense.data.data(), n, k, Pattern::block(1, 1), p.quant, p.bias.empty() ? nullptr : p.bias.data(),
                     ref_options);
    std::vector<uint8_t> x(size_t(m * k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = uint8_t(i * 37 + 11);
    const size_t es = in.u8_out ? 1 : 4;
    std::vector<uint8_t> y(size_t(m * n) * es, 0xA5), want(y.size(), 0x5A);
    op->run(x.data(), m, y.data());
    ref.run(x.data(), m, want.data());
    if (in.options.fallback == Fallback::Never) FUZZ_CHECK(y == want);  // oneDNN rounds its own way
  } else {
    const Matrix<float> dense = p.weights.unpack_f32();
    SparseLinear ref(dense.data.data(), n, k, Pattern::block(1, 1), p.bias.empty() ? nullptr : p.bias.data(),
                     ref_options);
    std::vector<float> x(size_t(m * k));
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(int(i * 7 % 9) - 4);
    std::vector<float> y(size_t(m * n), -1.0f), want(y.size(), -2.0f);
    op->run(x.data(), m, y.data());
    ref.run(x.data(), m, want.data());
    for (int64_t r = 0; r < m; ++r)
      for (int64_t c = 0; c < n; ++c) {
        double bound = 1.0;
        for (int64_t j = 0; j < k; ++j) bound += std::fabs(double(dense(c, j)) * double(x[size_t(r * k + j)]));
        const float a = y[size_t(r * n + c)], b = want[size_t(r * n + c)];
        // Past float's range the order of the sum decides between inf, -inf and NaN; below it,
        // both sums are finite and differ by rounding only.
        if (!(bound < 1e37)) continue;
        FUZZ_CHECK(std::fabs(double(a) - double(b)) <= 1e-4 * bound);
      }
  }
  return 0;
}
