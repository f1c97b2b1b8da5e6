// Knowledge distillation for pruning: the dense model is the teacher, the model being pruned the
// student, and these losses pull the student's outputs toward the teacher's while the Pruner
// removes weights. Classifiers distil logits; encoders distil embeddings and hidden states.
//
//   loss = (1 - w) * task_loss + w * logit_distillation(student_logits, teacher_logits, T)
#pragma once
#include <torch/types.h>

#include <vector>

namespace spruce::torch {

// Hinton et al.'s soft-target loss: KL(softmax(t / T) || softmax(s / T)) * T^2, batch mean.
::torch::Tensor logit_distillation(const ::torch::Tensor& student_logits, const ::torch::Tensor& teacher_logits,
                                   double temperature);
// 1 - cosine between matching rows of [N][H] embeddings, mean over rows.
::torch::Tensor embedding_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher);
// Mean squared difference between the student's and the teacher's pairwise similarities within
// the batch (dot products of [N][H] rows, unit rows in practice), off the diagonal: the
// neighbourhood structure a retrieval sees (relational distillation). Zero for N < 2.
::torch::Tensor similarity_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher);
// Mean squared error between hidden states [B][T][H], over the tokens under `mask` [B][T] only,
// averaged over the layers given (student and teacher lists of the same length).
::torch::Tensor hidden_state_distillation(const std::vector<::torch::Tensor>& student,
                                          const std::vector<::torch::Tensor>& teacher, const ::torch::Tensor& mask);

}  // namespace spruce::torch
