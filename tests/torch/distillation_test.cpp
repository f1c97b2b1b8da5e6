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

// Pairwise similarities off the diagonal: zero for the teacher's own rows (and for any rotation of
// them, which keeps every similarity), positive when the neighbourhoods differ.
TEST(Distillation, SimilarityLossComparesPairwiseSimilarities) {
  const auto teacher = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.6f, 0.8f}});
  EXPECT_NEAR(spruce::torch::similarity_distillation(teacher, teacher).item<double>(), 0.0, 1e-9);
  const auto rotated = torch::stack({-teacher.select(1, 1), teacher.select(1, 0)}, 1);
  EXPECT_NEAR(spruce::torch::similarity_distillation(rotated, teacher).item<double>(), 0.0, 1e-6);
  // Rows 0 and 1 swapped: pairs (0,2) and (1,2) change 0.6 <-> 0.8, each counted twice of 6.
  const auto swapped = torch::tensor({{0.0f, 1.0f}, {1.0f, 0.0f}, {0.6f, 0.8f}});
  EXPECT_NEAR(spruce::torch::similarity_distillation(swapped, teacher).item<double>(), 4 * 0.04 / 6, 1e-6);
  EXPECT_EQ(spruce::torch::similarity_distillation(teacher.narrow(0, 0, 1), teacher).item<double>(), 0.0);
  auto student = torch::tensor({{0.0f, 1.0f}, {1.0f, 0.0f}, {0.6f, 0.8f}}).requires_grad_();
  const auto loss = spruce::torch::similarity_distillation(student, teacher);
  loss.backward();
  const auto stepped = (student - 0.5 * student.grad()).detach();
  EXPECT_LT(spruce::torch::similarity_distillation(stepped, teacher).item<double>(), loss.item<double>());
}

// KL between the teacher's and the student's softmax over bank similarities: zero for the teacher's
// rows, the closed form on a small case, own entries left out, and its gradient lowers it.
TEST(Distillation, NeighbourLossComparesSimilaritiesToTheBank) {
  using spruce::torch::neighbour_distillation;
  const auto bank = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.6f, 0.8f}});
  const auto teacher = torch::tensor({{1.0f, 0.0f}, {0.8f, 0.6f}});
  EXPECT_NEAR(neighbour_distillation(teacher, teacher, bank, 0.1).item<double>(), 0.0, 1e-7);
  const auto student = torch::tensor({{0.0f, 1.0f}, {0.8f, 0.6f}});
  // Row 0: teacher logits (1, 0, 0.6) / T, student (0, 1, 0.8) / T; row 1 agrees (0).
  const double t = 0.5;
  const auto p = torch::softmax(torch::tensor({1.0, 0.0, 0.6}) / t, 0);
  const auto q = torch::softmax(torch::tensor({0.0, 1.0, 0.8}) / t, 0);
  const double kl = (p * (p.log() - q.log())).sum().item<double>();
  EXPECT_NEAR(neighbour_distillation(student, teacher, bank, t).item<double>(), kl / 2, 1e-6);
  // Row 0's own entry is bank row 0: the KL over rows 1 and 2 alone.
  const auto p_rest = torch::softmax(torch::tensor({0.0, 0.6}) / t, 0);
  const auto q_rest = torch::softmax(torch::tensor({1.0, 0.8}) / t, 0);
  const double kl_rest = (p_rest * (p_rest.log() - q_rest.log())).sum().item<double>();
  const auto self = torch::tensor({int64_t(0), int64_t(-1)});
  EXPECT_NEAR(neighbour_distillation(student, teacher, bank, t, self).item<double>(), kl_rest / 2, 1e-6);
  auto trained = student.clone().requires_grad_();
  const auto loss = neighbour_distillation(trained, teacher, bank, t, self);
  loss.backward();
  EXPECT_TRUE(trained.grad().isfinite().all().item<bool>());
  const auto stepped = (trained - 0.1 * trained.grad()).detach();
  EXPECT_LT(neighbour_distillation(stepped, teacher, bank, t, self).item<double>(), loss.item<double>());
  EXPECT_THROW(neighbour_distillation(student, teacher, bank, 0.0), std::exception);
  EXPECT_THROW(neighbour_distillation(student, teacher, bank.narrow(1, 0, 1), t), std::exception);
  EXPECT_THROW(neighbour_distillation(student, teacher, bank, t, torch::tensor({int64_t(0)})), std::exception);
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
