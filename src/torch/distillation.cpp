#include "spruce/torch/distillation.hpp"

#include <torch/torch.h>

#include "spruce/error.hpp"

namespace spruce::torch {

namespace F = ::torch::nn::functional;

::torch::Tensor logit_distillation(const ::torch::Tensor& student_logits, const ::torch::Tensor& teacher_logits,
                                   double temperature) {
  if (!(temperature > 0)) usage_error("the distillation temperature must be positive");
  const auto log_p_student = ::torch::log_softmax(student_logits / temperature, -1);
  const auto p_teacher = ::torch::softmax(teacher_logits.detach() / temperature, -1);
  return F::kl_div(log_p_student, p_teacher, F::KLDivFuncOptions().reduction(::torch::kBatchMean)) * temperature *
         temperature;
}

::torch::Tensor embedding_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher) {
  return (1 - F::cosine_similarity(student, teacher.detach(), F::CosineSimilarityFuncOptions().dim(1))).mean();
}

::torch::Tensor similarity_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher) {
  const int64_t n = student.size(0);
  if (n < 2) return ::torch::zeros({}, student.options());
  const auto off = 1 - ::torch::eye(n, student.options());
  const auto diff = (student.matmul(student.t()) - teacher.detach().matmul(teacher.detach().t())) * off;
  return diff.pow(2).sum() / double(n * (n - 1));
}

::torch::Tensor hidden_state_distillation(const std::vector<::torch::Tensor>& student,
                                          const std::vector<::torch::Tensor>& teacher, const ::torch::Tensor& mask) {
  if (student.empty() || student.size() != teacher.size())
    usage_error("hidden-state distillation needs as many student as teacher layers");
  const auto m = mask.to(::torch::kFloat).unsqueeze(-1);
  const auto tokens = m.sum() * student.front().size(-1);
  auto loss = ::torch::zeros({});
  for (size_t i = 0; i < student.size(); ++i)
    loss = loss + ((student[i] - teacher[i].detach()).pow(2) * m).sum() / tokens;
  return loss / static_cast<double>(student.size());
}

}  // namespace spruce::torch
