// Channel permutation for N:M patterns on the encoder (spruce/permutation.hpp): the input channels
// of each layer's attention output and FFN output are reordered so that the N:M mask keeps more of
// their scores, and the layers that produce those channels are reordered alike (V's output rows
// within each head, whose value relations are unchanged; FFN in's rows and bias), so the model
// computes exactly the same function. Q, K, V and FFN in read the residual stream, whose order
// every layer shares, and keep theirs.
#pragma once
#include <string>
#include <vector>

#include "minilm/bert.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/criteria.hpp"
#include "spruce/pattern.hpp"

namespace minilm {

struct ChannelOrderReport {
  int64_t layers = 0;                                 // Linear layers reordered
  double kept_before = 0, kept_after = 0, total = 0;  // their scores, summed (spruce::ChannelOrder)
  double seconds = 0;
};

// Mean squared input per column of every layer's attention output and FFN output: what the wanda
// score weighs |W| by.
struct ReorderedInputs {
  std::vector<std::vector<double>> attention_output, ffn_output;  // [layer][column]
};
// From forwards of `model`, without gradients, over `batches`.
ReorderedInputs gather_reordered_inputs(BertModelImpl& model, const std::vector<Inputs>& batches);

// Reorders `model` in place for pattern p (N:M; spruce::Error, usage, otherwise). Scores are |W|,
// or |W| x input RMS when `criterion` needs inputs (wanda, sparsegpt) and `inputs` has them.
ChannelOrderReport reorder_for_nm(BertModelImpl& model, const spruce::Pattern& p, spruce::Criterion criterion,
                                  const ReorderedInputs* inputs = nullptr);

}  // namespace minilm
