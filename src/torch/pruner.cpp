#include "spruce/torch/pruner.hpp"

#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/serialize/input-archive.h>
#include <torch/serialize/output-archive.h>
#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "spruce/checksum.hpp"
#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/regularizer.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/layer_stack.hpp"
#include "spruce/torch/reconstruction.hpp"
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

void InputStatistics::add(const ::torch::Tensor& input) {
  if (!collecting) return;
  ::torch::NoGradGuard no_grad;
  const ::torch::Tensor x = input.detach();
  if (gram_wanted) {  // a Linear's input [..][features]
    // In double: float32 sums over thousands of rows would lose the digits the inverse amplifies.
    const ::torch::Tensor rows_of_x = x.reshape({-1, x.size(-1)}).to(::torch::kFloat64);
    const ::torch::Tensor product = rows_of_x.t().mm(rows_of_x);
    gram = gram.defined() ? gram.add_(product) : product;
    rows += double(rows_of_x.size(0));
    return;
  }
  // A conv's input [N][C][H][W]: one feature per channel; a Linear's [..][features].
  const ::torch::Tensor squares = x.dim() == 4 ? x.square().sum({0, 2, 3}, false, ::torch::kFloat64)
                                               : x.reshape({-1, x.size(-1)}).square().sum(0, false, ::torch::kFloat64);
  sum_squares = sum_squares.defined() ? sum_squares + squares : squares;
  rows += double(x.numel() / squares.numel());
}

Pruner::Pruner(::torch::nn::Module& module, Recipe recipe) : recipe_(std::move(recipe)) {
  std::string seen;
  std::vector<std::pair<std::string, std::string>> prunable;
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto [weight, op_type] = prunable_weight(*item.value());
    if (op_type == nullptr) continue;
    seen += (seen.empty() ? "" : ", ") + item.key();
    prunable.emplace_back(item.key(), op_type);
    const PruningGroup* group = recipe_.group_for(item.key(), op_type);
    if (group == nullptr) continue;
    check_weight(weight, item.key());
    if (group->target() > 0 && weight.size(0) > 0)
      require_blocks_fit(group->pattern, weight.size(0), weight.numel() / weight.size(0), in_quotes(item.key()),
                         "leave the layer out (the recipe's excluded_op_names)");
    if (group->criterion == Criterion::SparseGpt && std::string(op_type) != "Linear")
      usage_error("pruning_type sparsegpt reconstructs Linear layers only, and " + item.key() +
                  " is a Conv2d; prune it in another group (wanda or magnitude), or exclude it");
    PrunedLayer layer;
    layer.name = item.key();
    layer.op_type = op_type;
    layer.group = size_t(group - recipe_.groups.data());
    layer.weight = weight;
    layer.scores = ScoreAccumulator(group->criterion);
    layers_.push_back(std::move(layer));
  }
  if (layers_.empty()) {
    // Names that select layers of another type: the op types are the key to fix, not the names.
    std::string by_name;
    for (const auto& [name, op_type] : prunable)
      if (std::any_of(recipe_.groups.begin(), recipe_.groups.end(), [&](const auto& g) { return g.matches(name); }))
        by_name += (by_name.empty() ? "" : ", ") + name + " (" + op_type + ")";
    if (!by_name.empty())
      usage_error("the recipe's pruning_op_types select none of the layers its op_names select (" + by_name +
                  "); add their type to pruning_op_types");
    usage_error("the recipe's op_names/excluded_op_names select none of the model's Linear and Conv2d layers (" +
                (seen.empty() ? std::string("it has none") : seen) + "); fix the names in the recipe");
  }
  recipe_.check_every_group_used(prunable);
  for (const auto& group : recipe_.groups)
    if (group.criterion == Criterion::SparseGpt && group.scope == Scope::Global)
      usage_error(
          "pruning_type sparsegpt prunes each layer to the target on its own; set the group's "
          "pruning_scope to local (spruce train: --scope local)");
  pending_.assign(recipe_.groups.size(), false);
  reached_.assign(recipe_.groups.size(), 0.0);
  observe_inputs(module);
}

Pruner::~Pruner() {
  for (auto& layer : layers_)
    if (layer.inputs) layer.inputs->live = false;
}

