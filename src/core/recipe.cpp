#include "spruce/recipe.hpp"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>

#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/name_pattern.hpp"

namespace spruce {
namespace {

const std::vector<std::string> kKeys = {"target_sparsity",
                                        "pattern",
                                        "pruning_type",
                                        "op_names",
                                        "excluded_op_names",
                                        "pruning_op_types",
                                        "start_step",
                                        "end_step",
                                        "pruning_frequency",
                                        "pruning_scope",
                                        "sparsity_decay_type",
                                        "criterion_reduce_type",
                                        "min_sparsity_ratio_per_op",
                                        "max_sparsity_ratio_per_op",
                                        "reg_type",
                                        "reg_coeff",
                                        "straight_through",
                                        "straight_through_decay",
                                        "gradual_nm",
                                        "pruning_configs"};

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

class Reader {
 public:
  explicit Reader(std::string source) : source_(std::move(source)) {}

  [[noreturn]] void fail(const std::string& key, const std::string& value, const std::string& valid) const {
    usage_error(source_ + ": key " + in_quotes(key) + ": value " + in_quotes(value) + " is invalid; valid: " + valid);
  }

  std::string text(const YAML::Node& n) const {
    if (n.IsScalar()) return n.Scalar();
    YAML::Emitter e;
    e << YAML::Flow << n;
    return e.c_str();
  }

  template <typename T>
  T scalar(const std::string& key, const YAML::Node& n, const std::string& valid) const {
    if (!n.IsScalar()) fail(key, text(n), valid);
    try {
      return n.as<T>();
    } catch (const YAML::Exception&) {
      fail(key, text(n), valid);
    }
  }

  double fraction(const std::string& key, const YAML::Node& n, bool allow_one) const {
    const std::string valid = allow_one ? "a number in [0, 1]" : "a number in [0, 1), e.g. 0.9";
    double v = scalar<double>(key, n, valid);
    if (!(v >= 0.0 && (allow_one ? v <= 1.0 : v < 1.0))) fail(key, text(n), valid);
    return v;
  }

  int64_t step(const std::string& key, const YAML::Node& n, int64_t min) const {
    const std::string valid = "an integer >= " + std::to_string(min);
    auto v = scalar<int64_t>(key, n, valid);
    if (v < min) fail(key, text(n), valid);
    return v;
  }

  std::vector<std::string> names(const std::string& key, const YAML::Node& n, bool regex) const {
    const std::string valid = regex ? "a list of regular expressions, e.g. [\"fc.*\"]" : "a list of names";
    std::vector<std::string> out;
    if (n.IsNull()) return out;
    if (n.IsScalar())
      out.push_back(n.Scalar());
    else if (n.IsSequence())
      for (const auto& x : n) {
        if (!x.IsScalar()) fail(key, text(n), valid);
        out.push_back(x.Scalar());
      }
    else
      fail(key, text(n), valid);
    if (regex)
      for (const auto& r : out) NamePattern(r, source_ + ": key '" + key + "':");
    return out;
  }

  template <typename Parse>
  auto choice(const std::string& key, const YAML::Node& n, Parse parse, const std::string& valid) const {
    if (!n.IsScalar()) fail(key, text(n), valid);
    try {
      return parse(n.Scalar());
    } catch (const Error&) {
      fail(key, n.Scalar(), valid);
    }
  }

