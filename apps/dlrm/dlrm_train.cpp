#include "dlrm/dlrm_train.hpp"

#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>
#include <unistd.h>

#include <chrono>
#include <iostream>

#include "common/progress.hpp"
#include "spruce/error.hpp"

namespace spruce::dlrm {
using namespace spruce::torch;
using apps::EpochLog;
using apps::ProgressLine;
namespace F = ::torch::nn::functional;

ClickMetrics evaluate_clicks(DlrmImpl& model, const ClickData& data, int64_t batch) {
  ::torch::NoGradGuard no_grad;
  model.eval();
  std::vector<::torch::Tensor> logits;
  for (int64_t i = 0; i < data.size(); i += batch) {
    const auto part = data.slice(i, std::min(batch, data.size() - i));
    logits.push_back(model.forward(part.dense, part.sparse));
  }
  model.train();
  const auto all = ::torch::cat(logits);
  ClickMetrics m;
  m.accuracy = ((all > 0).to(::torch::kFloat) == data.labels).to(::torch::kDouble).mean().item<double>();
  m.auc = roc_auc(all, data.labels);
  m.loss = F::binary_cross_entropy_with_logits(all, data.labels).item<double>();
  return m;
}

Recipe dlrm_recipe(const Pattern& pattern, double sparsity, int64_t total_steps) {
  Recipe r = Recipe::single(pattern, sparsity);
  PruningGroup& g = r.groups[0];
  g.op_names = {"^bottom\\.", "^top\\."};
  g.excluded_op_names = {"^bottom\\.0$", "^top\\.4$"};
  g.op_types = {"Linear"};
  g.criterion = Criterion::SnipMomentum;
  g.scope = Scope::Local;
  g.schedule.start_step = 0;
  g.schedule.end_step = std::max<int64_t>(0, total_steps * 6 / 10);
  g.schedule.frequency = std::max<int64_t>(1, g.schedule.end_step / 20);
  return r;
}

DlrmTrainResult train_dlrm(DlrmImpl& model, const ClickData& train, const ClickData& test, const DlrmTrainOptions& o,
                           std::ostream& log) {
  if (o.epochs < 1 || o.batch_size < 1) usage_error("DLRM training needs epochs and batch size of at least 1");
  const auto started = std::chrono::steady_clock::now();
  ::torch::manual_seed(o.seed);
  ::torch::optim::Adam optimizer(model.parameters(), ::torch::optim::AdamOptions(o.learning_rate));
  std::optional<Pruner> pruner;
  if (o.recipe) pruner.emplace(model, *o.recipe);
  const int64_t per_epoch = (train.size() + o.batch_size - 1) / o.batch_size;
  ProgressLine progress(log, o.progress_bar && isatty(STDERR_FILENO) && &log == &std::cerr, o.epochs, per_epoch);
  DlrmTrainResult result;
  if (pruner) pruner->on_train_begin();
  for (int64_t epoch = 0; epoch < o.epochs; ++epoch) {
    const auto epoch_started = std::chrono::steady_clock::now();
    const auto order = ::torch::randperm(train.size(), ::torch::kLong);
    double loss_sum = 0, correct = 0, seen = 0;
    for (int64_t s = 0; s < per_epoch; ++s) {
      const auto idx = order.narrow(0, s * o.batch_size, std::min(o.batch_size, train.size() - s * o.batch_size));
      const auto dense = train.dense.index_select(0, idx), sparse = train.sparse.index_select(0, idx);
      const auto labels = train.labels.index_select(0, idx);
      if (pruner) pruner->on_step_begin(result.steps);
      const auto logits = model.forward(dense, sparse);
      const auto loss = F::binary_cross_entropy_with_logits(logits, labels);
      optimizer.zero_grad();
      loss.backward();
      if (pruner) pruner->on_before_optimizer_step();
      optimizer.step();
      if (pruner) pruner->on_after_optimizer_step();
      ++result.steps;
      const double n = double(idx.size(0));
      loss_sum += loss.item<double>() * n;
      correct += ((logits > 0).to(::torch::kFloat) == labels).sum().item<double>();
      seen += n;
      if ((s + 1) % 10 == 0 || s + 1 == per_epoch)
        progress.update(epoch + 1, s + 1, loss_sum / seen, correct / seen, pruner ? pruner->sparsity() : 0.0);
    }
    EpochLog e;
    e.epoch = epoch + 1;
    e.loss = loss_sum / seen;
    e.train_accuracy = correct / seen;
    e.test_accuracy = evaluate_clicks(model, test).accuracy;
    e.sparsity = pruner ? pruner->sparsity() : 0.0;
    e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - epoch_started).count();
    progress.end_epoch(e);
  }
  if (pruner) {
    result.report = pruner->on_train_end();
    result.sparsity = result.report->sparsity();
  }
  result.test = evaluate_clicks(model, test);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return result;
}

}  // namespace spruce::dlrm
