// The Pruner's hooks on a tiny conv + linear model: masks hold, schedules land, group lasso shrinks.
#include <gtest/gtest.h>
#include <torch/optim/sgd.h>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/regularizer.hpp"
#include "tiny_net.hpp"

namespace spruce::test {
namespace {

Recipe recipe(const std::string& pattern, double sparsity, Criterion c, Scope scope, int64_t start = 2,
              int64_t end = 12, int64_t frequency = 2) {
  Recipe r = Recipe::single(Pattern::parse(pattern), sparsity);
  PruningGroup& g = r.groups[0];
  g.criterion = c;
  g.scope = scope;
  g.excluded_op_names = {"head"};
  g.schedule.start_step = start;
  g.schedule.end_step = end;
  g.schedule.frequency = frequency;
  return r;
}

// Every weight whose mask is 0 is exactly 0; returns how many masked weights were checked.
int64_t expect_masked_weights_zero(const spruce::torch::Pruner& pruner, const std::string& when) {
  int64_t checked = 0;
  for (const auto& layer : pruner.layers()) {
    if (!layer.mask.defined()) continue;
    auto pruned = layer.mask == 0;
    checked += pruned.sum().item<int64_t>();
    EXPECT_EQ(layer.weight.masked_select(pruned).abs().sum().item<float>(), 0.0f)
        << "layer " << layer.name << ": a pruned weight is nonzero " << when;
  }
  return checked;
}

MatrixF view_of(const ::torch::Tensor& t) {
  auto c = t.detach().contiguous();
  return to_matrix(c.data_ptr<float>(), c.sizes().vec());
}

TEST(Pruner, PrunedWeightsStayZeroAfterEveryStep) {
  TinyNet net;
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  spruce::torch::Pruner pruner(net, recipe("4x1", 0.75, Criterion::SnipMomentum, Scope::Global));
  ASSERT_EQ(pruner.layers().size(), 2u);  // conv and fc; head excluded
  pruner.on_train_begin();
  bool adam_moved_a_pruned_weight = false;
  for (int64_t step = 0; step < 30; ++step) {
    pruner.on_step_begin(step);
    auto loss = ::torch::cross_entropy_loss(net.forward(d.x), d.y);
    opt.zero_grad();
    loss.backward();
    pruner.on_before_optimizer_step();
    for (const auto& layer : pruner.layers()) {
      if (!layer.mask.defined()) continue;
      EXPECT_EQ(layer.weight.grad().masked_select(layer.mask == 0).abs().sum().item<float>(), 0.0f)
          << "layer " << layer.name << ": a pruned weight has a gradient at step " << step;
    }
    opt.step();
    // Adam's momentum moves pruned weights; the re-masking hook is what keeps them at zero.
    for (const auto& layer : pruner.layers())
      if (layer.mask.defined() && layer.weight.masked_select(layer.mask == 0).abs().sum().item<float>() > 0)
        adam_moved_a_pruned_weight = true;
    pruner.on_after_optimizer_step();
    const int64_t checked = expect_masked_weights_zero(pruner, "after step " + std::to_string(step));
    if (step >= 12) {
      EXPECT_GT(checked, 0) << "no weight is pruned at step " << step;
    }
  }
  EXPECT_TRUE(adam_moved_a_pruned_weight) << "the test would pass without re-masking; it proves nothing";
  EXPECT_NEAR(pruner.sparsity(), 0.75, 0.01);
}

// How many weights mask updates brought back over `steps` steps of a 2:4 run that updates
// every 2 steps until step 20; checks on the way what the forward and the optimizer see.
int64_t weights_revived(bool straight_through, int64_t steps = 30) {
  TinyNet net;
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(3e-2));
  Recipe r = recipe("2:4", 0.5, Criterion::Magnitude, Scope::Local, 0, 20, 2);
  r.groups[0].straight_through = straight_through;
  spruce::torch::Pruner pruner(net, r);
  pruner.on_train_begin();
  std::vector<::torch::Tensor> previous(pruner.layers().size());
  int64_t revived = 0;
  bool pruned_weight_learned = false;
  int64_t revived_at_last_update = 0;
  for (int64_t step = 0; step < steps; ++step) {
    const std::string when = "at step " + std::to_string(step);
    std::vector<::torch::Tensor> values;  // the trained values before this step's update
    for (const auto& layer : pruner.layers())
      values.push_back(layer.dense.defined() ? layer.dense.clone() : layer.weight.clone());
    pruner.on_step_begin(step);
    for (size_t i = 0; i < pruner.layers().size(); ++i) {
      const auto& layer = pruner.layers()[i];
      EXPECT_EQ(layer.dense.defined(), straight_through && step < 20) << layer.name << " " << when;
      // Every weight the mask keeps has its trained value, revived ones included (the last update too).
      if (layer.mask.defined()) {
        EXPECT_TRUE(::torch::equal(layer.weight, values[i] * layer.mask)) << layer.name << " " << when;
      }
      if (previous[i].defined()) {
        const int64_t back = ((previous[i] == 0) & (layer.mask == 1)).sum().item<int64_t>();
        revived += back;
        if (step == 20) revived_at_last_update += back;
      }
      previous[i] = layer.mask.clone();
    }
    expect_masked_weights_zero(pruner, "in the forward " + when);
    auto loss = ::torch::cross_entropy_loss(net.forward(d.x), d.y);
    opt.zero_grad();
    loss.backward();
    pruner.on_before_optimizer_step();
    for (const auto& layer : pruner.layers()) {
      const float pruned_grad = layer.weight.grad().masked_select(layer.mask == 0).abs().sum().item<float>();
      if (straight_through && step < 20) {
        pruned_weight_learned |= pruned_grad > 0;
      } else {
        EXPECT_EQ(pruned_grad, 0.0f) << layer.name << ": a pruned weight has a gradient " << when;
      }
    }
    opt.step();
    pruner.on_after_optimizer_step();
    expect_masked_weights_zero(pruner, "after the step " + when);
  }
  EXPECT_EQ(pruned_weight_learned, straight_through);
  if (straight_through) {
    EXPECT_GT(revived_at_last_update, 0) << "the last update's revivals go unchecked";
  }
  EXPECT_NEAR(pruner.sparsity(), 0.5, 0.01);
  return revived;
}

TEST(Pruner, StraightThroughRevivesPrunedWeightsUntilTheLastUpdate) {
  EXPECT_GT(weights_revived(true), 0) << "no mask update brought a pruned weight back";
  EXPECT_EQ(weights_revived(false), 0) << "without straight-through, a pruned weight has no way back";
}

// Sparsity after each of 30 steps of a 2:4 run whose schedule runs from step 0 to 20, every 2.
std::vector<double> nm_sparsity_by_step(bool gradual) {
  TinyNet net;
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Recipe r = recipe("2:4", 0.5, Criterion::Magnitude, Scope::Local, 0, 20, 2);
  r.groups[0].gradual_nm = gradual;
  spruce::torch::Pruner pruner(net, r);
  pruner.on_train_begin();
  std::vector<double> sparsity;
  for (int64_t step = 0; step < 30; ++step) {
    train_step(net, opt, pruner, d, step);
    expect_masked_weights_zero(pruner, "after step " + std::to_string(step));
    sparsity.push_back(pruner.sparsity());
  }
  for (const auto& layer : pruner.layers())
    EXPECT_TRUE(follows_pattern(Pattern::parse("2:4"), view_of(layer.weight).view())) << layer.name;
  return sparsity;
}

TEST(Pruner, GradualNmGrowsToNmOnTheSchedule) {
  const auto whole = nm_sparsity_by_step(false);
  EXPECT_NEAR(whole.front(), 0.5, 0.01) << "without gradual_nm, 2:4 is set whole at the start";
  const auto gradual = nm_sparsity_by_step(true);
  EXPECT_LT(gradual.front(), 0.1);
  EXPECT_GT(gradual[10], 0.1);
  EXPECT_LT(gradual[10], 0.45);
  for (size_t step = 1; step < gradual.size(); ++step)
    EXPECT_GE(gradual[step], gradual[step - 1] - 1e-9) << "sparsity fell at step " << step;
  EXPECT_NEAR(gradual.back(), 0.5, 0.01);
}

TEST(Pruner, StraightThroughDecayShrinksOnlyThePrunedWeights) {
  TinyNet net;
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Recipe r = recipe("2:4", 0.5, Criterion::Magnitude, Scope::Local, 0, 10, 10);  // half pruned from step 0
  r.groups[0].straight_through = true;
  r.groups[0].straight_through_decay = 0.25;
  spruce::torch::Pruner pruner(net, r);
  pruner.on_train_begin();
  for (int64_t step = 0; step < 3; ++step) {
    std::vector<::torch::Tensor> stepped;  // every weight as the optimizer left it
    train_step(net, opt, pruner, d, step, {}, [&] {
      for (const auto& layer : pruner.layers()) stepped.push_back(layer.weight.detach().clone());
    });
    for (size_t i = 0; i < stepped.size(); ++i) {
      const auto& layer = pruner.layers()[i];
      const auto expected = stepped[i] * (layer.mask + (1 - layer.mask) * 0.75);
      EXPECT_TRUE(::torch::allclose(layer.dense, expected, 1e-6, 1e-7)) << layer.name << " at step " << step;
      EXPECT_TRUE(::torch::equal(layer.weight, layer.dense * layer.mask)) << layer.name;
      EXPECT_GT(layer.dense.masked_select(layer.mask == 0).abs().sum().item<float>(), 0.0f);
    }
  }
}

// A run that ends inside its criterion's warm-up (the first update waits for a gradient or for
// inputs) still reaches a oneshot target: on_train_end takes the waiting update.
TEST(Pruner, RunShorterThanTheWarmUpStillPrunes) {
  for (Criterion c : {Criterion::SnipMomentum, Criterion::Gradient, Criterion::Snip}) {  // wanda: wanda_test
    SCOPED_TRACE(to_string(c));
    TinyNet net;
    TinyData d = tiny_data();
    ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
    spruce::torch::Pruner pruner(net, recipe("4x1", 0.5, c, Scope::Global, 0, 0, 1));
    pruner.on_train_begin();
    train_step(net, opt, pruner, d, 0);
    EXPECT_EQ(pruner.mask_updates(), 0) << "the update should still wait after the one step";
    const auto report = pruner.on_train_end();
    EXPECT_EQ(pruner.mask_updates(), 1);
    EXPECT_NEAR(report.sparsity(), 0.5, 0.01);
    EXPECT_GT(expect_masked_weights_zero(pruner, "at the end"), 0);
    pruner.on_train_end();
    EXPECT_EQ(pruner.mask_updates(), 1) << "a second call must not update again";
  }
}

struct ScheduleCase {
  const char* pattern;
  Criterion criterion;
  Scope scope;
};

class ScheduleReachesTarget : public ::testing::TestWithParam<ScheduleCase> {};

TEST_P(ScheduleReachesTarget, AtEndStepAndNotBefore) {
  const ScheduleCase c = GetParam();
  TinyNet net;
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  const Pattern pattern = Pattern::parse(c.pattern);
  const double target = pattern.is_nm() ? pattern.natural_sparsity() : 0.8;
  spruce::torch::Pruner pruner(net, recipe(c.pattern, target, c.criterion, c.scope, 2, 12, 2));
  pruner.on_train_begin();
  for (int64_t step = 0; step <= 14; ++step) {
    train_step(net, opt, pruner, d, step);
    const double s = pruner.sparsity();
    if (step < 2) {
      EXPECT_EQ(s, 0.0) << "pruned before start_step, step " << step;
    } else if (step < 12 && pattern.is_block()) {
      EXPECT_LT(s, target - 0.01) << "target reached before end_step, step " << step;
    } else if (step >= 12) {
      EXPECT_NEAR(s, target, 0.01) << "step " << step << " pattern " << c.pattern;
    }
  }
  const auto report = pruner.report();
  for (size_t i = 0; i < report.layers.size(); ++i) {
    const auto& layer = pruner.layers()[i];
    EXPECT_TRUE(follows_pattern(pattern, view_of(layer.weight).view())) << layer.name << " breaks " << c.pattern;
    if (c.scope == Scope::Local) {
      EXPECT_NEAR(report.layers[i].sparsity(), target, 0.02) << layer.name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CriteriaAndScopes, ScheduleReachesTarget,
                         ::testing::Values(ScheduleCase{"4x1", Criterion::Magnitude, Scope::Local},
                                           ScheduleCase{"4x1", Criterion::Gradient, Scope::Local},
                                           ScheduleCase{"4x1", Criterion::Snip, Scope::Global},
                                           ScheduleCase{"4x1", Criterion::Snip, Scope::Local},
                                           ScheduleCase{"4x1", Criterion::SnipMomentum, Scope::Global},
                                           ScheduleCase{"2x1", Criterion::SnipMomentum, Scope::Local},
                                           ScheduleCase{"4x16", Criterion::Magnitude, Scope::Global},
                                           ScheduleCase{"1x1", Criterion::Gradient, Scope::Global},
                                           ScheduleCase{"2:4", Criterion::SnipMomentum, Scope::Local}));

TEST(Pruner, ConvBlocksRunAlongOutputChannelsOfTheChannelsLastView) {
  TinyNet net;
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Recipe r = recipe("4x1", 0.5, Criterion::Magnitude, Scope::Local, 0, 0, 1);
  r.groups[0].op_names = {"^conv$"};
  spruce::torch::Pruner pruner(net, r);
  ASSERT_EQ(pruner.layers().size(), 1u);
  pruner.on_train_begin();
  for (int64_t step = 0; step < 3; ++step) train_step(net, opt, pruner, d, step);
  const auto w = pruner.layers()[0].weight;  // [8][3][3][3], viewed as [8][27] with column (kh*3+kw)*3+ic
  EXPECT_NEAR(pruner.sparsity(), 0.5, 1e-9);
  for (int64_t oc0 = 0; oc0 < 8; oc0 += 4)
    for (int64_t ic = 0; ic < 3; ++ic)
      for (int64_t k = 0; k < 9; ++k) {
        auto block = w.slice(0, oc0, oc0 + 4).select(1, ic).flatten(1).select(1, k);
        const int64_t zeros = (block == 0).sum().item<int64_t>();
        EXPECT_TRUE(zeros == 0 || zeros == 4) << "block oc " << oc0 << " ic " << ic << " k " << k << " is partly zero";
      }
}

TEST(Pruner, GroupLassoShrinksBlockNorms) {
  TinyNet net;
  TinyData d = tiny_data();
  Recipe r = recipe("4x1", 0.5, Criterion::Magnitude, Scope::Local, 0, 100, 1000);
  r.groups[0].schedule.target = 0.0;  // no pruning: group lasso alone
  r.groups[0].group_lasso = true;
  r.groups[0].reg_coeff = 1e-2;
  spruce::torch::Pruner pruner(net, r);
  ::torch::optim::SGD opt(net.parameters(), ::torch::optim::SGDOptions(0.5));
  const Pattern p = Pattern::block(4, 1);
  std::vector<double> before;
  for (const auto& layer : pruner.layers()) before.push_back(group_lasso_penalty(p, view_of(layer.weight).view(), 1.0));
  for (int64_t step = 0; step < 5; ++step) {
    pruner.on_step_begin(step);
    auto zero_loss = net.forward(d.x).sum() * 0.0;  // gradients exist but are zero: only the penalty acts
    opt.zero_grad();
    zero_loss.backward();
    pruner.on_before_optimizer_step();
    opt.step();
    pruner.on_after_optimizer_step();
  }
  for (size_t i = 0; i < pruner.layers().size(); ++i) {
    const double after = group_lasso_penalty(p, view_of(pruner.layers()[i].weight).view(), 1.0);
    EXPECT_LT(after, before[i] * 0.999) << pruner.layers()[i].name << ": block norms did not shrink";
  }
}

TEST(Pruner, RecipeThatMatchesNoLayerIsAUsageError) {
  TinyNet net;
  Recipe r = Recipe::single(Pattern::block(4, 1), 0.5);
  r.groups[0].op_names = {"^decoder"};
  try {
    spruce::torch::Pruner pruner(net, r);
    FAIL() << "expected spruce::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    EXPECT_NE(std::string(e.what()).find("conv, fc, head"), std::string::npos) << e.what();
  }
}

TEST(Pruner, PatternLockKeepsExistingZeros) {
  TinyNet net;
  TinyData d = tiny_data();
  {
    ::torch::NoGradGuard no_grad;
    net.fc->weight.slice(0, 0, 16).zero_();
  }
  Recipe r = recipe("1x1", 0.0, Criterion::Magnitude, Scope::Local, 1000, 1000, 1);
  spruce::torch::Pruner pruner(net, r);
  pruner.lock_existing_zeros();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  pruner.on_train_begin();
  for (int64_t step = 0; step < 5; ++step) train_step(net, opt, pruner, d, step);
  EXPECT_EQ(net.fc->weight.slice(0, 0, 16).abs().sum().item<float>(), 0.0f);
  EXPECT_GT(net.fc->weight.slice(0, 16).abs().sum().item<float>(), 0.0f);
}

}  // namespace
}  // namespace spruce::test