  // Applies the keys of one mapping over `g`.
  void apply(const YAML::Node& map, PruningGroup& g, bool top_level, bool& target_given) const {
    if (!map.IsMap()) usage_error(source_ + ": expected a mapping of recipe keys, got " + in_quotes(text(map)));
    std::vector<std::string> seen;
    for (const auto& kv : map) {
      if (!kv.first.IsScalar())
        usage_error(source_ + ": a key is " + in_quotes(text(kv.first)) + ", not a name; valid keys: " + join(kKeys));
      const std::string key = kv.first.Scalar();
      const YAML::Node& v = kv.second;
      if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end())
        usage_error(source_ + ": unknown key " + in_quotes(key) + "; valid keys: " + join(kKeys));
      // YAML forbids it, yaml-cpp lets the last one win: which value was meant is unknown.
      if (std::find(seen.begin(), seen.end(), key) != seen.end())
        usage_error(source_ + ": key " + in_quotes(key) + " is given twice in one mapping; keep one");
      seen.push_back(key);
      if (key == "target_sparsity")
        g.schedule.target = fraction(key, v, false), target_given = true;
      else if (key == "pattern")
        g.pattern = choice(key, v, Pattern::parse, Pattern::help());
      else if (key == "pruning_type")
        g.criterion = choice(key, v, parse_criterion, criterion_names());
      else if (key == "op_names")
        g.op_names = names(key, v, true);
      else if (key == "excluded_op_names")
        g.excluded_op_names = names(key, v, true);
      else if (key == "pruning_op_types") {
        g.op_types = names(key, v, false);
        for (const auto& t : g.op_types)
          if (t != "Linear" && t != "Conv") fail(key, t, "Linear, Conv");
      } else if (key == "start_step")
        g.schedule.start_step = step(key, v, 0);
      else if (key == "end_step")
        g.schedule.end_step = step(key, v, 0);
      else if (key == "pruning_frequency")
        g.schedule.frequency = step(key, v, 1);
      else if (key == "pruning_scope")
        g.scope = choice(key, v, parse_scope, "local, global");
      else if (key == "sparsity_decay_type")
        g.schedule.decay = choice(key, v, parse_decay, "exp, cos, linear, cube");
      else if (key == "criterion_reduce_type")
        g.reduce = choice(key, v, parse_reduce, "mean, sum, max");
      else if (key == "min_sparsity_ratio_per_op")
        g.limits.min_ratio = fraction(key, v, true);
      else if (key == "max_sparsity_ratio_per_op")
        g.limits.max_ratio = fraction(key, v, true);
      else if (key == "reg_type") {
        const std::string t = v.IsNull() ? "none" : text(v);
        if (t != "group_lasso" && t != "none" && t != "null") fail(key, t, "group_lasso, none");
        g.group_lasso = t == "group_lasso";
      } else if (key == "reg_coeff") {
        g.reg_coeff = scalar<double>(key, v, "a number in [0, 1000], e.g. 0.0001");
        if (!(g.reg_coeff >= 0 && g.reg_coeff <= 1000)) fail(key, text(v), "a number in [0, 1000], e.g. 0.0001");
      } else if (key == "straight_through") {
        g.straight_through = scalar<bool>(key, v, "true, false");
      } else if (key == "straight_through_decay") {
        g.straight_through_decay = scalar<double>(key, v, "a number in [0, 1), e.g. 0.0002");
        if (!(g.straight_through_decay >= 0 && g.straight_through_decay < 1))
          fail(key, text(v), "a number in [0, 1), e.g. 0.0002");
      } else if (key == "gradual_nm") {
        g.gradual_nm = scalar<bool>(key, v, "true, false");
      } else if (key == "pruning_configs" && !top_level)
        usage_error(source_ + ": 'pruning_configs' cannot be nested inside a pruning_configs entry");
    }
  }

  void check(const PruningGroup& g, bool target_given) const {
    if (g.schedule.end_step < g.schedule.start_step)
      usage_error(source_ + ": end_step " + std::to_string(g.schedule.end_step) + " is before start_step " +
                  std::to_string(g.schedule.start_step) + "; set end_step >= start_step");
    if (g.straight_through && g.criterion == Criterion::SparseGpt)
      usage_error(source_ +
                  ": straight_through cannot be used with pruning_type sparsegpt, whose reconstruction rewrites "
                  "the kept weights at each update; use magnitude or wanda, or drop straight_through");
    if (g.straight_through_decay > 0 && !g.straight_through)
      usage_error(source_ +
                  ": straight_through_decay acts only with straight_through: true; add it, or drop the decay");
    if (g.gradual_nm && !g.pattern.is_nm())
      usage_error(source_ + ": gradual_nm acts only on N:M patterns such as 2:4, not " + g.pattern.str() +
                  "; block patterns follow the schedule already, so drop gradual_nm");
    if (g.gradual_nm && g.criterion == Criterion::SparseGpt)
      usage_error(source_ +
                  ": gradual_nm cannot be used with pruning_type sparsegpt, which sets N:M whole; use magnitude "
                  "or wanda, or drop gradual_nm");
    if (g.limits.min_ratio > g.limits.max_ratio)
      usage_error(source_ + ": min_sparsity_ratio_per_op is above max_sparsity_ratio_per_op");
    if (g.pattern.is_nm() && target_given && std::abs(g.schedule.target - g.pattern.natural_sparsity()) > 1e-9)
      usage_error(source_ + ": target_sparsity " + std::to_string(g.schedule.target) + " contradicts pattern " +
                  g.pattern.str() + ", whose sparsity is " + std::to_string(g.pattern.natural_sparsity()) +
                  "; leave target_sparsity out for N:M patterns");
  }

