#include "spruce/torch/convert.hpp"

#include <ATen/Parallel.h>

#include <algorithm>
#include <map>
#include <mutex>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/quant.hpp"

namespace spruce::torch {

Variant parse_variant(const std::string& t) {
  if (t == "fp32-sparse") return Variant::F32Sparse;
  if (t == "int8-sparse") return Variant::Int8Sparse;
  if (t == "int8-dense") return Variant::Int8Dense;
  usage_error("unknown variant '" + t + "': valid are fp32-sparse, int8-sparse, int8-dense");
}

std::string to_string(Variant v) {
  switch (v) {
    case Variant::F32Sparse: return "fp32-sparse";
    case Variant::Int8Sparse: return "int8-sparse";
    case Variant::Int8Dense: return "int8-dense";
  }
  return "?";
}

namespace {
// quantize_u8 over LibTorch's intra-op threads, in chunks of whole cache lines.
void parallel_quantize(const float* x, int64_t n, const U8Quant& q, uint8_t* out) {
  at::parallel_for(0, (n + 4095) / 4096, 1, [&](int64_t begin, int64_t end) {
    const int64_t first = begin * 4096, last = std::min(n, end * 4096);
    quantize_u8(x + first, last - first, q, out + first);
  });
}
}  // namespace

SparseLinearLayer::SparseLinearLayer(const ::torch::Tensor& weight, const ::torch::Tensor& bias, const Pattern& pattern,
                                     Activation activation, const std::optional<U8Quant>& in_quant,
                                     const std::optional<U8Quant>& out_quant, SparseLinearOptions options) {
  const auto w = weight.detach().to(::torch::kFloat).contiguous();
  const auto b = bias.defined() ? bias.detach().to(::torch::kFloat).contiguous() : ::torch::Tensor();
  const int64_t out = w.size(0), in = w.size(1);
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  options.activation = activation;
  if (!in_quant) {
    if (out_quant) usage_error("an FP32 layer cannot requantize its output");
    op_ = std::make_shared<SparseLinear>(w.data_ptr<float>(), out, in, pattern, bp, options);
    return;
  }
  Matrix<int8_t> q;
  QuantParams qp;
  qp.w_scales = quantize_weights(MatrixView<const float>(w.data_ptr<float>(), out, in), q);
  qp.x = *in_quant;
  if (out_quant) {
    qp.out = OutType::U8;
    qp.y_scale = out_quant->scale;
    qp.y_zero_point = out_quant->zero_point;
  }
  op_ = std::make_shared<SparseLinear>(q.data.data(), out, in, pattern, qp, bp, options);
}

SparseLinearLayer::SparseLinearLayer(std::shared_ptr<SparseLinear> op) : op_(std::move(op)) {
  if (!op_) usage_error("SparseLinearLayer needs an operator");
  if (!op_->is_int8()) return;
  const QuantParams& q = op_->quant();
  if (q.out == OutType::S8) data_error("a converted layer returns f32 or u8, not s8");
}

std::optional<U8Quant> SparseLinearLayer::input_quant() const {
  if (!op_->is_int8()) return std::nullopt;
  return op_->quant().x;
}

ConvertedLayer describe_layer(const std::string& name, const std::string& variant, const SparseLinear& op) {
  ConvertedLayer r;
  r.name = name;
  r.variant = variant;
  // A layer that always runs oneDNN is dense, whatever zeros its packed copy describes. (INT8 on a
  // host without VNNI runs spruce's exact kernel instead: oneDNN's would saturate.)
  const bool dense = op.options().fallback == Fallback::Always;
  r.pattern = dense ? "dense" : op.pattern().str();
  r.kernel = dense && op.has_dense_fallback() ? "onednn" : op.sparse_kernel();
  r.sparsity = op.sparsity();
  r.in_features = op.in_features();
  r.out_features = op.out_features();
  r.packed_bytes = op.packed_bytes();
  r.dense_bytes = op.dense_bytes();
  return r;
}

void SparseLinearLayer::tune(std::span<const int64_t> ms) { op_->tune(ms); }
void SparseLinearLayer::tune(std::span<const int64_t> ms, TuningCache& cache) { op_->tune(ms, cache); }

::torch::Tensor SparseLinearLayer::forward(const ::torch::Tensor& input) {
  const int64_t in = op_->in_features(), out = op_->out_features();
  if (input.dim() < 1 || input.size(-1) != in)
    data_error("converted layer takes [..][" + std::to_string(in) + "] inputs, got " + std::to_string(input.size(-1)));
  auto x = input.reshape({-1, in}).contiguous();
  const int64_t m = x.size(0);
  auto shape = input.sizes().vec();
  shape.back() = out;
  const std::optional<U8Quant> in_quant = input_quant();
  if (!in_quant) {
    if (x.scalar_type() != ::torch::kFloat) x = x.to(::torch::kFloat);
    auto y = ::torch::empty({m, out}, ::torch::kFloat);
    op_->run(x.data_ptr<float>(), m, y.data_ptr<float>());
    return y.view(shape);
  }
  const uint8_t* xq = nullptr;
  if (x.scalar_type() == ::torch::kByte) {  // already quantized by the layer before, for us
    xq = x.data_ptr<uint8_t>();
  } else {
    if (x.scalar_type() != ::torch::kFloat) x = x.to(::torch::kFloat);
    thread_local std::vector<uint8_t> quantized;  // per thread: encoders may run passes side by side
    quantized.resize(size_t(m * in));
    parallel_quantize(x.data_ptr<float>(), m * in, *in_quant, quantized.data());
    xq = quantized.data();
  }
  auto y = ::torch::empty({m, out}, op_->quant().out == OutType::U8 ? ::torch::kByte : ::torch::kFloat);
  op_->run(xq, m, y.data_ptr());
  return y.view(shape);
}

ConvGeometry ConvGeometry::of(const ::torch::nn::Conv2dImpl& conv) {
  const auto& o = conv.options;
  const auto* pad = c10::get_if<::torch::ExpandingArray<2>>(&o.padding());
  if (!pad || o.groups() != 1 || (*o.dilation())[0] != 1 || (*o.dilation())[1] != 1)
    usage_error("only convs with groups 1, dilation 1 and numeric padding convert");
  return {o.in_channels(), (*o.kernel_size())[0], (*o.kernel_size())[1], (*o.stride())[0], (*o.stride())[1], (**pad)[0],
          (**pad)[1]};
}

SparseConvLayer::SparseConvLayer(std::shared_ptr<SparseLinearLayer> gemm, const ConvGeometry& g)
    : gemm_(std::move(gemm)), geometry_(g) {
  if (gemm_->op().in_features() != g.in_channels * g.kernel_h * g.kernel_w)
    data_error("a converted conv's GEMM takes " + std::to_string(gemm_->op().in_features()) + " inputs, not " +
               std::to_string(g.in_channels) + "x" + std::to_string(g.kernel_h) + "x" + std::to_string(g.kernel_w));
}

namespace {

// x NHWC [N][H][W][C], contiguous, unfolded to the conv's GEMM rows [N*OH*OW][KH*KW*C]: taps
// (kh, kw) outer and channels inner, positions outside the input filled with `pad`. One pass, in
// parallel over output rows of pixels.
template <typename T>
::torch::Tensor unfold_channels_last(const ::torch::Tensor& x, const ConvGeometry& g, int64_t oh, int64_t ow, T pad) {
  const int64_t n = x.size(0), h = x.size(1), w = x.size(2), c = x.size(3), taps = g.kernel_h * g.kernel_w;
  auto rows = ::torch::empty({n * oh * ow, taps * c}, x.options());
  const T* src = x.data_ptr<T>();
  T* dst = rows.data_ptr<T>();
  at::parallel_for(0, n * oh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t nr = begin; nr < end; ++nr) {
      const int64_t img = nr / oh, r = nr % oh;
      for (int64_t col = 0; col < ow; ++col) {
        T* out = dst + ((img * oh + r) * ow + col) * taps * c;
        for (int64_t kh = 0; kh < g.kernel_h; ++kh)
          for (int64_t kw = 0; kw < g.kernel_w; ++kw, out += c) {
            const int64_t y = r * g.stride_h - g.pad_h + kh, z = col * g.stride_w - g.pad_w + kw;
            if (y < 0 || y >= h || z < 0 || z >= w)
              std::fill(out, out + c, pad);
            else
              std::copy_n(src + ((img * h + y) * w + z) * c, c, out);
          }
      }
    }
  });
  return rows;
}

}  // namespace

