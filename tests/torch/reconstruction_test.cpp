// Pruning with reconstruction (sparsegpt): the blocked, Cholesky-based implementation against a
// column-by-column Optimal Brain Surgeon with explicit inverses, its output error against plain
// masking, and the Pruner's use of it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>
#include <string>
#include <vector>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/torch/layer_stack.hpp"
#include "spruce/torch/pruner.hpp"
#include "spruce/torch/reconstruction.hpp"

namespace spruce::test {
namespace {

using spruce::torch::prune_with_reconstruction;
using spruce::torch::ReconstructionOptions;

// Input rows whose features are correlated (a few directions carry most of the signal) and
// differ in scale, as a trained layer's are: the case where moving a pruned weight's contribution
// onto the features that go with it pays.
::torch::Tensor correlated_inputs(int64_t rows, int64_t features, uint64_t seed) {
  ::torch::manual_seed(seed);
  const int64_t directions = std::max<int64_t>(2, features / 4);
  const auto signal = ::torch::randn({rows, directions}).mm(::torch::randn({directions, features}));
  return (signal + 0.3 * ::torch::randn({rows, features})) * ::torch::exp(0.5 * ::torch::randn({features}));
}

::torch::Tensor gram_of(const ::torch::Tensor& x) {
  const auto x64 = x.to(::torch::kFloat64);
  return x64.t().mm(x64);
}

// Column by column, as Optimal Brain Surgeon states it: within each step of `step` columns, the
// mask keeps the highest w_j^2 / [inv(H[j:, j:])]_00 (weights as they are when the step starts);
// then each pruned w_j in turn moves onto the columns after it by -w_j / [inv]_00 * inv[0, :],
// with inv = inv(H[j:, j:]) taken explicitly. No Cholesky factor, no deferred updates.
std::pair<::torch::Tensor, ::torch::Tensor> obs_by_explicit_inverses(const ::torch::Tensor& weight, ::torch::Tensor h,
                                                                     const Pattern& pattern, double ratio,
                                                                     double damping, int64_t step) {
  const int64_t oc = weight.size(0), ic = weight.size(1);
  h = h + ::torch::eye(ic, ::torch::kFloat64) * (damping * h.diagonal().mean().item<double>());
  std::vector<::torch::Tensor> inverse_from(static_cast<size_t>(ic));
  for (int64_t j = 0; j < ic; ++j) inverse_from[size_t(j)] = ::torch::inverse(h.slice(0, j).slice(1, j));
  auto w = weight.to(::torch::kFloat64).clone();
  auto mask = ::torch::ones({oc, ic}, ::torch::kFloat32);
  for (int64_t begin = 0; begin < ic; begin += step) {
    const int64_t end = std::min(ic, begin + step);
    auto scores = ::torch::empty({oc, end - begin}, ::torch::kFloat32);
    for (int64_t j = begin; j < end; ++j)
      scores.select(1, j - begin).copy_(w.select(1, j).square() / inverse_from[size_t(j)][0][0]);
    const Mask keep = local_mask(pattern, MatrixView<const float>(scores.data_ptr<float>(), oc, end - begin), ratio);
    for (int64_t j = begin; j < end; ++j)
      for (int64_t r = 0; r < oc; ++r) {
        if (keep(r, j - begin)) continue;
        mask[r][j] = 0;
        const auto& inv = inverse_from[size_t(j)];
        const double wj = w[r][j].item<double>();
        w[r].slice(0, j).sub_(inv[0] * (wj / inv[0][0].item<double>()));
        w[r][j] = 0.0;
      }
  }
  return {w.to(::torch::kFloat32), mask};
}

Mask to_mask(const ::torch::Tensor& mask) {
  Mask m(mask.size(0), mask.size(1));
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t k = 0; k < m.cols; ++k) m(r, k) = mask[r][k].item<float>() != 0;
  return m;
}

double output_error(const ::torch::Tensor& x, const ::torch::Tensor& original, const ::torch::Tensor& pruned) {
  return (x.mm((pruned - original).t())).square().sum().item<double>();
}

TEST(Reconstruction, MatchesColumnByColumnObsWithExplicitInverses) {
  const auto x = correlated_inputs(300, 40, 1);
  const struct {
    const char* pattern;
    double ratio;
    int64_t step;
  } cases[] = {{"1x1", 0.5, 16}, {"4x1", 0.6, 8}, {"2:4", 0, 12}, {"1x4", 0.5, 40}, {"4x16", 0.5, 16}, {"1x1", 0.3, 7}};
  for (const auto& c : cases) {
    SCOPED_TRACE(std::string(c.pattern) + " step " + std::to_string(c.step));
    ::torch::manual_seed(2);
    const auto original = ::torch::randn({12, 40});
    const Pattern p = Pattern::parse(c.pattern);
    const auto [want_weight, want_mask] = obs_by_explicit_inverses(original, gram_of(x), p, c.ratio, 0.01, c.step);
    auto weight = original.clone();
    ReconstructionOptions options;
    options.block_columns = c.step;
    const auto mask = prune_with_reconstruction(weight, gram_of(x), p, c.ratio, Reduce::Mean, {}, options);
    EXPECT_TRUE(mask.equal(want_mask));
    EXPECT_LT((weight - want_weight).abs().max().item<double>(), 1e-4 * want_weight.abs().max().item<double>());
    EXPECT_TRUE((weight.masked_select(mask == 0) == 0).all().item<bool>()) << "pruned weights must be exactly zero";
    // The update is not a no-op: kept weights moved.
    EXPECT_GT((weight - original).masked_select(mask != 0).abs().max().item<double>(), 1e-3);
  }
}

TEST(Reconstruction, ChangesTheOutputsLessThanMaskingAlone) {
  const auto x = correlated_inputs(400, 64, 3);
  ::torch::manual_seed(4);
  const auto original = ::torch::randn({32, 64});
  const auto rms = x.square().mean(0).sqrt();
  for (const char* pattern : {"1x1", "4x1", "2:4", "1x4", "4x16", "16x1", "channelx1"}) {
    SCOPED_TRACE(pattern);
    const Pattern p = Pattern::parse(pattern);
    const double ratio = 0.6;
    auto weight = original.clone();
    const auto mask = prune_with_reconstruction(weight, gram_of(x), p, ratio);
    // The best mask without reconstruction at hand: wanda's |W| x input RMS, under the pattern.
    const auto wanda_scores = (original.abs() * rms).contiguous();
    const Mask wanda = local_mask(p, MatrixView<const float>(wanda_scores.data_ptr<float>(), 32, 64), ratio);
    auto masked = original.clone();
    for (int64_t r = 0; r < 32; ++r)
      for (int64_t k = 0; k < 64; ++k)
        if (!wanda(r, k)) masked[r][k] = 0;
    EXPECT_LT(output_error(x, original, weight), 0.5 * output_error(x, original, masked));
    const Mask got = to_mask(mask);
    EXPECT_TRUE(follows_pattern(p, got));
    EXPECT_NEAR(mask_sparsity(got), p.is_nm() ? 0.5 : ratio, 0.02);
  }
}

TEST(Reconstruction, WeightsPrunedBeforeStayPruned) {
  const auto x = correlated_inputs(200, 32, 5);
  ::torch::manual_seed(6);
  const auto previous = (::torch::rand({16, 32}) > 0.3).to(::torch::kFloat32);
  auto weight = ::torch::randn({16, 32}) * previous;
  const auto mask = prune_with_reconstruction(weight, gram_of(x), Pattern::parse("1x1"), 0.6, Reduce::Mean, previous);
  EXPECT_TRUE((mask.masked_select(previous == 0) == 0).all().item<bool>());
  EXPECT_TRUE((weight.masked_select(previous == 0) == 0).all().item<bool>());
  EXPECT_NEAR((mask == 0).sum().item<double>() / 512.0, 0.6, 0.02);
}

TEST(Reconstruction, RefusesWhatItCannotUse) {
  auto weight = ::torch::randn({4, 8});
  const auto gram = ::torch::eye(8, ::torch::kFloat64);
  const Pattern p = Pattern::parse("1x1");
  EXPECT_THROW(prune_with_reconstruction(weight, ::torch::eye(7), p, 0.5), Error);  // shape
  EXPECT_THROW(prune_with_reconstruction(weight, gram, p, 0.5, Reduce::Mean, ::torch::ones({4, 7})), Error);
  auto conv = ::torch::randn({4, 2, 2, 2});
  EXPECT_THROW(prune_with_reconstruction(conv, gram, p, 0.5), Error);
  auto nan = gram.clone();
  nan[1][2] = std::numeric_limits<double>::quiet_NaN();
  try {
    prune_with_reconstruction(weight, nan, p, 0.5);
    FAIL() << "expected spruce::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
  }
  // Inputs that were all zero: nothing to reconstruct from, yet the weights are still pruned.
  const auto before = weight.clone();
  const auto mask = prune_with_reconstruction(weight, ::torch::zeros({8, 8}), p, 0.5);
  EXPECT_EQ((mask == 0).sum().item<int64_t>(), 16);
  EXPECT_TRUE(weight.isfinite().all().item<bool>());
  // The core has no element scores for it.
  MatrixF w(2, 2), s(2, 2);
  EXPECT_THROW(element_scores(Criterion::SparseGpt, w.view(), {}, s.view(), std::vector<float>(2, 1.0f)), Error);
  EXPECT_EQ(parse_criterion("sparsegpt"), Criterion::SparseGpt);
  EXPECT_TRUE(needs_inputs(Criterion::SparseGpt));
  EXPECT_FALSE(needs_gradient(Criterion::SparseGpt));
}

// fc 24->32, ReLU, fc 32->16, in a LayerHost.
class HostedMlp : public spruce::torch::LayerHost {
 public:
  HostedMlp() {
    add_linear("fc1", 24, 32, /*relu_after=*/true, true);
    add_linear("fc2", 32, 16, /*relu_after=*/false, false);
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return run_layer(1, run_layer(0, x)); }
};

Recipe sparsegpt_recipe(const char* pattern, double sparsity, int64_t at_step) {
  Recipe r = Recipe::single(Pattern::parse(pattern), sparsity);
  r.groups[0].criterion = Criterion::SparseGpt;
  r.groups[0].scope = Scope::Local;
  r.groups[0].schedule.start_step = r.groups[0].schedule.end_step = at_step;
  r.groups[0].schedule.frequency = 1;
  return r;
}

TEST(Reconstruction, PrunerUsesTheForwardsOfTheStepsJustBeforeTheUpdate) {
  HostedMlp net;
  const int64_t update = 12;
  spruce::torch::Pruner pruner(net, sparsegpt_recipe("4x1", 0.5, update));
  pruner.on_train_begin();
  std::vector<::torch::Tensor> fc1_inputs, fc2_inputs;  // of the steps the update must use
  for (int64_t step = 0; step < update; ++step) {
    pruner.on_step_begin(step);
    // Early steps' inputs are far larger: counted, they would swamp the Gram matrices.
    const auto x = correlated_inputs(20, 24, 100 + uint64_t(step)) * (step < update - 8 ? 1000.0 : 1.0);
    net.forward(x);
    {
      ::torch::NoGradGuard evaluation;  // not training: never counted
      net.forward(x * 50);
    }
    if (step >= update - spruce::torch::Pruner::kGramSteps) {
      ::torch::NoGradGuard no_grad;
      fc1_inputs.push_back(x);
      fc2_inputs.push_back(::torch::relu(net.linear(0)->forward(x)));
    }
  }
  EXPECT_EQ(pruner.sparsity(), 0.0);
  // What the update must do, from the recorded inputs of the last kGramSteps steps.
  auto fc1 = net.linear(0)->weight.detach().clone(), fc2 = net.linear(1)->weight.detach().clone();
  const auto x1 = ::torch::cat(fc1_inputs), x2 = ::torch::cat(fc2_inputs);
  const auto mask1 = prune_with_reconstruction(fc1, gram_of(x1), Pattern::parse("4x1"), 0.5);
  const auto mask2 = prune_with_reconstruction(fc2, gram_of(x2), Pattern::parse("4x1"), 0.5);
  pruner.on_step_begin(update);
  EXPECT_NEAR(pruner.sparsity(), 0.5, 1e-9);
  EXPECT_TRUE(pruner.layers()[0].mask.equal(mask1));
  EXPECT_TRUE(pruner.layers()[1].mask.equal(mask2));
  EXPECT_TRUE(::torch::allclose(net.linear(0)->weight, fc1, 1e-5, 1e-6));
  EXPECT_TRUE(::torch::allclose(net.linear(1)->weight, fc2, 1e-5, 1e-6));
}

// Data parallel: a rank sums its Gram matrices with the others' (set_input_reducer) and must then
// prune exactly as one Pruner that saw every rank's inputs.
TEST(Reconstruction, RanksThatSumTheirGramMatricesPruneAsOneThatSawAllInputs) {
  ::torch::manual_seed(9);
  HostedMlp whole;
  ::torch::manual_seed(9);
  HostedMlp rank0;
  ::torch::manual_seed(9);
  HostedMlp rank1;
  const Recipe recipe = sparsegpt_recipe("4x1", 0.5, 1);
  spruce::torch::Pruner one(whole, recipe), first(rank0, recipe), second(rank1, recipe);
  first.set_input_reducer([&second](std::vector<double>& sums) {
    std::vector<double> other;  // what rank 1 contributes, in the same order: rows, then the Gram matrix
    for (const auto& layer : second.layers()) {
      other.push_back(layer.inputs->rows);
      const auto g = layer.inputs->gram.contiguous();
      other.insert(other.end(), g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
    }
    ASSERT_EQ(other.size(), sums.size());
    for (size_t i = 0; i < sums.size(); ++i) sums[i] += other[i];
  });
  for (auto* p : {&one, &first, &second}) p->on_train_begin(), p->on_step_begin(0);
  const auto x = correlated_inputs(40, 24, 10);
  // The whole net sees both ranks' batches, each at the rank's batch size: a float GEMM's rows may
  // round differently at another m, and the inverse Gram would amplify that past any tolerance.
  whole.forward(x.slice(0, 0, 15));
  whole.forward(x.slice(0, 15));
  rank0.forward(x.slice(0, 0, 15));
  rank1.forward(x.slice(0, 15));
  one.on_step_begin(1);
  first.on_step_begin(1);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(first.layers()[i].mask.equal(one.layers()[i].mask)) << "layer " << i;
    EXPECT_TRUE(first.layers()[i].weight.equal(one.layers()[i].weight)) << "layer " << i;  // same sums, same bits
  }
}

TEST(Reconstruction, PrunerWaitsForInputsAndRefusesConvAndGlobalScope) {
  HostedMlp net;
  spruce::torch::Pruner pruner(net, sparsegpt_recipe("2:4", 0.5, 0));
  pruner.on_train_begin();
  pruner.on_step_begin(0);
  EXPECT_EQ(pruner.sparsity(), 0.0) << "pruned before it saw any input";
  net.forward(correlated_inputs(16, 24, 7));
  pruner.on_step_begin(1);
  EXPECT_NEAR(pruner.sparsity(), 0.5, 1e-9);

  class HostedConv : public spruce::torch::LayerHost {
   public:
    HostedConv() { add_conv("conv", ::torch::nn::Conv2dOptions(3, 8, 3), true); }
  } conv_net;
  try {
    spruce::torch::Pruner refused(conv_net, sparsegpt_recipe("1x1", 0.5, 0));
    FAIL() << "expected spruce::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("Linear layers only"), std::string::npos) << e.what();
  }
  Recipe global = sparsegpt_recipe("1x1", 0.5, 0);
  global.groups[0].scope = Scope::Global;
  EXPECT_THROW(spruce::torch::Pruner(net, global), Error);
}

}  // namespace
}  // namespace spruce::test