 private:
  std::string source_;
};

// YAML text is Unicode. yaml-cpp keeps stray bytes as they are but writes them back as U+FFFD,
// so a recipe holding them would not survive to_yaml() (which checkpoints store).
bool is_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const auto c = uint8_t(s[i]);
    const size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || s.size() - i < n) return false;
    uint32_t cp = n == 1 ? c : c & (0x7f >> n);
    for (size_t j = 1; j < n; ++j) {
      if ((uint8_t(s[i + j]) & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (uint8_t(s[i + j]) & 0x3f);
    }
    const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};  // shorter forms are overlong
    if (cp < least[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += n;
  }
  return true;
}

// "line 3, column 7", from yaml-cpp's zero-based mark.
std::string where(const YAML::Mark& mark) {
  if (mark.is_null()) return "an unknown place";
  return "line " + std::to_string(mark.line + 1) + ", column " + std::to_string(mark.column + 1);
}

// Whether YAML text holds a document after its first: a "---" marker line after content, or content
// after a "..." end line (YAML::Load reads the first and ignores the rest; yaml-cpp's LoadAll loops
// forever on some malformed input, found by the recipe fuzzer).
bool has_second_document(std::string_view text) {
  bool content = false, ended = false, marked = false;
  for (size_t begin = 0; begin < text.size();) {
    const size_t end = std::min(text.find('\n', begin), text.size());
    std::string_view line = text.substr(begin, end - begin);
    begin = end + 1;
    auto marker = [&](std::string_view m) {
      return line.substr(0, 3) == m && (line.size() == 3 || line[3] == ' ' || line[3] == '\t' || line[3] == '\r');
    };
    auto rest_is_blank = [](std::string_view r) {
      const size_t first = r.find_first_not_of(" \t\r");
      return first == std::string_view::npos || r[first] == '#';
    };
    if (marker("---")) {
      if (content || ended) return true;
      marked = true;
      content = !rest_is_blank(line.substr(3));
    } else if (!line.empty() && line[0] == '%' && !marked && !content && !ended) {
      // A directive (%YAML 1.2, %TAG) before the document's --- is not content.
    } else if (marker("...")) {
      ended = content || ended;
    } else if (!rest_is_blank(line)) {
      if (ended) return true;
      content = true;
    }
  }
  return false;
}

std::string percent_text(double fraction) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", fraction * 100.0);
  return buf;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

void finish(PruningGroup& g, const std::string& source) {
  if (g.pattern.is_nm()) g.schedule.target = g.pattern.natural_sparsity();
  if (g.scope == Scope::Global) g.check_global_limits(source);
}

Recipe parse_root(const YAML::Node& root, const std::string& source) {
  Reader reader(source);
  PruningGroup base;
  bool base_target = false;
  reader.apply(root, base, true, base_target);
  Recipe recipe;
  const YAML::Node configs = root["pruning_configs"];
  if (configs && !configs.IsNull() && !(configs.IsSequence() && configs.size() == 0)) {
    if (!configs.IsSequence())
      usage_error(source + ": key 'pruning_configs': expected a list of mappings, one per group of layers");
    for (const auto& entry : configs) {
      PruningGroup g = base;
      bool target = false;
      reader.apply(entry, g, false, target);
      reader.check(g, target || (base_target && !entry["pattern"]));
      finish(g, source);
      recipe.groups.push_back(std::move(g));
    }
  } else {
    reader.check(base, base_target);
    finish(base, source);
    recipe.groups.push_back(std::move(base));
  }
  return recipe;
}
}  // namespace

// One threshold, within the per-layer limits: limits on the wrong side of the target would
// silently replace it (N:M layers keep their own ratio and take no part).
void PruningGroup::check_global_limits(const std::string& source) const {
  if (pattern.is_nm()) return;
  if (limits.max_ratio < target() - 1e-9)
    usage_error(source + ": max_sparsity_ratio_per_op " + number_text(limits.max_ratio) + " is below target_sparsity " +
                number_text(target()) +
                ": under global scope no layer could reach the target, so the total would not; raise it or lower "
                "the target");
  if (limits.min_ratio > target() + 1e-9)
    usage_error(source + ": min_sparsity_ratio_per_op " + number_text(limits.min_ratio) + " is above target_sparsity " +
                number_text(target()) +
                ": under global scope every layer would pass the target; lower it or raise the target");
}

