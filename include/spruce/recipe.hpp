// Pruning recipes in YAML, with Intel Neural Compressor's WeightPruningConfig keys:
//
//   target_sparsity: 0.9          pattern: "4x1"              pruning_type: snip_momentum
//   op_names: ["fc.*"]            excluded_op_names: ["head"] pruning_op_types: [Linear, Conv]
//   start_step: 0                 end_step: 1000              pruning_frequency: 100
//   pruning_scope: global         sparsity_decay_type: exp    criterion_reduce_type: mean
//   min_sparsity_ratio_per_op: 0  max_sparsity_ratio_per_op: 0.98
//   reg_type: group_lasso         reg_coeff: 0.0001
//   straight_through: true        straight_through_decay: 0.0002   # spruce's own (SR-STE)
//   gradual_nm: true                                               # spruce's own
//   pruning_configs:              # per-layer groups; each entry's keys override the ones above
//     - op_names: ["conv.*"]
//       pattern: "2:4"
//
// op_names and excluded_op_names are regular expressions searched in a layer's qualified name.
// Without pruning_configs there is one group, made of the top-level keys. With it, each entry is
// a group, and a layer is pruned by the first group that matches it; a layer no group matches is
// left dense. Unknown keys are errors that name the key and list the valid ones.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "spruce/criteria.hpp"
#include "spruce/mask.hpp"
#include "spruce/pattern.hpp"
#include "spruce/schedule.hpp"

namespace spruce {

struct PruningGroup {
  std::vector<std::string> op_names;  // empty: every layer
  std::vector<std::string> excluded_op_names;
  std::vector<std::string> op_types{"Linear", "Conv"};  // pruning_op_types
  Pattern pattern = Pattern::block(4, 1);
  Criterion criterion = Criterion::SnipMomentum;  // pruning_type
  Reduce reduce = Reduce::Mean;                   // criterion_reduce_type
  Scope scope = Scope::Global;                    // pruning_scope
  Schedule schedule;  // start_step, end_step, pruning_frequency, sparsity_decay_type, target
  GlobalLimits limits;
  bool group_lasso = false;  // reg_type: group_lasso
  double reg_coeff = 0.0;
  // Until end_step, pruned weights keep learning through the masked forward (straight-through
  // estimation, SR-STE: Zhou et al. 2021), so each mask update can bring them back; at end_step
  // the mask is final and pruned weights become zero. The decay shrinks the pruned weights' kept
  // values by that fraction per step (SR-STE's sparse-refined term, decoupled as in AdamW).
  bool straight_through = false;
  double straight_through_decay = 0.0;
  // An N:M pattern follows the schedule like a block pattern (gradual_nm_mask): the share of its
  // groups pruned to N:M grows to all of them at end_step. Without it N:M is set whole at start_step.
  bool gradual_nm = false;

  // The sparsity this group aims at: target_sparsity, or 1 - N/M for an N:M pattern.
  double target() const { return schedule.target; }
  // Under global scope (e.g. a --scope override), throws spruce::Error (usage) naming `source`
  // when the per-layer limits would keep the total from the target. Recipe::parse checks it.
  void check_global_limits(const std::string& source) const;
  // `op_type` is "Linear" or "Conv" (empty: any).
  bool matches(const std::string& op_name, std::string_view op_type = {}) const;
  bool operator==(const PruningGroup&) const = default;
};

struct Recipe {
  std::vector<PruningGroup> groups;

  // Throws spruce::Error (usage) naming the key, the value and what would be valid.
  static Recipe parse(std::string_view yaml_text, const std::string& source = "recipe");
  static Recipe load(const std::string& path);  // parse(read_text(path), path)
  // A recipe file's text; throws spruce::Error (usage) naming the file and the problem.
  static std::string read_text(const std::string& path);
  // For each group that parse() makes of valid recipe text, whether the text sets `key` for it, at
  // the top or in its pruning config (so that a named pruning_type can be told from the default).
  static std::vector<bool> groups_setting(std::string_view yaml_text, const std::string& key);
  // A recipe with one group from the command line's flags.
  static Recipe single(const Pattern& p, double sparsity);
  // The same from `--pattern P [--sparsity S]` (S NaN: not given): a block pattern needs S in
  // [0, 1); an N:M pattern fixes its own sparsity, and S, if given, must equal it. Throws
  // spruce::Error (usage) saying which flag to add or drop.
  static Recipe from_flags(std::string_view pattern, double sparsity);

  std::string to_yaml() const;
  const PruningGroup* group_for(const std::string& op_name, std::string_view op_type = {}) const;
  // With several groups (pruning_configs), throws spruce::Error (usage) naming the first group that
  // prunes none of `layers` (name and op type, "Linear" or "Conv"): its op_names select none of them
  // (a typo), or earlier groups take every layer it selects. Such a group used to be ignored.
  void check_every_group_used(const std::vector<std::pair<std::string, std::string>>& layers) const;

  static const std::vector<std::string>& valid_keys();
};

}  // namespace spruce
