// SparseLinear's saved form out (for saving) and back in: the packed weights and tuned choices are
// adopted when this CPU's dispatch picks the kernel they were laid out for.
#include <string>
#include <type_traits>
#include <utility>

#include "sparse_linear_impl.hpp"
#include "spruce/error.hpp"

namespace spruce {

using kernels::DType;

namespace {

// Adopts the saved weights and choices when k is the kernel they were packed for; otherwise
// packs them again for k (their timings do not apply here). W is unpacked at most once: to check
// an N:M pattern (as for weights given dense) or to pack again.
template <typename T>
void from_saved(SparseLinear::Impl& s, const PackedLinear& p, const kernels::Kernel& k) {
  const QuantParams* q = p.int8 ? &p.quant : nullptr;
  const float* bias = p.bias.empty() ? nullptr : p.bias.data();
  const bool adopt = &k == p.weights.impl().kernel;
  if (adopt && !p.pattern.is_nm()) {
    runtime::init(s, p.weights, p.pattern, bias, q);
    s.dense_for_m = p.dense_for_m;
    if (s.low) s.low_for_m = p.vnni_for_m;
    return;
  }
  Matrix<T> w;
  if constexpr (std::is_same_v<T, int8_t>)
    w = p.weights.unpack_s8();
  else
    w = p.weights.unpack_f32();
  if (!runtime::fits_pattern(p.pattern, w.data.data(), w.rows, w.cols))
    data_error("packed weights: " + runtime::breaks_pattern(p.pattern));
  if (adopt) {
    runtime::init(s, p.weights, p.pattern, bias, q);
    s.dense_for_m = p.dense_for_m;
    if (s.low) s.low_for_m = p.vnni_for_m;
  } else {
    runtime::init(s, kernels::pack_weights(k, std::as_const(w).view()), p.pattern, bias, q);
    s.repacked = true;
  }
}

}  // namespace

SparseLinear::SparseLinear(const PackedLinear& p, SparseLinearOptions opt) : impl_(std::make_unique<Impl>()) {
  const PackedWeights& w = p.weights;
  if (w.empty()) data_error("packed weights are missing");
  if (w.rows() != p.out_features || w.cols() != p.in_features)
    data_error("packed weights are " + std::to_string(w.rows()) + "x" + std::to_string(w.cols()) + " for a " +
               std::to_string(p.out_features) + "x" + std::to_string(p.in_features) + " layer");
  if (w.int8() != p.int8)
    data_error("packed weights are " + std::string(w.int8() ? "INT8" : "FP32") + " in an " +
               (p.int8 ? "INT8" : "FP32") + " layer");
  if (!p.bias.empty() && int64_t(p.bias.size()) != p.out_features)
    data_error("packed weights have " + std::to_string(p.bias.size()) + " bias values for " +
               std::to_string(p.out_features) + " output channels");
  if (p.int8) runtime::check_quant(p.quant, p.out_features);
  for (const auto* tuned : {&p.dense_for_m, &p.vnni_for_m})
    for (const auto& [bucket, choice] : *tuned)
      if (bucket < 1) data_error("a tuned batch-size bucket " + std::to_string(bucket) + " is below 1");
  Impl& s = *impl_;
  s.opt = std::move(opt);
  s.dtype = p.int8 ? DType::S8 : DType::F32;
  const kernels::Kernel& k = runtime::choose_kernel(s.dtype, p.pattern, p.out_features, p.in_features, s.opt.kernel);
  if (p.int8)
    from_saved<int8_t>(s, p, k);
  else
    from_saved<float>(s, p, k);
  tune(s.opt.tune_m);
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
  p.weights = s.weights;
  p.dense_for_m = s.dense_for_m;
  p.vnni_for_m = s.low_for_m;
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