void Pruner::observe_inputs(::torch::nn::Module& module) {
  for (auto& layer : layers_)
    if (needs_inputs(recipe_.groups[layer.group].criterion)) {
      layer.inputs = std::make_shared<InputStatistics>();
      layer.inputs->gram_wanted = recipe_.groups[layer.group].criterion == Criterion::SparseGpt;
    }
  std::set<std::string> observed;
  for (const NamedHost& named : find_layer_hosts(module)) {
    std::vector<std::shared_ptr<InputStatistics>> by_index(named.host->size());
    for (size_t i = 0; i < named.host->size(); ++i)
      for (auto& layer : layers_)
        if (layer.inputs && layer.name == named.layer_path(i)) by_index[i] = layer.inputs, observed.insert(layer.name);
    if (std::none_of(by_index.begin(), by_index.end(), [](const auto& s) { return s != nullptr; })) continue;
    named.host->set_observer([previous = named.host->observer(), by_index](size_t i, const ::torch::Tensor& x) {
      if (previous) previous(i, x);
      if (i < by_index.size() && by_index[i] && by_index[i]->live && ::torch::GradMode::is_enabled())
        by_index[i]->add(x);
    });
  }
  for (const auto& layer : layers_)
    if (layer.inputs && !observed.count(layer.name))
      usage_error("pruning_type " + to_string(recipe_.groups[layer.group].criterion) +
                  " needs each pruned layer's inputs, and layer " + layer.name +
                  " does not live in a LayerHost (spruce/torch/layer_stack.hpp) that shows them; "
                  "move it into one, or use magnitude");
}

std::optional<std::vector<std::vector<float>>> Pruner::input_rms(const std::vector<PrunedLayer*>& members) {
  std::vector<double> sums;  // every member's row count, then its sums of squares
  for (const PrunedLayer* layer : members) {
    const InputStatistics& s = *layer->inputs;
    sums.push_back(s.rows);
    const int64_t features = layer->weight.size(1);  // a Linear's in-features, a conv's in-channels
    if (s.sum_squares.defined() && s.sum_squares.numel() != features)
      data_error("layer " + layer->name + " was given inputs of " + std::to_string(s.sum_squares.numel()) +
                 " features but has " + std::to_string(features));
    const ::torch::Tensor sq = s.sum_squares.defined() ? s.sum_squares : ::torch::zeros({features}, ::torch::kFloat64);
    sums.insert(sums.end(), sq.data_ptr<double>(), sq.data_ptr<double>() + features);
  }
  if (sum_over_ranks_) sum_over_ranks_(sums);
  std::vector<std::vector<float>> out;
  size_t at = 0;
  for (const PrunedLayer* layer : members) {
    const double rows = sums[at++];
    if (rows <= 0) return std::nullopt;
    const int64_t features = layer->weight.size(1);
    std::vector<float> rms(static_cast<size_t>(features));
    for (auto& r : rms) r = float(std::sqrt(sums[at++] / rows));
    // A conv's GEMM view is [OC][KH*KW*IC], channels last: channel c's RMS for every (kh, kw).
    const int64_t taps = layer->op_type == "Conv" ? layer->weight.size(2) * layer->weight.size(3) : 1;
    std::vector<float> columns;
    columns.reserve(size_t(taps * features));
    for (int64_t t = 0; t < taps; ++t) columns.insert(columns.end(), rms.begin(), rms.end());
    out.push_back(std::move(columns));
  }
  return out;
}

std::optional<std::vector<::torch::Tensor>> Pruner::input_grams(const std::vector<PrunedLayer*>& members) {
  std::vector<double> sums;  // every member's row count, then its Gram matrix, row by row
  for (const PrunedLayer* layer : members) {
    const InputStatistics& s = *layer->inputs;
    sums.push_back(s.rows);
    const int64_t features = layer->weight.size(1);
    if (s.gram.defined() && s.gram.size(0) != features)
      data_error("layer " + layer->name + " was given inputs of " + std::to_string(s.gram.size(0)) +
                 " features but has " + std::to_string(features));
    const ::torch::Tensor g =
        s.gram.defined() ? s.gram.contiguous() : ::torch::zeros({features, features}, ::torch::kFloat64);
    sums.insert(sums.end(), g.data_ptr<double>(), g.data_ptr<double>() + g.numel());
  }
  if (sum_over_ranks_) sum_over_ranks_(sums);
  std::vector<::torch::Tensor> out;
  size_t at = 0;
  for (const PrunedLayer* layer : members) {
    if (sums[at++] <= 0) return std::nullopt;
    const int64_t features = layer->weight.size(1);
    out.push_back(::torch::from_blob(sums.data() + at, {features, features}, ::torch::kFloat64).clone());
    at += size_t(features * features);
  }
  return out;
}

void Pruner::on_train_begin() { apply_masks(); }

void Pruner::on_step_begin(int64_t step) {
  step_ = step;
  for (size_t g = 0; g < recipe_.groups.size(); ++g)
    if (pending_[g] || recipe_.groups[g].schedule.prunes_at(step)) update_masks(g, step);
  start_collecting(step);
}

