#include "spruce/torch/models.hpp"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>

#include "spruce/error.hpp"

namespace spruce::torch {

namespace F = ::torch::nn::functional;
namespace nn = ::torch::nn;

Mlp::Mlp() {
  fc1 = register_module("fc1", nn::Linear(784, 1024));
  fc2 = register_module("fc2", nn::Linear(1024, 1024));
  head = register_module("head", nn::Linear(1024, 10));
}

::torch::Tensor Mlp::forward(::torch::Tensor x) {
  x = x.flatten(1);
  x = ::torch::relu(fc1(x));
  x = ::torch::relu(fc2(x));
  return head(x);
}

Cnn::Cnn() {
  conv1 = register_module("conv1", nn::Conv2d(nn::Conv2dOptions(1, 16, 3).padding(1)));
  conv2 = register_module("conv2", nn::Conv2d(nn::Conv2dOptions(16, 32, 3).padding(1)));
  fc = register_module("fc", nn::Linear(32 * 7 * 7, 256));
  head = register_module("head", nn::Linear(256, 10));
}

::torch::Tensor Cnn::forward(::torch::Tensor x) {
  x = F::max_pool2d(::torch::relu(conv1(x)), F::MaxPool2dFuncOptions(2));
  x = F::max_pool2d(::torch::relu(conv2(x)), F::MaxPool2dFuncOptions(2));
  x = ::torch::relu(fc(x.flatten(1)));
  return head(x);
}

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"mlp", "cnn"};
  return names;
}

std::shared_ptr<Classifier> make_model(const std::string& name) {
  if (name == "mlp") return std::make_shared<Mlp>();
  if (name == "cnn") return std::make_shared<Cnn>();
  usage_error("unknown model '" + name + "'; valid models are mlp and cnn");
}

}  // namespace spruce::torch