bool PruningGroup::matches(const std::string& name, std::string_view op_type) const {
  if (!op_type.empty() && std::find(op_types.begin(), op_types.end(), op_type) == op_types.end()) return false;
  auto any = [&](const std::vector<std::string>& res) {
    return std::any_of(res.begin(), res.end(),
                       [&](const std::string& r) { return NamePattern(r, "op_names").found_in(name); });
  };
  if (!op_names.empty() && !any(op_names)) return false;
  return !any(excluded_op_names);
}

Recipe Recipe::parse(std::string_view text, const std::string& source) {
  if (!is_utf8(text)) usage_error(source + ": not UTF-8 text; save the recipe as UTF-8");
  if (const size_t nul = text.find('\0'); nul != std::string_view::npos)
    usage_error(source + ": a NUL byte at offset " + std::to_string(nul) + "; a recipe is YAML text");
  if (has_second_document(text))
    usage_error(source +
                ": more than one YAML document (a --- or ... line after the first's content); a recipe "
                "is one, so drop or merge the others");
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::DeepRecursion& e) {
    usage_error(source + ": not valid YAML: nested " + std::to_string(e.depth()) +
                " levels deep (yaml-cpp's limit) by " + where(e.mark) + "; a recipe needs only a few levels");
  } catch (const YAML::Exception& e) {
    usage_error(source + ": not valid YAML: " + where(e.mark) + ": " + e.msg);
  }
  if (root.IsNull()) {
    const bool blank = std::all_of(text.begin(), text.end(), [](char c) { return std::isspace(uint8_t(c)); }) ||
                       text.find_first_not_of(" \t\r\n") == text.find('#');
    usage_error(source + (blank ? ": the recipe is empty; give at least target_sparsity and pattern"
                                : ": no YAML mapping could be read from it; a recipe maps keys to values, e.g. "
                                  "'pattern: 4x1'"));
  }
  try {
    return parse_root(root, source);
  } catch (const YAML::Exception& e) {  // a node of an unexpected kind that the checks above missed
    usage_error(source + ": " + in_quotes(e.msg) + " at line " + std::to_string(e.mark.line + 1));
  }
}

std::string Recipe::read_text(const std::string& path) {
  // A recipe is a few kilobytes; a huge file took seconds and gigabytes to parse before any check.
  constexpr uintmax_t kMaxBytes = 16u << 20;
  std::error_code ec;
  if (const uintmax_t size = std::filesystem::file_size(path, ec); !ec && size > kMaxBytes)
    usage_error("recipe: " + in_quotes(path) + " is " + std::to_string(size >> 20) +
                " MiB, and a recipe is a YAML file of at most 16 MiB; is it the right file?");
  try {
    return read_file(path);
  } catch (const Error& e) {
    usage_error(std::string("recipe: ") + e.what());
  }
}

Recipe Recipe::load(const std::string& path) { return parse(read_text(path), path); }

std::vector<bool> Recipe::groups_setting(std::string_view text, const std::string& key) {
  const YAML::Node root = YAML::Load(std::string(text));
  const bool at_top = root.IsMap() && root[key];
  const YAML::Node configs = root.IsMap() ? root["pruning_configs"] : YAML::Node();
  if (!configs || !configs.IsSequence() || configs.size() == 0) return {at_top};
  std::vector<bool> set;
  for (const auto& entry : configs) set.push_back(at_top || (entry.IsMap() && entry[key]));
  return set;
}

Recipe Recipe::from_flags(std::string_view pattern, double sparsity) {
  const Pattern p = Pattern::parse(pattern);
  const bool given = !std::isnan(sparsity);
  if (p.is_nm()) {
    if (given && std::abs(sparsity - p.natural_sparsity()) > 1e-9)
      usage_error("pattern " + p.str() + " (N:M: at most " + std::to_string(p.n()) + " nonzeros in every " +
                  std::to_string(p.m()) + " input channels) fixes the sparsity at " +
                  percent_text(p.natural_sparsity()) + "; drop --sparsity");
    return single(p, p.natural_sparsity());
  }
  if (!given) usage_error("pattern " + p.str() + " needs --sparsity, the fraction of zeros (e.g. 0.9)");
  if (!(sparsity >= 0.0 && sparsity < 1.0)) usage_error("--sparsity must be a fraction of zeros in [0, 1), e.g. 0.9");
  return single(p, sparsity);
}

