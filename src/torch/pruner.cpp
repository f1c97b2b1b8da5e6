#include "spruce/torch/pruner.hpp"

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/utils.h>

#include "spruce/checksum.hpp"
#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/regularizer.hpp"
#include "tensor_matrix.hpp"

namespace spruce::torch {
namespace {

// The weight of a prunable layer and its op type as recipes name it, or nothing.
std::pair<::torch::Tensor, const char*> prunable_weight(::torch::nn::Module& m) {
  if (auto* linear = m.as<::torch::nn::LinearImpl>()) return {linear->weight, "Linear"};
  if (auto* conv = m.as<::torch::nn::Conv2dImpl>()) return {conv->weight, "Conv"};
  return {{}, nullptr};
}

}  // namespace

Pruner::Pruner(::torch::nn::Module& module, Recipe recipe) : recipe_(std::move(recipe)) {
  std::string seen;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto [weight, op_type] = prunable_weight(*item.value());
    if (op_type == nullptr) continue;
    seen += (seen.empty() ? "" : ", ") + item.key();
    const PruningGroup* group = recipe_.group_for(item.key(), op_type);
    if (group == nullptr) continue;
    check_weight(weight, item.key());
    PrunedLayer layer;
    layer.name = item.key();
    layer.op_type = op_type;
    layer.group = size_t(group - recipe_.groups.data());
    layer.weight = weight;
    layer.scores = ScoreAccumulator(group->criterion);
    layers_.push_back(std::move(layer));
  }
  if (layers_.empty())
    usage_error("the recipe's op_names/excluded_op_names select none of the model's Linear and Conv2d layers (" +
                (seen.empty() ? std::string("it has none") : seen) + "); fix the names in the recipe");
  pending_.assign(recipe_.groups.size(), false);
  reached_.assign(recipe_.groups.size(), 0.0);
}

void Pruner::on_train_begin() { apply_masks(); }

void Pruner::on_step_begin(int64_t step) {
  step_ = step;
  for (size_t g = 0; g < recipe_.groups.size(); ++g)
    if (pending_[g] || recipe_.groups[g].schedule.prunes_at(step)) update_masks(g, step);
}

void Pruner::on_before_optimizer_step() {
  ::torch::NoGradGuard no_grad;
  for (auto& layer : layers_) {
    ::torch::Tensor grad = layer.weight.grad();
    if (!grad.defined()) continue;
    const PruningGroup& group = recipe_.groups[layer.group];
    const Schedule& s = group.schedule;
    // Scores come from the loss gradient alone, before masking, so `gradient` can revive blocks.
    if (needs_gradient(group.criterion) && (pending_[layer.group] || step_ < s.end_step))
      layer.scores.update(HeldMatrix(layer.weight).view(), HeldMatrix(grad).view());
    if (layer.mask.defined()) grad.mul_(layer.mask);
    if (group.group_lasso && group.reg_coeff > 0 && step_ >= s.start_step && step_ <= s.end_step) {
      HeldMatrix w(layer.weight);
      edit_as_matrix(grad,
                     [&](MatrixView<float> g) { add_group_lasso_grad(group.pattern, w.view(), group.reg_coeff, g); });
    }
  }
}

void Pruner::on_after_optimizer_step() { apply_masks(); }

void Pruner::apply_masks() {
  ::torch::NoGradGuard no_grad;
  for (auto& layer : layers_)
    if (layer.mask.defined()) layer.weight.mul_(layer.mask);
}

void Pruner::update_masks(size_t g, int64_t step) {
  const PruningGroup& group = recipe_.groups[g];
  std::vector<PrunedLayer*> members;
  for (auto& layer : layers_)
    if (layer.group == g) members.push_back(&layer);
  const bool from_gradient = needs_gradient(group.criterion);
  for (const PrunedLayer* layer : members)
    if (from_gradient && !layer->scores.ready()) {
      pending_[g] = true;  // no gradient seen yet: prune at the first step that has one
      return;
    }
  pending_[g] = false;

  std::vector<MatrixF> magnitudes;  // magnitude scores, computed here; others are accumulated
  magnitudes.reserve(members.size());
  std::vector<MatrixView<const float>> scores;
  for (const PrunedLayer* layer : members) {
    if (from_gradient) {
      scores.push_back(layer->scores.scores().view());
      continue;
    }
    HeldMatrix w(layer->weight);
    magnitudes.emplace_back(w.view().rows, w.view().cols);
    element_scores(Criterion::Magnitude, w.view(), {}, magnitudes.back().view());
    scores.push_back(magnitudes.back().view());
  }

  // Never below a ratio already reached, so a resumed run with a changed schedule keeps its zeros.
  const double ratio = std::max(group.schedule.target_at(step), reached_[g]);
  reached_[g] = ratio;
  std::vector<Mask> masks;
  if (group.scope == Scope::Global) {
    std::vector<GlobalTensor> tensors;
    for (const auto& s : scores) tensors.push_back({group.pattern, s});
    masks = global_masks(tensors, ratio, group.limits, group.reduce);
  } else {
    for (const auto& s : scores) masks.push_back(local_mask(group.pattern, s, ratio, group.reduce));
  }
  ::torch::NoGradGuard no_grad;
  ++mask_updates_;
  for (size_t i = 0; i < members.size(); ++i) {
    members[i]->mask = mask_to_tensor(masks[i], members[i]->weight.sizes().vec());
    members[i]->weight.mul_(members[i]->mask);
  }
}

