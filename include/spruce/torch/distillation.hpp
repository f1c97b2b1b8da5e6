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
// The embedding error weighted by how the texts vary: the mean over rows of e^T S e, where e is a
// row's student minus teacher embedding and S = `spread` [H][H] (see embedding_spread). A retrieval
// ranks by dot products with other texts' embeddings, so an error along a direction in which the
// texts differ reorders neighbours and one along a direction they share does not. With S scaled to
// mean eigenvalue 1, an error in a random direction costs its squared norm, about 2 (1 - cos).
::torch::Tensor spread_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher,
                                    const ::torch::Tensor& spread);
// The covariance of the rows of `embeddings` [K][H] (K >= 2), scaled to mean eigenvalue 1.
::torch::Tensor embedding_spread(const ::torch::Tensor& embeddings);
// Neighbourhood distillation (CompRess: Abbasi Koohpayegani et al. 2020): each row's similarities
// to a fixed `bank` [K][H] of the teacher's embeddings, as a softmax at `temperature`, should be
// the teacher row's own: KL(softmax(teacher . bank / T) || softmax(student . bank / T)), batch mean.
// A low temperature weighs each row's nearest neighbours most, which is what a retrieval ranks.
// `self` [N] (int64, or undefined) names each row's own entry in the bank (-1: none), left out.
::torch::Tensor neighbour_distillation(const ::torch::Tensor& student, const ::torch::Tensor& teacher,
                                       const ::torch::Tensor& bank, double temperature,
                                       const ::torch::Tensor& self = {});
// Mean squared error between hidden states [B][T][H], over the tokens under `mask` [B][T] only,
// averaged over the layers given (student and teacher lists of the same length).
::torch::Tensor hidden_state_distillation(const std::vector<::torch::Tensor>& student,
                                          const std::vector<::torch::Tensor>& teacher, const ::torch::Tensor& mask);
// Self-attention transfer (MiniLM: Wang et al. 2020): KL(teacher || student) between matching
// layers' distributions over keys, given as log-probabilities [B][heads][T][T] (attention, or value
// relations), for the queries under `mask` [B][T] and over the keys under it; the mean over
// queries and heads, then over layers.
::torch::Tensor attention_distillation(const std::vector<::torch::Tensor>& student_log_probs,
                                       const std::vector<::torch::Tensor>& teacher_log_probs,
                                       const ::torch::Tensor& mask);

}  // namespace spruce::torch