// Sparsegpt's Gram matrices come from the forwards of the kGramSteps steps before each update
// (or of every step while an update waits for its first input).
void Pruner::start_collecting(int64_t step) {
  for (auto& layer : layers_) {
    if (!layer.inputs || !layer.inputs->gram_wanted) continue;
    const Schedule& s = recipe_.groups[layer.group].schedule;
    bool soon = pending_[layer.group];
    for (int64_t ahead = 1; ahead <= kGramSteps && !soon; ++ahead) soon = s.prunes_at(step + ahead);
    layer.inputs->collecting = soon;
  }
}

void Pruner::on_before_optimizer_step() {
  ::torch::NoGradGuard no_grad;
  for (auto& layer : layers_) {
    // Straight through: the gradient at the masked weights steps all of them, pruned ones included.
    if (layer.dense.defined()) layer.weight.copy_(layer.dense);
    ::torch::Tensor grad = layer.weight.grad();
    if (!grad.defined()) continue;
    const PruningGroup& group = recipe_.groups[layer.group];
    const Schedule& s = group.schedule;
    // Scores come from the loss gradient alone, before masking, so `gradient` can revive blocks.
    if (needs_gradient(group.criterion) && (pending_[layer.group] || step_ < s.end_step))
      layer.scores.update(HeldMatrix(layer.weight).view(), HeldMatrix(grad).view());
    if (layer.mask.defined() && !layer.dense.defined()) grad.mul_(layer.mask);
    if (group.group_lasso && group.reg_coeff > 0 && step_ >= s.start_step && step_ <= s.end_step) {
      HeldMatrix w(layer.weight);
      edit_as_matrix(grad,
                     [&](MatrixView<float> g) { add_group_lasso_grad(group.pattern, w.view(), group.reg_coeff, g); });
    }
  }
}

void Pruner::on_after_optimizer_step() {
  ::torch::NoGradGuard no_grad;
  for (auto& layer : layers_) {
    if (!layer.dense.defined()) continue;
    layer.dense.copy_(layer.weight);
    const double decay = recipe_.groups[layer.group].straight_through_decay;
    if (decay > 0) layer.dense.sub_(layer.dense * (1 - layer.mask) * decay);
  }
  apply_masks();
}

void Pruner::finish_updates() {
  for (size_t g = 0; g < recipe_.groups.size(); ++g)
    if (pending_[g]) update_masks(g, step_);
}

void Pruner::apply_masks() {
  ::torch::NoGradGuard no_grad;
  for (auto& layer : layers_)
    if (layer.mask.defined()) layer.weight.mul_(layer.mask);
}