::torch::Tensor SparseConvLayer::forward(const ::torch::Tensor& input) {
  const ConvGeometry& g = geometry_;
  if (input.dim() != 4 || input.size(1) != g.in_channels)
    data_error("converted conv takes [N][" + std::to_string(g.in_channels) + "][H][W] inputs");
  // NHWC; no copy when the input is channels-last already, as this layer's own outputs are.
  auto x = input.to(::torch::kFloat).permute({0, 2, 3, 1}).contiguous();
  const int64_t oh = (x.size(1) + 2 * g.pad_h - g.kernel_h) / g.stride_h + 1;
  const int64_t ow = (x.size(2) + 2 * g.pad_w - g.kernel_w) / g.stride_w + 1;
  if (oh < 1 || ow < 1) data_error("converted conv: the input is smaller than the kernel");
  ::torch::Tensor rows;
  if (const auto q = gemm_->input_quant()) {  // quantize once, before the KH*KW times larger unfold
    auto xq = ::torch::empty(x.sizes(), ::torch::kByte);
    parallel_quantize(x.data_ptr<float>(), x.numel(), *q, xq.data_ptr<uint8_t>());
    rows = unfold_channels_last<uint8_t>(xq, g, oh, ow, uint8_t(q->zero_point));  // the code of 0.0
  } else {
    rows = unfold_channels_last<float>(x, g, oh, ow, 0.0f);
  }
  // [N][OC][OH][OW] with channels-last strides: pooling and the next conv take it without a copy.
  return gemm_->forward(rows).view({x.size(0), oh, ow, -1}).permute({0, 3, 1, 2});
}

