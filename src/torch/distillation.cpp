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

::torch::Tensor spread_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher,
                                    const ::torch::Tensor& spread) {
  if (student.dim() != 2 || !student.sizes().equals(teacher.sizes()) || spread.dim() != 2 ||
      spread.size(0) != student.size(1) || spread.size(1) != student.size(1))
    usage_error("spread distillation needs [N][H] student and teacher rows and an [H][H] spread");
  const auto error = student - teacher.detach();
  return (error.matmul(spread.detach()) * error).sum(1).mean();
}

::torch::Tensor embedding_spread(const ::torch::Tensor& embeddings) {
  if (embeddings.dim() != 2 || embeddings.size(0) < 2) usage_error("the embeddings' spread needs [K][H] rows, K >= 2");
  const auto centred = embeddings.detach() - embeddings.detach().mean(0, true);
  const auto covariance = centred.t().matmul(centred) / double(embeddings.size(0) - 1);
  const double mean_eigenvalue = covariance.trace().item<double>() / double(embeddings.size(1));
  if (!(mean_eigenvalue > 0)) usage_error("the embeddings' spread needs rows that differ");
  return covariance / mean_eigenvalue;
}

::torch::Tensor neighbour_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher,
                                       const ::torch::Tensor& bank, double temperature, const ::torch::Tensor& self) {
  if (!(temperature > 0)) usage_error("the neighbourhood temperature must be positive");
  if (student.dim() != 2 || !student.sizes().equals(teacher.sizes()) || bank.dim() != 2 ||
      bank.size(1) != student.size(1))
    usage_error("neighbourhood distillation needs [N][H] student and teacher rows and a [K][H] bank");
  if (self.defined() && (self.dim() != 1 || self.size(0) != student.size(0)))
    usage_error("neighbourhood distillation needs one bank index (or -1) per row");
  const auto b = bank.detach();
  auto student_logits = student.matmul(b.t()) / temperature;
  auto teacher_logits = teacher.detach().matmul(b.t()) / temperature;
  if (self.defined()) {
    // Far below every other logit where a row meets its own entry: its probability is 0 on both sides.
    auto own = ::torch::zeros(student_logits.sizes(), ::torch::kBool);
    const auto listed = self >= 0;
    own.index_put_({::torch::arange(student.size(0)).masked_select(listed), self.masked_select(listed)}, true);
    student_logits = student_logits.masked_fill(own, -1e9);
    teacher_logits = teacher_logits.masked_fill(own, -1e9);
  }
  const auto log_p_teacher = ::torch::log_softmax(teacher_logits, -1);
  return (log_p_teacher.exp() * (log_p_teacher - ::torch::log_softmax(student_logits, -1))).sum(1).mean();
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

::torch::Tensor attention_distillation(const std::vector<::torch::Tensor>& student,
                                       const std::vector<::torch::Tensor>& teacher, const ::torch::Tensor& mask) {
  if (student.empty() || student.size() != teacher.size())
    usage_error("attention distillation needs as many student as teacher layers");
  const auto m = mask.to(::torch::kBool);
  const int64_t batch = m.size(0), tokens = m.size(1);
  const auto keys = m.view({batch, 1, 1, tokens});
  const auto queries = m.to(::torch::kFloat).view({batch, 1, tokens});
  auto loss = ::torch::zeros({});
  for (size_t i = 0; i < student.size(); ++i) {
    const auto& s = student[i];
    const auto t = teacher[i].detach();
    if (s.dim() != 4 || !s.sizes().equals(t.sizes()) || s.size(0) != batch || s.size(2) != tokens ||
        s.size(3) != tokens)
      usage_error("attention distillation needs [B][heads][T][T] log-probabilities for a [B][T] mask");
    // Keys outside the mask: no probability on either side, and no -inf arithmetic.
    const auto terms = (t.exp() * (t - s)).masked_fill(keys.logical_not(), 0.0);
    const auto per_query = terms.sum(-1);  // [B][heads][T]
    loss = loss + (per_query * queries).sum() / (queries.sum() * double(s.size(1)));
  }
  return loss / static_cast<double>(student.size());
}

}  // namespace spruce::torch