void Pruner::set_mask(PrunedLayer& layer, ::torch::Tensor mask, bool last_update) {
  ::torch::NoGradGuard no_grad;
  layer.mask = std::move(mask);
  const bool straight_through = recipe_.groups[layer.group].straight_through && !last_update;
  if (straight_through && !layer.dense.defined()) layer.dense = layer.weight.detach().clone();
  if (layer.dense.defined()) layer.weight.copy_(layer.dense);  // weights the new mask keeps get their values
  layer.weight.mul_(layer.mask);
  if (!straight_through) layer.dense = ::torch::Tensor();  // the mask is final: pruned weights stay zero
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
  std::optional<std::vector<std::vector<float>>> rms;
  std::optional<std::vector<::torch::Tensor>> grams;
  const bool inputs_missing = group.criterion == Criterion::SparseGpt ? !(grams = input_grams(members))
                              : needs_inputs(group.criterion)         ? !(rms = input_rms(members))
                                                                      : false;
  if (inputs_missing) {
    pending_[g] = true;  // no training input seen yet: prune at the first step after one
    return;
  }
  pending_[g] = false;
  // Never below a ratio already reached, so a resumed run with a changed schedule keeps its zeros.
  const double ratio = std::max(group.schedule.target_at(step), reached_[g]);
  reached_[g] = ratio;
  if (grams) {
    ::torch::NoGradGuard no_grad;
    ++mask_updates_;
    for (size_t i = 0; i < members.size(); ++i) {
      PrunedLayer& layer = *members[i];
      layer.mask = prune_with_reconstruction(layer.weight, (*grams)[i], group.pattern, ratio, group.reduce, layer.mask);
      layer.inputs->reset();
    }
    return;
  }

  std::vector<MatrixF> computed;  // magnitude and wanda scores, computed here; others are accumulated
  computed.reserve(members.size());
  std::vector<MatrixView<const float>> scores;
  for (size_t i = 0; i < members.size(); ++i) {
    const PrunedLayer* layer = members[i];
    if (from_gradient) {
      scores.push_back(layer->scores.scores().view());
      continue;
    }
    HeldMatrix w(layer->dense.defined() ? layer->dense : layer->weight);
    computed.emplace_back(w.view().rows, w.view().cols);
    element_scores(group.criterion, w.view(), {}, computed.back().view(),
                   rms ? std::span<const float>((*rms)[i]) : std::span<const float>());
    scores.push_back(computed.back().view());
    if (layer->inputs) layer->inputs->reset();  // the next update scores the inputs seen from now on
  }

  std::vector<Mask> masks;
  if (group.gradual_nm) {  // N:M is per tensor in either scope
    for (const auto& s : scores) masks.push_back(gradual_nm_mask(group.pattern, s, ratio));
  } else if (group.scope == Scope::Global) {
    std::vector<GlobalTensor> tensors;
    for (const auto& s : scores) tensors.push_back({group.pattern, s});
    masks = global_masks(tensors, ratio, group.limits, group.reduce);
  } else {
    for (const auto& s : scores) masks.push_back(local_mask(group.pattern, s, ratio, group.reduce));
  }
  ++mask_updates_;
  const bool last_update = step >= group.schedule.end_step;
  for (size_t i = 0; i < members.size(); ++i)
    set_mask(*members[i], mask_to_tensor(masks[i], members[i]->weight.sizes().vec()), last_update);
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
  archive.write("mask_updates", ::torch::tensor(mask_updates_, ::torch::kInt64));
  archive.write("recipe", c10::IValue(recipe_.to_yaml()));
  for (const auto& layer : layers_) {
    archive.write("mask." + layer.name,
                  layer.mask.defined() ? layer.mask.to(::torch::kUInt8) : ::torch::empty({0}, ::torch::kUInt8));
    if (layer.dense.defined()) archive.write("dense." + layer.name, layer.dense);
    if (layer.inputs) {  // wanda's and sparsegpt's input statistics since the last update
      const InputStatistics& in = *layer.inputs;
      archive.write("inputs." + layer.name + ".rows", ::torch::tensor(in.rows, ::torch::kFloat64));
      archive.write("inputs." + layer.name + ".collecting", ::torch::tensor(int64_t(in.collecting), ::torch::kInt64));
      if (in.sum_squares.defined()) archive.write("inputs." + layer.name + ".sum_squares", in.sum_squares);
      if (in.gram.defined()) archive.write("inputs." + layer.name + ".gram", in.gram);
    }
    if (layer.scores.ready()) {  // gradient criteria's accumulated scores (snip_momentum's running average)
      const MatrixF& m = layer.scores.scores();
      archive.write("scores." + layer.name,
                    ::torch::from_blob(const_cast<float*>(m.data.data()), {m.rows, m.cols}, ::torch::kFloat32).clone());
    }
  }
}

namespace {

// A layer's input statistics as saved; none saved (an older checkpoint) starts them afresh.
void restore_inputs(::torch::serialize::InputArchive& archive, PrunedLayer& layer) {
  InputStatistics& in = *layer.inputs;
  in.reset();
  const std::string key = "inputs." + layer.name;
  ::torch::Tensor rows, collecting, sum_squares, gram;
  if (!archive.try_read(key + ".rows", rows)) return;
  const int64_t features = layer.weight.dim() > 1 ? layer.weight.size(1) : 0;
  const bool sum_ok = !archive.try_read(key + ".sum_squares", sum_squares) ||
                      (sum_squares.dim() == 1 && sum_squares.size(0) == features);
  const bool gram_ok = !archive.try_read(key + ".gram", gram) ||
                       (gram.dim() == 2 && gram.size(0) == features && gram.size(1) == features);
  for (const ::torch::Tensor* t : {&rows, &sum_squares, &gram})
    if (t->defined()) require_sound_tensor(*t, "the checkpoint's input statistics for layer " + layer.name);
  if (!sum_ok || !gram_ok)
    data_error("the checkpoint's input statistics for layer " + layer.name +
               " do not match its weight; resume with the model it was trained with");
  in.rows = rows.item<double>();
  if (archive.try_read(key + ".collecting", collecting)) in.collecting = collecting.item<int64_t>() != 0;
  if (sum_squares.defined()) in.sum_squares = sum_squares.to(::torch::kFloat64);
  if (gram.defined()) in.gram = gram.to(::torch::kFloat64);
}

}  // namespace

