// Distillation losses: zero exactly when the student matches the teacher, positive otherwise, and
// their gradients move the student toward the teacher (never the teacher, which is detached).
#include "spruce/torch/distillation.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace {

TEST(Distillation, LogitLossIsZeroOnlyForTheTeachersDistribution) {
  torch::manual_seed(1);
  const auto teacher = torch::randn({8, 10});
  EXPECT_NEAR(spruce::torch::logit_distillation(teacher, teacher, 2.0).item<double>(), 0.0, 1e-6);
  EXPECT_NEAR(spruce::torch::logit_distillation(teacher + 3.0, teacher, 2.0).item<double>(), 0.0, 1e-6);  // shift-free
  auto student = torch::randn({8, 10}).requires_grad_();
  const auto loss = spruce::torch::logit_distillation(student, teacher, 4.0);
  EXPECT_GT(loss.item<double>(), 0.01);
  loss.backward();
  // One small step along the gradient lowers the loss.
  const auto stepped = (student - 0.5 * student.grad()).detach();
  EXPECT_LT(spruce::torch::logit_distillation(stepped, teacher, 4.0).item<double>(), loss.item<double>());
  EXPECT_THROW(spruce::torch::logit_distillation(student, teacher, 0.0), std::exception);
}

TEST(Distillation, EmbeddingLossIsOneMinusCosine) {
  const auto a = torch::tensor({{1.0f, 0.0f}, {0.0f, 2.0f}});
  const auto b = torch::tensor({{0.0f, 1.0f}, {0.0f, 5.0f}});
  EXPECT_NEAR(spruce::torch::embedding_distillation(a, b).item<double>(), 0.5, 1e-6);  // (1 + 0) / 2
  EXPECT_NEAR(spruce::torch::embedding_distillation(a, a).item<double>(), 0.0, 1e-6);
}

TEST(Distillation, HiddenStateLossCountsOnlyMaskedTokens) {
  const auto teacher = torch::zeros({1, 3, 2});
  auto student = torch::zeros({1, 3, 2});
  student[0][2] = 100.0;  // a padding token, under mask 0
  const auto mask = torch::tensor({{1, 1, 0}});
  EXPECT_NEAR(spruce::torch::hidden_state_distillation({student}, {teacher}, mask).item<double>(), 0.0, 1e-9);
  student[0][0] = 2.0;  // (4 + 4) / (2 tokens x 2 features)
  EXPECT_NEAR(spruce::torch::hidden_state_distillation({student}, {teacher}, mask).item<double>(), 2.0, 1e-6);
  EXPECT_THROW(spruce::torch::hidden_state_distillation({student}, {}, mask), std::exception);
}

}  // namespace
