// Distillation losses: zero exactly when the student matches the teacher, positive otherwise, and
// their gradients move the student toward the teacher (never the teacher, which is detached).
#include "spruce/torch/distillation.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

namespace {

using spruce::torch::attention_distillation;

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

// The spread: the covariance scaled to mean eigenvalue 1; errors cost by the texts' variance along
// them, so one along a direction all rows share costs nothing.
TEST(Distillation, SpreadLossWeighsErrorsByHowTheTextsVary) {
  using spruce::torch::embedding_spread;
  using spruce::torch::spread_distillation;
  // Rows vary along x only (variance 2), never along y: eigenvalues 2 and 0, mean 1 already.
  const auto bank = torch::tensor({{1.0f, 5.0f}, {-1.0f, 5.0f}, {1.0f, 5.0f}, {-1.0f, 5.0f}}) * std::sqrt(1.5f);
  const auto spread = embedding_spread(bank);
  EXPECT_TRUE(torch::allclose(spread, torch::tensor({{2.0f, 0.0f}, {0.0f, 0.0f}}), 1e-5, 1e-6)) << spread;
  const auto teacher = torch::tensor({{0.6f, 0.8f}, {0.0f, 1.0f}});
  EXPECT_NEAR(spread_distillation(teacher, teacher, spread).item<double>(), 0.0, 1e-9);
  // Errors (0.1, 0) and (0, 0.3): 2 * 0.01 and 0, mean 0.01.
  auto student = torch::tensor({{0.7f, 0.8f}, {0.0f, 1.3f}}).requires_grad_();
  const auto loss = spread_distillation(student, teacher, spread);
  EXPECT_NEAR(loss.item<double>(), 0.01, 1e-6);
  loss.backward();
  EXPECT_NEAR(student.grad()[1].abs().sum().item<double>(), 0.0, 1e-9);  // the shared direction is free
  const auto stepped = (student - 0.5 * student.grad()).detach();
  EXPECT_LT(spread_distillation(stepped, teacher, spread).item<double>(), loss.item<double>());
  // Isotropic rows: the spread is the identity, and the loss the squared error.
  torch::manual_seed(3);
  const auto iso = embedding_spread(torch::randn({20000, 4}));
  EXPECT_TRUE(torch::allclose(iso, torch::eye(4), 0, 0.05)) << iso;
  EXPECT_THROW(embedding_spread(bank.narrow(0, 0, 1)), std::exception);
  EXPECT_THROW(embedding_spread(torch::ones({3, 2})), std::exception);
  EXPECT_THROW(spread_distillation(student, teacher, torch::eye(3)), std::exception);
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

// Log-probabilities as the encoder makes them: padding keys under the lowest float as a bias.
torch::Tensor masked_log_softmax(const torch::Tensor& scores, const torch::Tensor& mask) {
  const auto bias = (1 - mask.to(torch::kFloat)).mul(std::numeric_limits<float>::lowest());
  return torch::log_softmax(scores + bias.view({mask.size(0), 1, 1, mask.size(1)}), -1);
}

TEST(Distillation, AttentionLossIsTheMeanKlOverRealQueriesAndKeys) {
  torch::manual_seed(3);
  const int64_t batch = 2, heads = 3, tokens = 5;
  const auto mask = torch::tensor({{1, 1, 1, 1, 1}, {1, 1, 1, 0, 0}});
  const auto teacher = masked_log_softmax(torch::randn({batch, heads, tokens, tokens}), mask);
  auto student_scores = torch::randn({batch, heads, tokens, tokens});
  const auto student = masked_log_softmax(student_scores, mask);
  // By hand: every real query of every head, its KL over the real keys.
  double sum = 0;
  int64_t rows = 0;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t n = mask[b].sum().item<int64_t>();
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t q = 0; q < n; ++q, ++rows) {
        const auto p = teacher[b][h][q].narrow(0, 0, n).exp(), r = student[b][h][q].narrow(0, 0, n).exp();
        sum += (p * (p.log() - r.log())).sum().item<double>();
      }
  }
  EXPECT_NEAR(attention_distillation({student}, {teacher}, mask).item<double>(), sum / double(rows), 1e-5);
  EXPECT_NEAR(attention_distillation({teacher, student}, {teacher, teacher}, mask).item<double>(),
              sum / double(rows) / 2, 1e-5);
  EXPECT_NEAR(attention_distillation({teacher}, {teacher}, mask).item<double>(), 0.0, 1e-7);
  // Padding queries' rows count for nothing.
  auto scrambled = student_scores.clone();
  scrambled[1].narrow(1, 3, 2).normal_();
  EXPECT_NEAR(attention_distillation({masked_log_softmax(scrambled, mask)}, {teacher}, mask).item<double>(),
              sum / double(rows), 1e-5);
  // Gradients are finite despite the padding keys' huge negative logits, and a step lowers the loss.
  auto trained = student_scores.clone().requires_grad_();
  const auto loss = attention_distillation({masked_log_softmax(trained, mask)}, {teacher}, mask);
  loss.backward();
  EXPECT_TRUE(trained.grad().isfinite().all().item<bool>());
  const auto stepped = (trained - 1.0 * trained.grad()).detach();
  EXPECT_LT(attention_distillation({masked_log_softmax(stepped, mask)}, {teacher}, mask).item<double>(),
            loss.item<double>());
  EXPECT_THROW(attention_distillation({student}, {}, mask), std::exception);
  EXPECT_THROW(attention_distillation({student}, {teacher}, mask.narrow(1, 0, 4)), std::exception);
}

}  // namespace