void Pruner::load(::torch::serialize::InputArchive& archive) {
  ::torch::Tensor step;
  if (!archive.try_read("step", step))
    data_error("the checkpoint holds no pruner state (step and masks); resume it with pattern lock instead");
  require_sound_tensor(step, "the checkpoint's pruner step", {}, false);
  if (step.numel() != 1 || step.item<int64_t>() < 0) data_error("the checkpoint's pruner step is damaged");
  // An edited recipe.yaml pruned on with another pattern, while the masks kept the old one. (A
  // longer schedule, or a higher target, goes on from the masks.)
  c10::IValue saved_text;
  if (archive.try_read("recipe", saved_text) && saved_text.isString()) {
    const Recipe saved = Recipe::parse(saved_text.toStringRef(), "the checkpoint's recipe");
    for (size_t g = 0; g < saved.groups.size() && g < recipe_.groups.size(); ++g)
      if (saved.groups[g].pattern != recipe_.groups[g].pattern)
        usage_error("the checkpoint's masks follow pattern " + saved.groups[g].pattern.str() +
                    ", and the recipe now says " + recipe_.groups[g].pattern.str() +
                    "; resume with its pattern, or start a new run");
  }
  std::vector<::torch::Tensor> masks;
  for (const auto& layer : layers_) {
    ::torch::Tensor mask;
    const std::string what = "the checkpoint's mask for layer " + layer.name;
    if (!archive.try_read("mask." + layer.name, mask))
      data_error("the checkpoint holds no mask for layer " + layer.name +
                 "; it was pruned with another recipe or model, so resume with the same ones");
    require_sound_tensor(mask, what, {}, false);
    if (mask.numel() != 0 && mask.sizes() != layer.weight.sizes())
      data_error(what + " has another shape than its weight");
    if (mask.numel() != 0 && ((mask != 0) & (mask != 1)).any().item<bool>())
      data_error(what + " holds values other than 0 and 1; the file is damaged");
    if (mask.numel() != 0 && !(mask != 0).any().item<bool>())
      data_error(what + " removes every weight of the layer; the file is damaged");
    masks.push_back(mask);
  }
  ::torch::Tensor reached;
  if (archive.try_read("reached", reached)) require_sound_tensor(reached, "the checkpoint's pruner state");
  if (!reached.defined() || reached.numel() != int64_t(recipe_.groups.size()))
    data_error("the checkpoint's pruner state does not match the recipe's " + std::to_string(recipe_.groups.size()) +
               " groups; resume with the recipe it was trained with");
  step_ = step.item<int64_t>();
  for (size_t g = 0; g < reached_.size(); ++g) reached_[g] = reached[int64_t(g)].item<double>();
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i].mask = masks[i].numel() ? masks[i].to(::torch::kFloat32) : ::torch::Tensor();
    ::torch::Tensor dense;
    layers_[i].dense = ::torch::Tensor();
    if (archive.try_read("dense." + layers_[i].name, dense)) {
      require_sound_tensor(dense, "the checkpoint's straight-through weights for layer " + layers_[i].name);
      if (dense.sizes() != layers_[i].weight.sizes() || !layers_[i].mask.defined())
        data_error("the checkpoint's straight-through weights for layer " + layers_[i].name +
                   " do not match its weight and mask; resume with the model it was trained with");
      layers_[i].dense = dense.to(::torch::kFloat32).contiguous();
    }
    ::torch::Tensor scores;
    const auto view = HeldMatrix(layers_[i].weight).view();
    const bool has_scores = archive.try_read("scores." + layers_[i].name, scores);
    if (has_scores) require_sound_tensor(scores, "the checkpoint's scores for layer " + layers_[i].name);
    if (has_scores && scores.dim() == 2 && scores.size(0) == int64_t(view.rows) &&
        scores.size(1) == int64_t(view.cols)) {
      MatrixF m(view.rows, view.cols);
      const auto src = scores.to(::torch::kFloat32).contiguous();
      std::copy_n(src.data_ptr<float>(), m.data.size(), m.data.begin());
      layers_[i].scores.restore(std::move(m));
    } else {
      layers_[i].scores.reset();  // an older checkpoint: scores are re-accumulated
    }
    if (layers_[i].inputs) restore_inputs(archive, layers_[i]);
  }
  ::torch::Tensor updates;  // an older checkpoint has no count: at least one update if any mask is set
  mask_updates_ =
      archive.try_read("mask_updates", updates)
          ? updates.item<int64_t>()
          : int64_t(std::any_of(layers_.begin(), layers_.end(), [](const auto& l) { return l.mask.defined(); }));
  pending_.assign(recipe_.groups.size(), false);
}

}  // namespace spruce::torch
