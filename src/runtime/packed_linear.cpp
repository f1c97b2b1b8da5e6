// SparseLinear's packed weights out (for saving) and back in (adopted without repacking when
// this CPU's dispatch picks the kernel they were laid out for).
#include <cstring>
#include <type_traits>

#include "sparse_linear_impl.hpp"
#include "spruce/error.hpp"
#include "spruce/sparse_matrix.hpp"

namespace spruce {

using kernels::DType;

namespace {

template <typename T>
std::vector<uint8_t> as_bytes(const std::vector<T>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

template <typename T>
kernels::StripWeights<T> strips_of(const PackedLinear& p) {
  if (p.strip_w.size() % sizeof(T) != 0) data_error("packed weights are corrupt: a partial weight value");
  kernels::StripWeights<T> s;
  s.h = p.strip_h;
  s.kg = p.strip_kg;
  s.rows = p.out_features;
  s.cols = p.in_features;
  s.ptr = p.strip_ptr;
  s.k = p.strip_k;
  s.w.resize(p.strip_w.size() / sizeof(T));
  if (!s.w.empty()) std::memcpy(s.w.data(), p.strip_w.data(), p.strip_w.size());
  s.sel = p.strip_sel;
  return s;
}

// Unpacks (checking every invariant), then adopts the strips or packs again for this CPU.
template <typename T>
void init_from_packed(SparseLinear::Impl& s, const PackedLinear& p, const kernels::Kernel& saved) {
  kernels::StripWeights<T> strips = strips_of<T>(p);
  const Matrix<T> dense = kernels::unpack_strips(strips, saved.layout);
  const runtime::KernelChoice c = runtime::choose_kernel(s.dtype, p.pattern, p.out_features, p.in_features, s.opt.kernel);
  const QuantParams* q = p.int8 ? &p.quant : nullptr;
  const float* bias = p.bias.empty() ? nullptr : p.bias.data();
  if (c.kernel != &saved || c.problem.h != p.strip_h) {
    runtime::init_from_dense(s, dense.data.data(), p.out_features, p.in_features, p.pattern, bias, q);
    s.repacked = true;
    return;
  }
  s.oc = p.out_features;
  s.ic = p.in_features;
  s.pattern = p.pattern;
  s.kernel = c.kernel;
  s.small = runtime::choose_small(s, c.problem);
  s.sparsity = sparsity(MatrixView<const T>(dense.data.data(), dense.rows, dense.cols));
  s.packed_bytes = p.packed_bytes;
  if constexpr (std::is_same_v<T, float>) {
    s.wf = std::move(strips);
    s.view = kernels::view(s.wf);
  } else {
    strips.wsum.assign(size_t(s.oc), 0);
    for (int64_t r = 0; r < s.oc; ++r)
      for (int64_t c2 = 0; c2 < s.ic; ++c2) strips.wsum[size_t(r)] += dense(r, c2);
    s.ws = std::move(strips);
    s.view = kernels::view(s.ws);
  }
  runtime::finish_init(s, dense.data.data(), bias, q);
}

}  // namespace

SparseLinear::SparseLinear(const PackedLinear& p, SparseLinearOptions opt) : impl_(std::make_unique<Impl>()) {
  if (p.out_features < 1 || p.in_features < 1 || p.out_features > (int64_t(1) << 31) || p.in_features > (int64_t(1) << 31))
    data_error("packed weights have an impossible shape " + std::to_string(p.out_features) + "x" + std::to_string(p.in_features));
  if (!p.bias.empty() && int64_t(p.bias.size()) != p.out_features)
    data_error("packed weights have " + std::to_string(p.bias.size()) + " bias values for " +
               std::to_string(p.out_features) + " output channels");
  if (p.int8) runtime::check_quant(p.quant, p.out_features);
  const kernels::Kernel* saved = kernels::find(p.kernel.c_str());
  if (!saved)
    data_error("packed weights are laid out for kernel '" + p.kernel +
               "', which this build of spruce does not have: convert the model again");
  Impl& s = *impl_;
  s.opt = std::move(opt);
  s.dtype = p.int8 ? DType::S8 : DType::F32;
  if (saved->dtype != s.dtype)
    data_error("packed weights are " + std::string(p.int8 ? "INT8" : "FP32") + " but laid out for kernel '" + p.kernel + "'");
  if (p.int8) init_from_packed<int8_t>(s, p, *saved);
  else init_from_packed<float>(s, p, *saved);
}

PackedLinear SparseLinear::packed() const {
  const Impl& s = *impl_;
  PackedLinear p;
  p.int8 = s.dtype == DType::S8;
  p.out_features = s.oc;
  p.in_features = s.ic;
  p.pattern = s.pattern;
  if (p.int8) p.quant = s.q;
  p.bias = s.bias;
  p.packed_bytes = s.packed_bytes;
  p.kernel = s.kernel->name;
  p.strip_h = s.view.h;
  p.strip_kg = s.view.kg;
  if (p.int8) {
    p.strip_ptr = s.ws.ptr;
    p.strip_k = s.ws.k;
    p.strip_w = as_bytes(s.ws.w);
    p.strip_sel = s.ws.sel;
  } else {
    p.strip_ptr = s.wf.ptr;
    p.strip_k = s.wf.k;
    p.strip_w = as_bytes(s.wf.w);
  }
  return p;
}

bool SparseLinear::repacked() const { return impl_->repacked; }
const QuantParams& SparseLinear::quant() const { return impl_->q; }
const SparseLinearOptions& SparseLinear::options() const { return impl_->opt; }

const char* fallback_name(Fallback f) {
  switch (f) {
    case Fallback::Auto: return "auto";
    case Fallback::Never: return "never";
    case Fallback::Always: return "always";
  }
  return "?";
}

Fallback parse_fallback(const std::string& name) {
  for (Fallback f : {Fallback::Auto, Fallback::Never, Fallback::Always})
    if (name == fallback_name(f)) return f;
  usage_error("unknown fallback '" + name + "': valid are auto, never, always");
}

}  // namespace spruce
