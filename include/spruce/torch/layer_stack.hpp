// Models whose Linear and Conv2d layers convert() may swap for fused sparse layers.
//
// A LayerHost registers its layers under their own names (so recipes and checkpoints see "fc1",
// "conv2", "top.0", ...) and calls them through run_layer(), which looks the layer up at call
// time: a layer replaced by replace_layer() takes effect without touching the model's code.
// LayerStack is the common case: a chain of Linear layers with ReLU between them.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "spruce/quant.hpp"

namespace spruce::torch {

// A layer that computes its own activation, as a converted layer does.
class FusedLayer : public ::torch::nn::Module {
 public:
  virtual ::torch::Tensor forward(const ::torch::Tensor& x) = 0;
  // The activation forward() applies (None: the host applies the one it has after the layer).
  virtual Activation fused_activation() const = 0;
};

class LayerHost : public ::torch::nn::Module {
 public:
  size_t size() const { return layers_.size(); }
  const std::string& layer_name(size_t i) const { return names_.at(i); }
  const std::shared_ptr<::torch::nn::Module>& layer(size_t i) const { return layers_.at(i); }
  // The Linear (or Conv2d) at i, or null if it is the other kind or was replaced.
  ::torch::nn::LinearImpl* linear(size_t i) const;
  ::torch::nn::Conv2dImpl* conv(size_t i) const;
  // The weight of the Linear or Conv2d at i as the GEMM sees it: [out][in] for a Linear,
  // [OC][KH*KW*IC] (channels-last, as the pruner views it) for a conv; undefined once replaced.
  ::torch::Tensor gemm_weight(size_t i) const;
  bool relu_after(size_t i) const { return activation_after_.at(i) == Activation::ReLU; }
  // The activation after layer i. A converted layer fuses it into its epilogue (ReLU, GELU); a
  // converted layer loaded from an older file that did not leaves it to the host (LibTorch's).
  Activation activation_after(size_t i) const { return activation_after_.at(i); }
  // Whether layer i's output feeds layer i + 1 directly (so i may requantize for i + 1).
  bool feeds_next(size_t i) const { return chained_.at(i); }
  // Throws (require_fused_activation) when `layer` fuses another activation than the model has after i.
  void replace_layer(size_t i, std::shared_ptr<FusedLayer> layer);
  // Declares that this host's last layer feeds the first layer of `next` directly and nothing
  // else (BERT's FFN: "intermediate" into "output"), so that convert() may requantize it for
  // that layer, as feeds_next does inside a host. Null undoes it.
  void set_feeds_host(LayerHost* next) { feeds_host_ = next; }
  LayerHost* feeds_host() const { return feeds_host_; }

  // Calibration: while set, run_layer() shows each layer's input to `observer` first.
  using Observer = std::function<void(size_t layer, const ::torch::Tensor& input)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }
  const Observer& observer() const { return observer_; }

 protected:
  // Registers a Linear; `feeds_next`: its output goes straight into the next added layer.
  size_t add_linear(const std::string& name, int64_t in, int64_t out, Activation after, bool feeds_next);
  size_t add_linear(const std::string& name, int64_t in, int64_t out, bool relu_after, bool feeds_next) {
    return add_linear(name, in, out, relu_after ? Activation::ReLU : Activation::None, feeds_next);
  }
  // Registers a Conv2d (groups 1, dilation 1, zero padding: what convert() can turn into a GEMM).
  size_t add_conv(const std::string& name, const ::torch::nn::Conv2dOptions& options, bool relu_after);
  // Layer i (Linear or fused) on x, then its activation unless the layer fused it.
  ::torch::Tensor run_layer(size_t i, ::torch::Tensor x);

 private:
  std::vector<std::string> names_;
  std::vector<std::shared_ptr<::torch::nn::Module>> layers_;
  std::vector<Activation> activation_after_;
  std::vector<bool> chained_;
  LayerHost* feeds_host_ = nullptr;
  Observer observer_;
};

// Every LayerHost in `model` (itself included), with its qualified name ("" for the model itself).
struct NamedHost {
  std::string name;
  LayerHost* host;
  // "top.0" for layer i of host "top"; "fc1" for a layer of the model itself.
  std::string layer_path(size_t i) const { return (name.empty() ? "" : name + ".") + host->layer_name(i); }
};
std::vector<NamedHost> find_layer_hosts(::torch::nn::Module& model);

// Linear layers "0", "1", ... in a chain, each followed by ReLU (the last one optionally not).
// A layer that fuses `fused` into its output may stand where the model applies `after`: when it
// fuses nothing (the host applies `after`) or the same. Otherwise throws spruce::Error (data),
// naming `layer`.
void require_fused_activation(const std::string& layer, Activation fused, Activation after);

class LayerStackImpl : public LayerHost {
 public:
  // widths {13, 512, 256} makes Linear 13->512 and 512->256.
  LayerStackImpl(const std::vector<int64_t>& widths, bool relu_after_last);
  ::torch::Tensor forward(::torch::Tensor x);
};

// The module holder (TORCH_MODULE would look up `torch::nn` relative to this namespace).
class LayerStack : public ::torch::nn::ModuleHolder<LayerStackImpl> {
 public:
  using ::torch::nn::ModuleHolder<LayerStackImpl>::ModuleHolder;
};

}  // namespace spruce::torch