::torch::Tensor quantize_shared_input(std::initializer_list<const ::torch::nn::Module*> layers,
                                      const ::torch::Tensor& x) {
  std::optional<U8Quant> shared;
  for (const auto* layer : layers) {
    const SparseLinearLayer* gemm = layer ? converted_gemm(*layer) : nullptr;
    const std::optional<U8Quant> q = gemm ? gemm->input_quant() : std::nullopt;
    if (!q || (shared && (q->scale != shared->scale || q->zero_point != shared->zero_point))) return {};
    shared = q;
  }
  if (!shared || x.scalar_type() != ::torch::kFloat) return {};
  const auto xc = x.contiguous();
  auto out = ::torch::empty(xc.sizes(), ::torch::kByte);
  parallel_quantize(xc.data_ptr<float>(), xc.numel(), *shared, out.data_ptr<uint8_t>());
  return out;
}

const SparseLinearLayer* converted_gemm(const ::torch::nn::Module& layer) {
  if (const auto* l = dynamic_cast<const SparseLinearLayer*>(&layer)) return l;
  if (const auto* c = dynamic_cast<const SparseConvLayer*>(&layer)) return &c->gemm();
  return nullptr;
}

Pattern detect_pattern(const ::torch::Tensor& weight) {
  const auto w = weight.detach().to(::torch::kFloat).contiguous();
  const MatrixView<const float> v(w.data_ptr<float>(), w.size(0), w.size(1));
  for (const char* p : {"4x16", "16x1", "8x1", "4x4", "4x1", "1x16", "1x4", "2x1", "2:4", "1:4"}) {
    const Pattern pattern = Pattern::parse(p);
    if (follows_pattern(pattern, v)) return pattern;
  }
  return Pattern::block(1, 1);
}

