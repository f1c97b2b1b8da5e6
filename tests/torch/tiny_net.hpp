// A small model and synthetic data for the adapter's tests: fast, deterministic, learnable.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/adam.h>

#include <functional>

#include "spruce/torch/pruner.hpp"

namespace spruce::test {

// conv 3->8 (3x3) on 6x6 inputs, then fc 288->32 and head 32->4.
struct TinyNet : ::torch::nn::Module {
  TinyNet() {
    conv = register_module("conv", ::torch::nn::Conv2d(::torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
    fc = register_module("fc", ::torch::nn::Linear(8 * 6 * 6, 32));
    head = register_module("head", ::torch::nn::Linear(32, 4));
  }
  ::torch::Tensor forward(::torch::Tensor x) {
    x = ::torch::relu(conv(x)).flatten(1);
    return head(::torch::relu(fc(x)));
  }
  ::torch::nn::Conv2d conv{nullptr};
  ::torch::nn::Linear fc{nullptr}, head{nullptr};
};

struct TinyData {
  ::torch::Tensor x, y;
};
inline TinyData tiny_data(int64_t n = 64, uint64_t seed = 1) {
  ::torch::manual_seed(seed);
  auto x = ::torch::randn({n, 3, 6, 6});
  auto y = (x.sum({1, 2, 3}) > 0).to(::torch::kInt64) + 2 * (x.select(1, 0).sum({1, 2}) > 0).to(::torch::kInt64);
  return {x, y};
}

// One training step in the hook order; `after` runs at the very end, and `stepped` between the
// optimizer step and the Pruner's hook after it.
inline void train_step(TinyNet& net, ::torch::optim::Optimizer& opt, spruce::torch::Pruner& pruner, const TinyData& d,
                       int64_t step, const std::function<void()>& after = {},
                       const std::function<void()>& stepped = {}) {
  pruner.on_step_begin(step);
  auto loss = ::torch::cross_entropy_loss(net.forward(d.x), d.y);
  opt.zero_grad();
  loss.backward();
  pruner.on_before_optimizer_step();
  opt.step();
  if (stepped) stepped();
  pruner.on_after_optimizer_step();
  if (after) after();
}

}  // namespace spruce::test
