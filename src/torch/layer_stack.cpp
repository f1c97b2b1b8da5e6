#include "spruce/torch/layer_stack.hpp"

#include "onednn_linear.hpp"
#include "spruce/error.hpp"

namespace spruce::torch {

::torch::nn::LinearImpl* LayerHost::linear(size_t i) const {
  return dynamic_cast<::torch::nn::LinearImpl*>(layers_.at(i).get());
}

::torch::nn::Conv2dImpl* LayerHost::conv(size_t i) const {
  return dynamic_cast<::torch::nn::Conv2dImpl*>(layers_.at(i).get());
}

::torch::Tensor LayerHost::gemm_weight(size_t i) const {
  if (auto* lin = linear(i)) return lin->weight;
  if (auto* c = conv(i)) return c->weight.permute({0, 2, 3, 1}).reshape({c->weight.size(0), -1});
  return {};
}

size_t LayerHost::add_conv(const std::string& name, const ::torch::nn::Conv2dOptions& options, bool relu_after) {
  if (options.groups() != 1 || options.dilation()->at(0) != 1 || options.dilation()->at(1) != 1 ||
      !c10::holds_alternative<::torch::ExpandingArray<2>>(options.padding()) ||
      !c10::holds_alternative<::torch::enumtype::kZeros>(options.padding_mode()))
    usage_error("conv '" + name + "': a LayerHost conv needs groups 1, dilation 1 and numeric zero padding");
  layers_.push_back(register_module(name, ::torch::nn::Conv2d(options)));
  names_.push_back(name);
  activation_after_.push_back(relu_after ? Activation::ReLU : Activation::None);
  chained_.push_back(false);
  return layers_.size() - 1;
}

size_t LayerHost::add_linear(const std::string& name, int64_t in, int64_t out, Activation after, bool feeds_next) {
  if (after == Activation::GELU && feeds_next)
    usage_error("layer '" + name + "': a GELU layer cannot requantize into the next one (feeds_next must be false)");
  layers_.push_back(register_module(name, ::torch::nn::Linear(in, out)));
  names_.push_back(name);
  activation_after_.push_back(after);
  chained_.push_back(feeds_next);
  return layers_.size() - 1;
}

::torch::Tensor LayerHost::run_layer(size_t i, ::torch::Tensor x) {
  if (observer_) observer_(i, x);
  Activation applied = Activation::None;
  if (auto* lin = linear(i)) {
    x = onednn_linear(x, lin->weight, lin->bias);
  } else if (auto* c = conv(i)) {
    x = c->forward(x);
  } else {
    auto* fused = static_cast<FusedLayer*>(layers_[i].get());
    x = fused->forward(x);
    applied = fused->fused_activation();
  }
  if (applied == activation_after_[i]) return x;  // replace_layer allows only this, or none fused
  switch (activation_after_[i]) {
    case Activation::ReLU: return ::torch::relu(x);
    case Activation::GELU: return ::torch::gelu(x);
    case Activation::None: return x;
  }
  return x;
}

void LayerHost::replace_layer(size_t i, std::shared_ptr<FusedLayer> layer) {
  if (i >= layers_.size()) usage_error("layer " + std::to_string(i) + " is past the last layer");
  require_fused_activation(names_[i], layer->fused_activation(), activation_after_[i]);
  replace_module(names_[i], layer);
  layers_[i] = std::move(layer);
}

void require_fused_activation(const std::string& layer, Activation fused, Activation after) {
  if (fused != Activation::None && fused != after)
    data_error("layer '" + layer + "' applies " + activation_name(fused) + " where the model has " +
               activation_name(after) + " after it");
}

std::vector<NamedHost> find_layer_hosts(::torch::nn::Module& model) {
  std::vector<NamedHost> out;
  if (auto* self = dynamic_cast<LayerHost*>(&model)) out.push_back({"", self});
  for (const auto& item : model.named_modules("", /*include_self=*/false))
    if (auto* h = dynamic_cast<LayerHost*>(item.value().get())) out.push_back({item.key(), h});
  return out;
}

LayerStackImpl::LayerStackImpl(const std::vector<int64_t>& widths, bool relu_after_last) {
  if (widths.size() < 2) usage_error("a layer stack needs at least two widths (input and output)");
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    const bool last = i + 2 == widths.size();
    add_linear(std::to_string(i), widths[i], widths[i + 1], relu_after_last || !last, !last);
  }
}

::torch::Tensor LayerStackImpl::forward(::torch::Tensor x) {
  for (size_t i = 0; i < size(); ++i) x = run_layer(i, std::move(x));
  return x;
}

}  // namespace spruce::torch
