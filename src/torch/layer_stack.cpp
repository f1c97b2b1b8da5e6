#include "spruce/torch/layer_stack.hpp"

#include <string>

#include "spruce/error.hpp"

namespace spruce::torch {

LayerStackImpl::LayerStackImpl(const std::vector<int64_t>& widths, bool relu_after_last) {
  if (widths.size() < 2) usage_error("a layer stack needs at least two widths (input and output)");
  for (size_t i = 0; i + 1 < widths.size(); ++i) {
    layers_.push_back(register_module(std::to_string(i), ::torch::nn::Linear(widths[i], widths[i + 1])));
    relu_after_.push_back(relu_after_last || i + 2 < widths.size());
  }
}

::torch::nn::LinearImpl* LayerStackImpl::linear(size_t i) const {
  return dynamic_cast<::torch::nn::LinearImpl*>(layers_.at(i).get());
}

::torch::Tensor LayerStackImpl::forward(::torch::Tensor x) {
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (observer_) observer_(i, x);
    if (auto* lin = linear(i)) {
      x = lin->forward(x);
      if (relu_after_[i]) x = ::torch::relu(x);
    } else {
      auto* fused = static_cast<FusedLayer*>(layers_[i].get());
      x = fused->forward(x);
      if (relu_after_[i] && !fused->fuses_relu()) x = ::torch::relu(x);
    }
  }
  return x;
}

void LayerStackImpl::replace_layer(size_t i, std::shared_ptr<FusedLayer> layer) {
  if (i >= layers_.size()) usage_error("layer " + std::to_string(i) + " is past the end of the stack");
  replace_module(std::to_string(i), layer);
  layers_[i] = std::move(layer);
}

}  // namespace spruce::torch