Recipe Recipe::single(const Pattern& p, double sparsity) {
  PruningGroup g;
  g.pattern = p;
  g.schedule.target = p.is_nm() ? p.natural_sparsity() : sparsity;
  return Recipe{{g}};
}

namespace {
void emit_group(YAML::Emitter& e, const PruningGroup& g) {
  e << YAML::Key << "target_sparsity" << YAML::Value << g.schedule.target;
  e << YAML::Key << "pattern" << YAML::Value << g.pattern.str();
  e << YAML::Key << "pruning_type" << YAML::Value << to_string(g.criterion);
  e << YAML::Key << "op_names" << YAML::Value << YAML::Flow << g.op_names;
  e << YAML::Key << "excluded_op_names" << YAML::Value << YAML::Flow << g.excluded_op_names;
  e << YAML::Key << "pruning_op_types" << YAML::Value << YAML::Flow << g.op_types;
  e << YAML::Key << "start_step" << YAML::Value << g.schedule.start_step;
  e << YAML::Key << "end_step" << YAML::Value << g.schedule.end_step;
  e << YAML::Key << "pruning_frequency" << YAML::Value << g.schedule.frequency;
  e << YAML::Key << "pruning_scope" << YAML::Value << to_string(g.scope);
  e << YAML::Key << "sparsity_decay_type" << YAML::Value << to_string(g.schedule.decay);
  e << YAML::Key << "criterion_reduce_type" << YAML::Value << to_string(g.reduce);
  e << YAML::Key << "min_sparsity_ratio_per_op" << YAML::Value << g.limits.min_ratio;
  e << YAML::Key << "max_sparsity_ratio_per_op" << YAML::Value << g.limits.max_ratio;
  e << YAML::Key << "reg_type" << YAML::Value << (g.group_lasso ? "group_lasso" : "none");
  e << YAML::Key << "reg_coeff" << YAML::Value << g.reg_coeff;
  e << YAML::Key << "straight_through" << YAML::Value << g.straight_through;
  e << YAML::Key << "straight_through_decay" << YAML::Value << g.straight_through_decay;
  e << YAML::Key << "gradual_nm" << YAML::Value << g.gradual_nm;
}
}  // namespace

std::string Recipe::to_yaml() const {
  YAML::Emitter e;
  e.SetDoublePrecision(17);
  e << YAML::BeginMap;
  if (groups.size() == 1) {
    emit_group(e, groups[0]);
  } else {
    e << YAML::Key << "pruning_configs" << YAML::Value << YAML::BeginSeq;
    for (const auto& g : groups) {
      e << YAML::BeginMap;
      emit_group(e, g);
      e << YAML::EndMap;
    }
    e << YAML::EndSeq;
  }
  e << YAML::EndMap;
  return std::string(e.c_str()) + "\n";
}

const PruningGroup* Recipe::group_for(const std::string& name, std::string_view op_type) const {
  for (const auto& g : groups)
    if (g.matches(name, op_type)) return &g;
  return nullptr;
}

void Recipe::check_every_group_used(const std::vector<std::pair<std::string, std::string>>& layers) const {
  if (groups.size() < 2) return;
  for (size_t k = 0; k < groups.size(); ++k) {
    const PruningGroup* taker = nullptr;  // the earlier group that takes the first layer this one selects
    bool used = false;
    for (const auto& [name, op_type] : layers) {
      if (!groups[k].matches(name, op_type)) continue;
      const PruningGroup* first = group_for(name, op_type);
      used = first == &groups[k];
      if (used) break;
      if (!taker) taker = first;
    }
    if (used) continue;
    std::vector<std::string> names;
    for (const auto& n : groups[k].op_names) names.push_back(in_quotes(n, 60));
    const std::string which =
        "the recipe's pruning config " + std::to_string(k + 1) + " (op_names [" + join(names) + "])";
    if (taker)
      usage_error(which + " prunes no layer: pruning config " + std::to_string(taker - groups.data() + 1) +
                  " comes first and takes every layer it selects; put the narrower config first");
    std::string listed;  // what there was to select, so that a name that almost matches shows
    for (size_t i = 0; i < layers.size() && i < 8; ++i) listed += (i ? ", " : "") + in_quotes(layers[i].first, 60);
    if (layers.size() > 8) listed += " and " + std::to_string(layers.size() - 8) + " more";
    usage_error(which + " selects none of the model's layers (" + listed +
                "); fix its op_names, excluded_op_names or pruning_op_types");
  }
}

const std::vector<std::string>& Recipe::valid_keys() { return kKeys; }

}  // namespace spruce
