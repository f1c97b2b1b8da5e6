// LayerHost runs its Linear layers on oneDNN's sgemm, forward and backward: the outputs and every
// gradient must match LibTorch's own linear, across shapes with odd tails, 3-D inputs, and
// inputs that need no gradient (a first layer).
#include "spruce/torch/layer_stack.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "spruce/error.hpp"
#include "spruce/torch/convert.hpp"

namespace {

namespace F = torch::nn::functional;

// The stack's forward, written with LibTorch's linear and the stack's own parameters.
torch::Tensor reference_forward(spruce::torch::LayerStack& stack, torch::Tensor x) {
  for (size_t i = 0; i < stack->size(); ++i) {
    auto* linear = stack->linear(i);
    x = F::linear(x, linear->weight, linear->bias);
    if (stack->relu_after(i)) x = torch::relu(x);
  }
  return x;
}

TEST(LayerStack, OneDnnLinearMatchesTorchLinearInValueAndGradient) {
  torch::manual_seed(3);
  for (const auto& widths : std::vector<std::vector<int64_t>>{{7, 5, 3}, {64, 129, 17}, {300, 1, 33}}) {
    for (const auto& lead : std::vector<std::vector<int64_t>>{{1}, {13}, {4, 9}}) {
      for (const bool input_grad : {false, true}) {
        spruce::torch::LayerStack stack(widths, /*relu_after_last=*/false);
        auto shape = lead;
        shape.push_back(widths.front());
        const auto x = torch::randn(shape).requires_grad_(input_grad);
        const auto target = torch::randn_like(reference_forward(stack, x));

        const auto y = stack->forward(x);
        (y * target).sum().backward();
        std::vector<torch::Tensor> grads;
        for (const auto& p : stack->parameters()) grads.push_back(p.grad().clone()), p.mutable_grad().zero_();
        const auto x_grad = input_grad ? x.grad().clone() : torch::Tensor();
        if (input_grad) x.mutable_grad().zero_();

        const auto expected = reference_forward(stack, x);
        (expected * target).sum().backward();
        SCOPED_TRACE("widths " + std::to_string(widths[0]) + "->" + std::to_string(widths[1]) + " lead dims " +
                     std::to_string(lead.size()));
        ASSERT_EQ(y.sizes(), expected.sizes());
        EXPECT_TRUE(torch::allclose(y, expected, 1e-4, 1e-5));
        const auto params = stack->parameters();
        for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::allclose(grads[i], params[i].grad(), 1e-4, 1e-5));
        if (input_grad) {
          EXPECT_TRUE(torch::allclose(x_grad, x.grad(), 1e-4, 1e-5));
        }
      }
    }
  }
}

TEST(LayerStack, NonF32InputsFallBackToTorchLinear) {
  spruce::torch::LayerStack stack(std::vector<int64_t>{6, 4}, false);
  stack->to(torch::kFloat64);
  const auto x = torch::randn({3, 6}, torch::kFloat64);
  EXPECT_TRUE(torch::allclose(stack->forward(x), reference_forward(stack, x)));
}

}  // namespace

namespace {
struct GeluIntoNext : spruce::torch::LayerHost {
  GeluIntoNext() { add_linear("up", 4, 8, spruce::Activation::GELU, /*feeds_next=*/true); }
};
}  // namespace

// A GELU layer's output does not requantize into the next layer: the host refuses the chain.
TEST(LayerStack, GeluLayerCannotFeedTheNextOne) { EXPECT_THROW(GeluIntoNext{}, spruce::Error); }

// A replacement that fuses another activation than the model has after the layer is refused when
// it is installed, not at the first forward pass.
TEST(LayerStack, ReplacementMustFuseTheModelsActivation) {
  spruce::torch::LayerStack stack(std::vector<int64_t>{8, 8, 4}, true);  // ReLU after both
  auto layer = [&](spruce::Activation a, int64_t out = 8) {
    return std::make_shared<spruce::torch::SparseLinearLayer>(torch::randn({out, 8}), torch::randn({out}),
                                                              spruce::Pattern::block(1, 1), a, std::nullopt,
                                                              std::nullopt, spruce::SparseLinearOptions{});
  };
  try {
    stack->replace_layer(0, layer(spruce::Activation::GELU));
    ADD_FAILURE() << "a GELU layer took a ReLU layer's place";
  } catch (const spruce::Error& e) {
    EXPECT_NE(std::string(e.what()).find("applies gelu where the model has relu after it"), std::string::npos)
        << e.what();
  }
  stack->replace_layer(0, layer(spruce::Activation::ReLU));     // fused: the host applies nothing more
  stack->replace_layer(1, layer(spruce::Activation::None, 4));  // the host applies ReLU itself
  EXPECT_GE(stack->forward(torch::randn({2, 8})).min().item<float>(), 0.0f);
}
