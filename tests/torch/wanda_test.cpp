// The wanda criterion: scores |W| x the RMS of each input feature over the training forwards
// since the last mask update, seen through the LayerHost's observer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "spruce/error.hpp"
#include "spruce/torch/layer_stack.hpp"
#include "spruce/torch/pruner.hpp"
#include "tiny_net.hpp"

namespace spruce::test {
namespace {

// conv 3->8 (3x3, padding 1) on 6x6 inputs, ReLU, then fc 288->16, in a LayerHost.
class HostedNet : public spruce::torch::LayerHost {
 public:
  HostedNet() {
    add_conv("conv", ::torch::nn::Conv2dOptions(3, 8, 3).padding(1), /*relu_after=*/true);
    add_linear("fc", 8 * 6 * 6, 16, Activation::None, false);
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return run_layer(1, run_layer(0, x).flatten(1)); }
};

Recipe wanda_recipe(Criterion criterion = Criterion::Wanda) {
  Recipe r = Recipe::single(Pattern::block(1, 1), 0.5);
  r.groups[0].criterion = criterion;
  r.groups[0].scope = Scope::Local;
  r.groups[0].schedule.start_step = r.groups[0].schedule.end_step = 0;
  r.groups[0].schedule.frequency = 1;
  return r;
}

// Inputs whose channels differ in scale (1, 6, 0.15), so that the input RMS reorders the weights.
::torch::Tensor images(int64_t n, uint64_t seed) {
  ::torch::manual_seed(seed);
  return ::torch::randn({n, 3, 6, 6}) * ::torch::tensor({1.0f, 6.0f, 0.15f}).view({1, 3, 1, 1});
}

// The mask that keeps the higher half of |W| x rms, where `rms` broadcasts against W.
::torch::Tensor expected_mask(const ::torch::Tensor& weight, const ::torch::Tensor& rms) {
  const auto scores = (weight.abs() * rms).flatten();
  const int64_t pruned = scores.numel() / 2;
  const auto threshold = std::get<0>(scores.kthvalue(pruned));
  return (weight.abs() * rms > threshold).to(::torch::kFloat32);
}

TEST(Wanda, PrunesByWeightTimesTheRmsOfTrainingInputs) {
  HostedNet net;
  const auto x1 = images(16, 1), x2 = images(8, 2);
  // What each layer sees in the two training forwards (the weights do not change in between).
  ::torch::Tensor conv_rms, fc_rms, magnitude_keep;
  {
    ::torch::NoGradGuard no_grad;
    const auto x = ::torch::cat({x1, x2});
    conv_rms = x.square().mean({0, 2, 3}).sqrt().view({1, 3, 1, 1});
    const auto hidden = ::torch::relu(net.conv(0)->forward(x)).flatten(1);
    fc_rms = hidden.square().mean(0).sqrt().view({1, -1});
  }
  const auto conv_weight = net.conv(0)->weight.detach().clone(), fc_weight = net.linear(1)->weight.detach().clone();

  spruce::torch::Pruner pruner(net, wanda_recipe());
  pruner.on_train_begin();
  pruner.on_step_begin(0);
  EXPECT_EQ(pruner.sparsity(), 0.0) << "wanda pruned before it saw any input";
  net.forward(x1);
  {
    ::torch::NoGradGuard evaluation;  // not training: must not count
    net.forward(images(4, 3) * 1000);
  }
  net.forward(x2);
  pruner.on_step_begin(1);
  EXPECT_NEAR(pruner.sparsity(), 0.5, 1e-9);

  const auto want_conv = expected_mask(conv_weight, conv_rms), want_fc = expected_mask(fc_weight, fc_rms);
  EXPECT_TRUE(pruner.layers()[0].mask.equal(want_conv)) << "conv mask";
  EXPECT_TRUE(pruner.layers()[1].mask.equal(want_fc)) << "fc mask";
  // The inputs must matter, or this test could not tell wanda from magnitude.
  const auto magnitude = expected_mask(conv_weight, ::torch::ones({1}));
  EXPECT_GT((magnitude != want_conv).sum().item<int64_t>(), 10);
}

// A run of one step ends before the update that waits for inputs; on_train_end takes it.
TEST(Wanda, ARunEndingBeforeTheFirstUpdateStillPrunes) {
  HostedNet net;
  const auto x = images(16, 1);
  ::torch::Tensor conv_rms = x.square().mean({0, 2, 3}).sqrt().view({1, 3, 1, 1});
  const auto conv_weight = net.conv(0)->weight.detach().clone();
  spruce::torch::Pruner pruner(net, wanda_recipe());
  pruner.on_train_begin();
  pruner.on_step_begin(0);
  net.forward(x);
  EXPECT_EQ(pruner.sparsity(), 0.0);
  pruner.on_train_end();
  EXPECT_NEAR(pruner.sparsity(), 0.5, 1e-9);
  EXPECT_TRUE(pruner.layers()[0].mask.equal(expected_mask(conv_weight, conv_rms))) << "conv mask";
}

TEST(Wanda, TheNextUpdateScoresOnlyTheInputsSeenSinceTheLast) {
  HostedNet net;
  Recipe r = wanda_recipe();
  r.groups[0].schedule.end_step = 4;
  r.groups[0].schedule.frequency = 2;  // updates at 0 (waits for an input: 1), 2 and 4
  r.groups[0].schedule.target = 0.6;
  spruce::torch::Pruner pruner(net, r);
  pruner.on_train_begin();
  pruner.on_step_begin(0);
  // Before the first update only, with the channels' scales reversed: counted again, it would
  // change the second update's order.
  net.forward(images(16, 5) * ::torch::tensor({100.0f, 0.01f, 1.0f}).view({1, 3, 1, 1}));
  pruner.on_step_begin(1);
  const auto x = images(16, 6);
  net.forward(x);
  ::torch::Tensor conv_rms;
  {
    ::torch::NoGradGuard no_grad;
    conv_rms = x.square().mean({0, 2, 3}).sqrt().view({1, 3, 1, 1});
  }
  const auto conv_weight = net.conv(0)->weight.detach().clone();
  pruner.on_step_begin(2);
  const int64_t zeros = (pruner.layers()[0].mask == 0).sum().item<int64_t>();
  ASSERT_GT(zeros, (conv_weight == 0).sum().item<int64_t>()) << "the second update pruned nothing new";
  // The lowest |W| x rms(x) among the weights still kept, as many as the new ratio needs.
  const auto scores = ::torch::where(conv_weight == 0, ::torch::full({}, -1.0f), conv_weight.abs() * conv_rms);
  const auto threshold = std::get<0>(scores.flatten().kthvalue(zeros));
  EXPECT_TRUE(pruner.layers()[0].mask.equal((scores > threshold).to(::torch::kFloat32)));
}

TEST(Wanda, NeedsItsLayersInALayerHost) {
  TinyNet net;  // plain LibTorch modules: nothing shows the Pruner their inputs
  try {
    spruce::torch::Pruner pruner(net, wanda_recipe());
    FAIL() << "expected spruce::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("LayerHost"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(spruce::torch::Pruner(net, wanda_recipe(Criterion::Magnitude)));
}

TEST(Wanda, TheModelOutlivesItsPruner) {
  HostedNet net;
  {
    spruce::torch::Pruner pruner(net, wanda_recipe());
    EXPECT_TRUE(net.observer());
  }
  EXPECT_NO_THROW(net.forward(images(2, 7)).sum().backward());  // the observer is disarmed, not dangling
  spruce::torch::Pruner again(net, wanda_recipe());             // a second Pruner on the same model
  again.on_train_begin();
  again.on_step_begin(0);
  net.forward(images(4, 8));
  again.on_step_begin(1);
  EXPECT_NEAR(again.sparsity(), 0.5, 1e-9);
}

TEST(Wanda, CoreScoresNeedOneRmsPerColumn) {
  MatrixF w(2, 3), s(2, 3);
  w(0, 0) = -2, w(1, 2) = 3;
  const std::vector<float> rms{0.5f, 1.0f, 4.0f};
  element_scores(Criterion::Wanda, w.view(), {}, s.view(), rms);
  EXPECT_FLOAT_EQ(s(0, 0), 1.0f);
  EXPECT_FLOAT_EQ(s(1, 2), 12.0f);
  EXPECT_THROW(element_scores(Criterion::Wanda, w.view(), {}, s.view()), Error);
  EXPECT_THROW(element_scores(Criterion::Wanda, w.view(), {}, s.view(), std::span(rms).first(2)), Error);
  EXPECT_FALSE(needs_gradient(Criterion::Wanda));
  EXPECT_EQ(parse_criterion("wanda"), Criterion::Wanda);
}

}  // namespace
}  // namespace spruce::test
