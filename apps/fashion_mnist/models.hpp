// The Fashion-MNIST classifiers of the validated-models table, built on the library's LayerHost so
// that convert() can replace their layers.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>

#include <memory>
#include <string>
#include <vector>

#include "spruce/torch/layer_stack.hpp"

namespace spruce::fashion_mnist {

// A module that maps images [N][1][28][28] to 10 logits. Its Linear and Conv2d layers live in the
// LayerHost, so convert() can replace them.
class Classifier : public torch::LayerHost {
 public:
  virtual ::torch::Tensor forward(::torch::Tensor images) = 0;
  // Layers that `--pattern` leaves dense: the classifier head, and tiny first layers.
  virtual std::vector<std::string> dense_layers() const = 0;
};

// 784-1024-1024-10 with ReLU: layers fc1, fc2, head.
class Mlp : public Classifier {
 public:
  Mlp();
  ::torch::Tensor forward(::torch::Tensor images) override;
  std::vector<std::string> dense_layers() const override { return {"head"}; }
};

// conv1 3x3 1->16, pool, conv2 3x3 16->32, pool, fc 1568->256, head 256->10, with ReLU.
class Cnn : public Classifier {
 public:
  Cnn();
  ::torch::Tensor forward(::torch::Tensor images) override;
  std::vector<std::string> dense_layers() const override { return {"conv1", "head"}; }  // conv1: 144 weights
};

const std::vector<std::string>& model_names();  // "mlp", "cnn"
// Throws spruce::Error (usage) for an unknown name, listing the valid ones.
std::shared_ptr<Classifier> make_model(const std::string& name);

}  // namespace spruce::fashion_mnist
