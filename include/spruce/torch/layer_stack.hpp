// A chain of fully connected layers, each followed by ReLU (the last one optionally not).
// Its layers are registered as "0", "1", ..., so a recipe names them "<stack>.<i>", and any of
// them can be swapped for a FusedLayer (convert() puts SparseLinear there) without touching the
// model that owns the stack.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>
#include <vector>

namespace spruce::torch {

// A layer that computes its own activation, as a converted layer does.
class FusedLayer : public ::torch::nn::Module {
 public:
  virtual ::torch::Tensor forward(const ::torch::Tensor& x) = 0;
  // Whether forward() already applies the ReLU that the stack would apply after it.
  virtual bool fuses_relu() const = 0;
};

class LayerStackImpl : public ::torch::nn::Module {
 public:
  // widths {13, 512, 256} makes Linear 13->512 and 512->256.
  LayerStackImpl(const std::vector<int64_t>& widths, bool relu_after_last);

  ::torch::Tensor forward(::torch::Tensor x);

  size_t size() const { return layers_.size(); }
  const std::shared_ptr<::torch::nn::Module>& layer(size_t i) const { return layers_.at(i); }
  // The Linear at i, or null once it was replaced.
  ::torch::nn::LinearImpl* linear(size_t i) const;
  bool relu_after(size_t i) const { return relu_after_.at(i); }
  void replace_layer(size_t i, std::shared_ptr<FusedLayer> layer);

  // Calibration: while set, forward() shows each layer's input to `observer` before the layer.
  using Observer = std::function<void(size_t layer, const ::torch::Tensor& input)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

 private:
  std::vector<std::shared_ptr<::torch::nn::Module>> layers_;
  std::vector<bool> relu_after_;
  Observer observer_;
};
// The module holder (TORCH_MODULE would look up `torch::nn` relative to this namespace).
class LayerStack : public ::torch::nn::ModuleHolder<LayerStackImpl> {
 public:
  using ::torch::nn::ModuleHolder<LayerStackImpl>::ModuleHolder;
};

}  // namespace spruce::torch
