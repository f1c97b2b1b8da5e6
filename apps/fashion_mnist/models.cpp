#include "fashion_mnist/models.hpp"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>

#include "spruce/error.hpp"

namespace spruce::fashion_mnist {

namespace F = ::torch::nn::functional;
namespace nn = ::torch::nn;

Mlp::Mlp() {
  add_linear("fc1", 784, 1024, /*relu_after=*/true, /*feeds_next=*/true);
  add_linear("fc2", 1024, 1024, true, true);
  add_linear("head", 1024, 10, false, false);
}

::torch::Tensor Mlp::forward(::torch::Tensor x) {
  x = run_layer(0, x.flatten(1));
  x = run_layer(1, x);
  return run_layer(2, x);
}

Cnn::Cnn() {
  add_conv("conv1", nn::Conv2dOptions(1, 16, 3).padding(1), /*relu_after=*/true);
  add_conv("conv2", nn::Conv2dOptions(16, 32, 3).padding(1), true);
  add_linear("fc", 32 * 7 * 7, 256, true, true);
  add_linear("head", 256, 10, false, false);
}

::torch::Tensor Cnn::forward(::torch::Tensor x) {
  x = F::max_pool2d(run_layer(0, x), F::MaxPool2dFuncOptions(2));
  x = F::max_pool2d(run_layer(1, x), F::MaxPool2dFuncOptions(2));
  return run_layer(3, run_layer(2, x.flatten(1)));
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

}  // namespace spruce::fashion_mnist