std::vector<ConvertedLayer> convert(::torch::nn::Module& model, const ConvertOptions& o,
                                    const std::function<void()>& calibrate) {
  const bool int8 = o.variant != Variant::F32Sparse;
  const auto hosts = find_layer_hosts(model);
  if (hosts.empty())
    usage_error(
        "convert() found no LayerHost in the model: its Linear layers must live in a LayerHost such as LayerStack");

  // Calibration: every Linear's input, through the model as it is.
  std::map<LayerHost*, std::vector<ActivationObserver>> seen;
  if (int8) {
    if (!calibrate) usage_error("INT8 conversion needs calibration data: pass a function that runs sample inputs");
    // The hosts' own observers (a Pruner's) come back afterwards, also when calibrate() throws.
    std::vector<LayerHost::Observer> previous;
    for (const auto& s : hosts) previous.push_back(s.host->observer());
    struct Restore {
      const std::vector<NamedHost>& hosts;
      std::vector<LayerHost::Observer>& previous;
      ~Restore() {
        for (size_t h = 0; h < hosts.size(); ++h) hosts[h].host->set_observer(std::move(previous[h]));
      }
    } restore{hosts, previous};
    // A calibration may run passes side by side (the sentence encoder's): observers are shared.
    std::mutex observing;
    for (const auto& s : hosts) {
      seen[s.host].resize(s.host->size());
      s.host->set_observer([&obs = seen[s.host], &observing](size_t i, const ::torch::Tensor& x) {
        const auto c = x.detach().to(::torch::kFloat).contiguous();
        const std::lock_guard<std::mutex> one_at_a_time(observing);
        obs[i].observe(c.data_ptr<float>(), c.numel());
      });
    }
    ::torch::NoGradGuard no_grad;
    calibrate();
  }

  SparseLinearOptions opt;
  opt.threads = o.threads;
  opt.fallback = o.fallback.value_or(o.variant == Variant::Int8Dense ? Fallback::Always : Fallback::Auto);
  // Each layer's input quantization (INT8), chosen before any layer is replaced.
  std::map<LayerHost*, std::vector<std::optional<U8Quant>>> input_quant;
  std::map<LayerHost*, bool> first_is_linear;
  for (const auto& s : hosts) {
    auto& in_q = input_quant[s.host];
    in_q.resize(s.host->size() + 1);
    for (size_t i = 0; i < s.host->size() && int8; ++i)
      if (s.host->gemm_weight(i).defined()) in_q[i] = seen[s.host][i].choose(o.calibration, o.percentile);
    first_is_linear[s.host] = s.host->size() > 0 && s.host->linear(0) != nullptr;
  }
  // A host's last layer requantizes for the first of the host it feeds, when that one is a
  // Linear of this model converted to INT8 (a conv's patches are taken from f32).
  auto next_host_input = [&](LayerHost* next) -> std::optional<U8Quant> {
    const auto it = input_quant.find(next);
    if (!next || it == input_quant.end() || !first_is_linear[next]) return std::nullopt;
    return it->second[0];
  };
  std::vector<ConvertedLayer> report;
  TuningCache tuning;  // layers alike time once
  for (const auto& s : hosts) {
    const size_t n = s.host->size();
    const auto& in_q = input_quant[s.host];
    std::vector<ConvertedLayer> host_report;
    for (size_t i = n; i-- > 0;) {  // back to front: each layer requantizes for the one after it
      const auto weight = s.host->gemm_weight(i);
      if (!weight.defined()) continue;
      auto* conv = s.host->conv(i);
      const auto bias = conv ? conv->bias : s.host->linear(i)->bias;
      const Pattern pattern = o.pattern.value_or(detect_pattern(weight));
      const std::optional<U8Quant> out_q = s.host->feeds_next(i) ? in_q[i + 1]
                                           : i + 1 == n          ? next_host_input(s.host->feeds_host())
                                                                 : std::nullopt;
      auto gemm =
          std::make_shared<SparseLinearLayer>(weight, bias, pattern, s.host->activation_after(i), in_q[i], out_q, opt);
      // A detected pattern that packs no smaller than dense (a dense layer's rounding zeros fit
      // any pattern) leaves the layer dense: it runs oneDNN. A pattern or fallback the caller
      // chose is kept.
      if (!o.pattern && !o.fallback && opt.fallback != Fallback::Always &&
          gemm->op().packed_bytes() >= gemm->op().dense_bytes()) {
        SparseLinearOptions dense = opt;
        dense.fallback = Fallback::Always;
        gemm = std::make_shared<SparseLinearLayer>(weight, bias, pattern, s.host->activation_after(i), in_q[i], out_q,
                                                   dense);
      }
      gemm->tune(o.tune_m, tuning);
      host_report.insert(host_report.begin(), describe_layer(s.layer_path(i), to_string(o.variant), gemm->op()));
      if (conv)
        s.host->replace_layer(i, std::make_shared<SparseConvLayer>(gemm, ConvGeometry::of(*conv)));
      else
        s.host->replace_layer(i, gemm);
    }
    report.insert(report.end(), host_report.begin(), host_report.end());
  }
  return report;
}

}  // namespace spruce::torch