void Pruner::lock_existing_zeros() {
  for (auto& layer : layers_)
    layer.mask = mask_to_tensor(mask_of_nonzeros(HeldMatrix(layer.weight).view()), layer.weight.sizes().vec());
}

uint64_t Pruner::mask_checksum() const {
  uint64_t hash = kFnv1aBasis;
  for (const auto& layer : layers_) {
    if (!layer.mask.defined()) {
      const unsigned char dense = 0xff;
      hash = fnv1a(&dense, 1, hash);
      continue;
    }
    const auto bits = layer.mask.to(::torch::kUInt8).contiguous();
    hash = fnv1a(bits.data_ptr<uint8_t>(), size_t(bits.numel()), hash);
  }
  return hash;
}

SparsityReport Pruner::report() const {
  SparsityReport r;
  r.step = step_;
  for (const auto& layer : layers_) {
    const PruningGroup& group = recipe_.groups[layer.group];
    LayerReport l;
    l.name = layer.name;
    l.op_type = layer.op_type;
    l.pattern = group.pattern.str();
    l.shape = layer.weight.sizes().vec();
    l.elements = layer.weight.numel();
    l.zeros = (layer.weight == 0).sum().item<int64_t>();
    l.target = group.schedule.target_at(std::max<int64_t>(step_, 0));
    r.layers.push_back(std::move(l));
  }
  return r;
}

void Pruner::save(::torch::serialize::OutputArchive& archive) const {
  archive.write("step", ::torch::tensor(step_, ::torch::kInt64));
  archive.write("reached", ::torch::tensor(reached_, ::torch::kFloat64));
  archive.write("recipe", c10::IValue(recipe_.to_yaml()));
  for (const auto& layer : layers_) {
    archive.write("mask." + layer.name,
                  layer.mask.defined() ? layer.mask.to(::torch::kUInt8) : ::torch::empty({0}, ::torch::kUInt8));
    if (layer.scores.ready()) {  // gradient criteria's accumulated scores (snip_momentum's running average)
      const MatrixF& m = layer.scores.scores();
      archive.write("scores." + layer.name,
                    ::torch::from_blob(const_cast<float*>(m.data.data()), {m.rows, m.cols}, ::torch::kFloat32).clone());
    }
  }
}

void Pruner::load(::torch::serialize::InputArchive& archive) {
  ::torch::Tensor step;
  if (!archive.try_read("step", step))
    data_error("the checkpoint holds no pruner state (step and masks); resume it with pattern lock instead");
  std::vector<::torch::Tensor> masks;
  for (const auto& layer : layers_) {
    ::torch::Tensor mask;
    if (!archive.try_read("mask." + layer.name, mask))
      data_error("the checkpoint holds no mask for layer " + layer.name +
                 "; it was pruned with another recipe or model, so resume with the same ones");
    if (mask.numel() != 0 && mask.sizes() != layer.weight.sizes())
      data_error("the checkpoint's mask for layer " + layer.name + " has another shape than its weight");
    masks.push_back(mask);
  }
  ::torch::Tensor reached;
  if (!archive.try_read("reached", reached) || reached.numel() != int64_t(recipe_.groups.size()))
    data_error("the checkpoint's pruner state does not match the recipe's " + std::to_string(recipe_.groups.size()) +
               " groups; resume with the recipe it was trained with");
  step_ = step.item<int64_t>();
  for (size_t g = 0; g < reached_.size(); ++g) reached_[g] = reached[int64_t(g)].item<double>();
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i].mask = masks[i].numel() ? masks[i].to(::torch::kFloat32) : ::torch::Tensor();
    ::torch::Tensor scores;
    const auto view = HeldMatrix(layers_[i].weight).view();
    if (archive.try_read("scores." + layers_[i].name, scores) && scores.dim() == 2 &&
        scores.size(0) == int64_t(view.rows) && scores.size(1) == int64_t(view.cols)) {
      MatrixF m(view.rows, view.cols);
      const auto src = scores.to(::torch::kFloat32).contiguous();
      std::copy_n(src.data_ptr<float>(), m.data.size(), m.data.begin());
      layers_[i].scores.restore(std::move(m));
    } else {
      layers_[i].scores.reset();  // an older checkpoint: scores are re-accumulated
    }
  }
  pending_.assign(recipe_.groups.size(), false);
}

}  // namespace spruce::torch
