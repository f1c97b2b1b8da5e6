#include "spruce/prune_checkpoint.hpp"

#include <algorithm>
#include <iomanip>
#include <sstream>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/name_pattern.hpp"

namespace spruce {
namespace {

struct Candidate {
  size_t tensor;
  const PruningGroup* group;
  MatrixF scores;
};

// The mask, in the view's [OC][IC] order, moved to the tensor's storage order.
std::vector<uint8_t> storage_keep(const Mask& mask, const std::vector<int64_t>& shape) {
  TensorMatrixMap map(shape);
  std::vector<uint8_t> keep(mask.data.size());
  for (int64_t r = 0; r < mask.rows; ++r)
    for (int64_t c = 0; c < mask.cols; ++c) keep[size_t(map.offset(r, c))] = mask(r, c);
  return keep;
}

}  // namespace

std::string not_a_weight(const Tensor& t) {
  if (!is_prunable(t.dtype)) return "dtype " + to_string(t.dtype) + " is carried through";
  if (t.shape.size() != 2 && t.shape.size() != 4) return "rank " + std::to_string(t.shape.size()) + " is not a weight";
  if (t.numel() == 0) return "empty";
  return "";
}

double tensor_sparsity(const Tensor& t) {
  const int64_t n = t.numel();
  if (n == 0) return 0.0;
  int64_t zeros = 0;
  if (is_prunable(t.dtype) || t.dtype == DType::F64) {
    for (float v : t.to_f32()) zeros += (v == 0.f);
  } else {
    const size_t es = dtype_size(t.dtype);
    for (int64_t i = 0; i < n; ++i) {
      const uint8_t* p = t.bytes.data() + size_t(i) * es;
      zeros += std::all_of(p, p + es, [](uint8_t b) { return b == 0; });
    }
  }
  return double(zeros) / double(n);
}

std::vector<TensorPruneReport> prune_checkpoint(SafetensorsFile& file, const CheckpointPruneOptions& opt) {
  const bool has_include = !opt.include.empty(), has_exclude = !opt.exclude.empty();
  const NamePattern include(opt.include, "--include"), exclude(opt.exclude, "--exclude");

  std::vector<TensorPruneReport> reports;
  std::vector<Candidate> candidates;
  std::vector<std::pair<std::string, std::string>> layers;  // the weights a recipe group may select
  for (size_t i = 0; i < file.tensors.size(); ++i) {
    const Tensor& t = file.tensors[i];
    TensorPruneReport r;
    r.name = t.name;
    r.shape = t.shape;
    r.dtype = t.dtype;
    const PruningGroup* g = nullptr;
    r.reason = not_a_weight(t);
    if (!r.reason.empty()) {
      // carried through as it is
    } else if (has_include && !include.found_in(t.name)) {
      r.reason = "not matched by --include";
    } else if (has_exclude && exclude.found_in(t.name)) {
      r.reason = "matched by --exclude";
    } else {
      // A recipe names layers, as in training (fc1 for fc1.weight), so one recipe serves both.
      const std::string layer = t.name.ends_with(".weight") ? t.name.substr(0, t.name.size() - 7) : t.name;
      const char* op_type = t.shape.size() == 2 ? "Linear" : "Conv";
      layers.emplace_back(layer, op_type);
      if (!(g = opt.recipe.group_for(layer, op_type))) r.reason = "no recipe group matches";
    }
    if (g) {
      r.pruned = true;
      r.pattern = g->pattern.str();
      r.target = g->target();
      if (const int64_t cols = t.numel() / t.shape[0], m = g->pattern.is_nm() ? g->pattern.m() : 0;
          m > 0 && cols % m != 0) {
        const int64_t tail = cols % m, kept = std::min<int64_t>(tail, g->pattern.n());
        r.note = "the last " + std::to_string(tail) + " of " + std::to_string(cols) +
                 " input channels are a partial group of " + std::to_string(m) + ", which keeps " +
                 (kept == tail ? std::string("them all") : std::to_string(kept));
      }
      if (g->target() > 0)
        require_blocks_fit(g->pattern, t.shape[0], t.numel() / t.shape[0], in_quotes(t.name),
                           "leave the tensor out (--exclude, or the recipe's excluded_op_names)");
      const std::vector<float> values = t.to_f32();
      require_finite(opt.source, t, values,
                     "magnitude pruning needs finite weights (or leave the tensor out with --exclude)");
      MatrixF w = to_matrix(values.data(), t.shape);
      MatrixF scores(w.rows, w.cols);
      element_scores(Criterion::Magnitude, w.view(), {}, scores.view());
      candidates.push_back({i, g, std::move(scores)});
    }
    reports.push_back(std::move(r));
  }

  opt.recipe.check_every_group_used(layers);

  const auto precise = [](double v) {  // 0.9999999999, not std::to_string's 1.000000
    std::ostringstream o;
    o << std::setprecision(12) << v;
    return o.str();
  };
  size_t removed = 0;  // weights the masks remove, over every tensor
  auto apply = [&](const Candidate& c, const Mask& mask) {
    Tensor& t = file.tensors[c.tensor];
    const size_t kept = size_t(std::count(mask.data.begin(), mask.data.end(), uint8_t{1}));
    removed += mask.data.size() - kept;
    t.zero_where(storage_keep(mask, t.shape));
  };
  // Global groups share one threshold per group; local tensors are pruned alone.
  for (const auto& g : opt.recipe.groups) {
    const Scope scope = opt.scope.value_or(g.scope);
    std::vector<const Candidate*> members;
    for (const auto& c : candidates)
      if (c.group == &g) members.push_back(&c);
    if (members.empty()) continue;
    if (scope == Scope::Local) {
      for (const Candidate* c : members) {
        const Mask mask = local_mask(g.pattern, c->scores.view(), g.target(), g.reduce);
        // A target below 1 that rounds to every block leaves a tensor of zeros, a broken layer.
        if (g.target() > 0 && std::find(mask.data.begin(), mask.data.end(), uint8_t{1}) == mask.data.end())
          usage_error("sparsity " + precise(g.target()) + " removes every block of " +
                      in_quotes(file.tensors[c->tensor].name) + "; give a lower sparsity");
        apply(*c, mask);
      }
    } else {
      std::vector<GlobalTensor> in;
      for (const Candidate* c : members) in.push_back({g.pattern, c->scores.view()});
      auto masks = global_masks(in, g.target(), g.limits, g.reduce);
      for (size_t k = 0; k < members.size(); ++k) apply(*members[k], masks[k]);
    }
  }
  // A target that rounds to no block anywhere (0, or 1e-300) would write a copy of the input.
  if (!candidates.empty() && removed == 0)
    usage_error(
        "the pattern and sparsity remove no block of any tensor, so the output would be a copy of the "
        "input; give a larger sparsity");
  for (size_t i = 0; i < reports.size(); ++i) reports[i].sparsity = tensor_sparsity(file.tensors[i]);
  return reports;
}

}  // namespace spruce
