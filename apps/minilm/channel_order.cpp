#include "minilm/channel_order.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>

#include "spruce/error.hpp"
#include "spruce/permutation.hpp"
#include "spruce/torch/pruner.hpp"

namespace minilm {
namespace {

::torch::Tensor parameter(BertModelImpl& model, const std::string& name) {
  auto* p = model.named_parameters().find(name);
  if (!p) spruce::usage_error("channel permutation: the encoder has no parameter " + name);
  return *p;
}

// The layer's scores for the search: |W|, times the RMS of each input column when given.
std::vector<float> scores_of(const ::torch::Tensor& weight, const std::vector<double>* mean_squares) {
  auto s = weight.detach().abs().to(::torch::kFloat).contiguous();
  if (mean_squares) {
    std::vector<float> rms(mean_squares->size());
    for (size_t c = 0; c < rms.size(); ++c) rms[c] = static_cast<float>(std::sqrt((*mean_squares)[c]));
    s = s * ::torch::from_blob(rms.data(), {static_cast<int64_t>(rms.size())}, ::torch::kFloat).clone();
  }
  return {s.data_ptr<float>(), s.data_ptr<float>() + s.numel()};
}

}  // namespace

ReorderedInputs gather_reordered_inputs(BertModelImpl& model, const std::vector<Inputs>& batches) {
  const size_t layers = model.layers->size();
  ReorderedInputs out;
  out.attention_output.resize(layers), out.ffn_output.resize(layers);
  // The Pruner's wanda statistics (squares summed in float64), one per reordered layer.
  std::vector<spruce::torch::InputStatistics> attention(layers), ffn(layers);
  for (size_t i = 0; i < layers; ++i) {
    auto* l = model.layers->ptr(i)->as<BertLayer>();
    l->attention->output->set_observer([&, i](size_t, const ::torch::Tensor& x) { attention[i].add(x); });
    l->output->set_observer([&, i](size_t, const ::torch::Tensor& x) { ffn[i].add(x); });
  }
  struct Unobserve {  // however the forwards end
    BertModelImpl& model;
    ~Unobserve() {
      for (const auto& layer : *model.layers) {
        auto* l = layer->as<BertLayer>();
        l->attention->output->set_observer(nullptr), l->output->set_observer(nullptr);
      }
    }
  } unobserve{model};
  ::torch::NoGradGuard no_grad;
  const bool training = model.is_training();
  model.eval();  // no dropout
  // Padding rows count too, as in the Pruner's wanda statistics.
  for (const Inputs& in : batches) model.forward(in.ids, in.mask);
  model.train(training);
  auto mean_squares = [](const spruce::torch::InputStatistics& st) {
    if (!st.sum_squares.defined()) return std::vector<double>();  // no batch: no scores
    const auto mean = (st.sum_squares / std::max(1.0, st.rows)).contiguous();
    return std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + mean.numel());
  };
  for (size_t i = 0; i < layers; ++i)
    out.attention_output[i] = mean_squares(attention[i]), out.ffn_output[i] = mean_squares(ffn[i]);
  return out;
}

ChannelOrderReport reorder_for_nm(BertModelImpl& model, const spruce::Pattern& p, spruce::Criterion criterion,
                                  const ReorderedInputs* inputs) {
  if (!p.is_nm()) spruce::usage_error("channel permutation is for N:M patterns (e.g. 2:4), not " + p.str());
  const auto started = std::chrono::steady_clock::now();
  const bool weigh = inputs && spruce::needs_inputs(criterion);
  const int64_t head_size = model.config().hidden_size / model.config().num_heads;
  ChannelOrderReport report;
  ::torch::NoGradGuard no_grad;
  for (size_t i = 0; i < model.layers->size(); ++i) {
    const std::string prefix = "encoder.layer." + std::to_string(i) + ".";
    // A layer whose input channels are reordered, the layer that produces them, the segment its
    // channels move within, and its inputs' mean squares (none: magnitude).
    struct Pair {
      std::string consumer, producer;
      int64_t segment;
      const std::vector<double>* mean_squares;
    };
    const Pair pairs[] = {{prefix + "attention.output.dense", prefix + "attention.self.value", head_size,
                           weigh ? &inputs->attention_output.at(i) : nullptr},
                          {prefix + "output.dense", prefix + "intermediate.dense", model.config().intermediate_size,
                           weigh ? &inputs->ffn_output.at(i) : nullptr}};
    for (const Pair& pair : pairs) {
      auto consumer = parameter(model, pair.consumer + ".weight");
      auto producer = parameter(model, pair.producer + ".weight");
      auto producer_bias = parameter(model, pair.producer + ".bias");
      if (pair.mean_squares && static_cast<int64_t>(pair.mean_squares->size()) != consumer.size(1))
        spruce::usage_error("channel permutation: no inputs seen for " + pair.consumer);
      const std::vector<float> scores = scores_of(consumer, pair.mean_squares);
      const auto order = spruce::search_nm_channel_order(
          p, spruce::MatrixView<const float>(scores.data(), consumer.size(0), consumer.size(1)), pair.segment);
      const auto index = ::torch::tensor(order.order, ::torch::kInt64);
      consumer.copy_(consumer.index_select(1, index));
      producer.copy_(producer.index_select(0, index));
      producer_bias.copy_(producer_bias.index_select(0, index));
      report.layers += 1;
      report.kept_before += order.kept_before, report.kept_after += order.kept_after, report.total += order.total;
    }
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return report;
}

}  // namespace minilm
