#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "spruce/error.hpp"
#include "spruce/recipe.hpp"

using namespace spruce;

namespace {
// The message of the usage error that parsing `yaml` throws.
std::string error_of(const std::string& yaml) {
  try {
    Recipe::parse(yaml, "r.yaml");
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage);
    return e.what();
  }
  ADD_FAILURE() << "accepted:\n" << yaml;
  return "";
}
bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }
}  // namespace

TEST(Recipe, DefaultsFollowIntelNeuralCompressor) {
  const Recipe r = Recipe::parse("target_sparsity: 0.8\n");
  ASSERT_EQ(r.groups.size(), 1u);
  const auto& g = r.groups[0];
  EXPECT_DOUBLE_EQ(g.target(), 0.8);
  EXPECT_EQ(g.pattern, Pattern::block(4, 1));
  EXPECT_EQ(g.criterion, Criterion::SnipMomentum);
  EXPECT_EQ(g.scope, Scope::Global);
  EXPECT_EQ(g.schedule.decay, Decay::Exp);
  EXPECT_DOUBLE_EQ(g.limits.max_ratio, 0.98);
}

TEST(Recipe, ReadsEveryKeyAndRoundTrips) {
  const std::string yaml = R"(
target_sparsity: 0.85
pattern: 4x16
pruning_type: magnitude
op_names: ["fc.*", "layer[0-9]+\\.dense"]
excluded_op_names: [head]
pruning_op_types: [Linear]
start_step: 10
end_step: 1010
pruning_frequency: 50
pruning_scope: local
sparsity_decay_type: cube
criterion_reduce_type: max
min_sparsity_ratio_per_op: 0.1
max_sparsity_ratio_per_op: 0.95
reg_type: group_lasso
reg_coeff: 0.0002
straight_through: true
straight_through_decay: 0.001
)";
  const Recipe r = Recipe::parse(yaml);
  const auto& g = r.groups.at(0);
  EXPECT_EQ(g.pattern, Pattern::block(4, 16));
  EXPECT_EQ(g.criterion, Criterion::Magnitude);
  EXPECT_EQ(g.op_names.size(), 2u);
  EXPECT_EQ(g.schedule.start_step, 10);
  EXPECT_EQ(g.schedule.end_step, 1010);
  EXPECT_EQ(g.schedule.frequency, 50);
  EXPECT_EQ(g.scope, Scope::Local);
  EXPECT_EQ(g.schedule.decay, Decay::Cube);
  EXPECT_EQ(g.reduce, Reduce::Max);
  EXPECT_DOUBLE_EQ(g.limits.min_ratio, 0.1);
  EXPECT_TRUE(g.group_lasso);
  EXPECT_DOUBLE_EQ(g.reg_coeff, 0.0002);
  EXPECT_TRUE(g.straight_through);
  EXPECT_DOUBLE_EQ(g.straight_through_decay, 0.001);
  EXPECT_FALSE(Recipe::parse("target_sparsity: 0.8\n").groups[0].straight_through);
  const Recipe gradual = Recipe::parse("pattern: '2:4'\nend_step: 100\ngradual_nm: true\n");
  EXPECT_TRUE(gradual.groups.at(0).gradual_nm);
  EXPECT_FALSE(Recipe::parse("pattern: '2:4'\n").groups[0].gradual_nm);
  EXPECT_EQ(Recipe::parse(gradual.to_yaml()).groups, gradual.groups);
  EXPECT_TRUE(g.matches("fc1"));
  EXPECT_TRUE(g.matches("encoder.layer11.dense"));
  EXPECT_FALSE(g.matches("head"));
  EXPECT_FALSE(g.matches("fc1", "Conv"));
  EXPECT_EQ(Recipe::parse(r.to_yaml()).groups, r.groups);
}

TEST(Recipe, PruningConfigsOverrideTheTopLevelPerGroup) {
  const Recipe r = Recipe::parse(R"(
target_sparsity: 0.9
pattern: 4x1
pruning_configs:
  - op_names: ["conv"]
    pattern: "2:4"
  - op_names: ["fc"]
    target_sparsity: 0.7
)");
  ASSERT_EQ(r.groups.size(), 2u);
  EXPECT_EQ(r.groups[0].pattern, Pattern::n_of_m(2, 4));
  EXPECT_DOUBLE_EQ(r.groups[0].target(), 0.5);  // N:M fixes its own sparsity
  EXPECT_EQ(r.groups[1].pattern, Pattern::block(4, 1));
  EXPECT_DOUBLE_EQ(r.groups[1].target(), 0.7);
  EXPECT_EQ(r.group_for("conv1"), &r.groups[0]);
  EXPECT_EQ(r.group_for("fc2"), &r.groups[1]);
  EXPECT_EQ(r.group_for("embedding"), nullptr);
  EXPECT_EQ(Recipe::parse(r.to_yaml()).groups, r.groups);
}

TEST(Recipe, GroupsSettingTellsANamedKeyFromADefault) {
  using V = std::vector<bool>;
  EXPECT_EQ(Recipe::groups_setting("target_sparsity: 0.5\npattern: 4x1\n", "pruning_type"), V{false});
  EXPECT_EQ(Recipe::groups_setting("target_sparsity: 0.5\npruning_type: snip_momentum\n", "pruning_type"), V{true});
  const std::string two = "target_sparsity: 0.5\npruning_configs:\n  - op_names: [a]\n  - pruning_type: magnitude\n";
  EXPECT_EQ(Recipe::groups_setting(two, "pruning_type"), (V{false, true}));
  EXPECT_EQ(Recipe::groups_setting("pruning_type: gradient\n" + two, "pruning_type"), (V{true, true}));
  EXPECT_EQ(Recipe::parse(two).groups.size(), 2u);
  EXPECT_EQ(Recipe::groups_setting("target_sparsity: 0.5\nop_names: [pruning_type]\n", "pruning_type"), V{false});
}

TEST(Recipe, UnknownKeysNameTheKeyAndListTheValidOnes) {
  const std::string e = error_of("target_sparsity: 0.9\ntarget_sparsty: 0.8\n");
  EXPECT_TRUE(contains(e, "target_sparsty")) << e;
  EXPECT_TRUE(contains(e, "pruning_frequency")) << e;
  EXPECT_TRUE(contains(e, "r.yaml")) << e;
  EXPECT_TRUE(contains(error_of("pruning_configs:\n  - op_names: [a]\n    patern: 4x1\n"), "patern"));
}

// yaml-cpp lets the last of two equal keys win; YAML forbids them, and which was meant is unknown.
TEST(Recipe, AKeyGivenTwiceInOneMappingIsRefused) {
  const std::string e = error_of("pattern: 4x1\ntarget_sparsity: 0.5\ntarget_sparsity: 0.6\n");
  EXPECT_TRUE(contains(e, "key 'target_sparsity' is given twice")) << e;
  EXPECT_TRUE(contains(e, "r.yaml")) << e;
  EXPECT_TRUE(contains(error_of("pruning_configs:\n  - op_names: [a]\n    pattern: 4x1\n    pattern: 1x4\n"),
                       "key 'pattern' is given twice"));
  // The same key at the top and in a group is an override, not a repeat.
  EXPECT_NO_THROW(Recipe::parse("pattern: 4x1\npruning_configs:\n  - op_names: [a]\n    pattern: 1x4\n", "r.yaml"));
}

TEST(Recipe, BadValuesNameTheKeyTheValueAndWhatIsValid) {
  struct Case {
    std::string yaml, key, value, valid;
  };
  for (const Case& c : std::vector<Case>{
           {"target_sparsity: 1.5", "target_sparsity", "1.5", "[0, 1)"},
           {"target_sparsity: lots", "target_sparsity", "lots", "[0, 1)"},
           {"pattern: 4x0", "pattern", "4x0", "RxC"},
           {"pruning_type: taylor", "pruning_type", "taylor", "snip_momentum"},
           {"pruning_scope: layer", "pruning_scope", "layer", "local, global"},
           {"sparsity_decay_type: step", "sparsity_decay_type", "step", "cube"},
           {"pruning_frequency: 0", "pruning_frequency", "0", ">= 1"},
           {"start_step: -3", "start_step", "-3", ">= 0"},
           {"op_names: ['fc(']", "op_names", "fc(", "regular expression"},
           {"reg_type: l1", "reg_type", "l1", "group_lasso"},
           {"reg_coeff: -1", "reg_coeff", "-1", "[0, 1000]"},
           {"reg_coeff: .inf", "reg_coeff", ".inf", "[0, 1000]"},
           {"reg_coeff: 1e308", "reg_coeff", "1e308", "[0, 1000]"},
           {"pruning_op_types: [Embedding]", "pruning_op_types", "Embedding", "Linear, Conv"},
           {"max_sparsity_ratio_per_op: 2", "max_sparsity_ratio_per_op", "2", "[0, 1]"},
           {"straight_through: maybe", "straight_through", "maybe", "true, false"},
           {"straight_through: true\nstraight_through_decay: 1", "straight_through_decay", "1", "[0, 1)"},
           {"straight_through: true\nstraight_through_decay: -0.1", "straight_through_decay", "-0.1", "[0, 1)"},
           {"pattern: '2:4'\ngradual_nm: often", "gradual_nm", "often", "true, false"},
       }) {
    const std::string e = error_of(c.yaml);
    EXPECT_TRUE(contains(e, "'" + c.key + "'")) << e;
    EXPECT_TRUE(contains(e, c.value)) << e;
    EXPECT_TRUE(contains(e, c.valid)) << e;
  }
}

TEST(Recipe, InconsistentSettingsAreErrors) {
  EXPECT_TRUE(contains(error_of("start_step: 100\nend_step: 10"), "end_step"));
  EXPECT_TRUE(contains(error_of("min_sparsity_ratio_per_op: 0.9\nmax_sparsity_ratio_per_op: 0.5"),
                       "min_sparsity_ratio_per_op"));
  EXPECT_TRUE(contains(error_of("pattern: '2:4'\ntarget_sparsity: 0.9"), "contradicts"));
  EXPECT_TRUE(contains(error_of("pruning_configs:\n  - pruning_configs: []"), "nested"));
  EXPECT_TRUE(contains(error_of("pruning_configs: 3"), "pruning_configs"));
  EXPECT_TRUE(contains(error_of("pruning_type: sparsegpt\nstraight_through: true"), "sparsegpt"));
  EXPECT_TRUE(contains(error_of("straight_through_decay: 0.01"), "straight_through: true"));
  // Global limits on the wrong side of the target would silently replace it.
  EXPECT_TRUE(contains(error_of("target_sparsity: 0.9\nmax_sparsity_ratio_per_op: 0.1"), "below target_sparsity"));
  EXPECT_TRUE(contains(error_of("target_sparsity: 0.1\nmin_sparsity_ratio_per_op: 0.9"), "above target_sparsity"));
  const Recipe local = Recipe::parse("target_sparsity: 0.9\npruning_scope: local\nmax_sparsity_ratio_per_op: 0.1");
  try {  // a --scope global override checks what the recipe's local scope did not
    local.groups[0].check_global_limits("--scope global");
    ADD_FAILURE() << "limits below the target passed under global scope";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "--scope global: max_sparsity_ratio_per_op 0.1 is below target_sparsity 0.9"))
        << e.what();
  }
  EXPECT_NO_THROW(Recipe::parse("pattern: '2:4'\nmax_sparsity_ratio_per_op: 0.1"));  // N:M keeps its own ratio
  // A recipe is one YAML document of text: nothing after a NUL byte or a --- is ignored.
  EXPECT_TRUE(contains(error_of(std::string("pattern: 4x1\0\ntarget_sparsity: 0.5\n", 35)), "NUL byte at offset 12"));
  EXPECT_TRUE(contains(error_of("pattern: 4x1\ntarget_sparsity: 0.5\n---\nbogus: 1\n"), "more than one YAML"));
  EXPECT_TRUE(contains(error_of("pattern: 4x1\n---\nbogus: [\n"), "more than one YAML"));
  EXPECT_TRUE(contains(error_of("pattern: 4x1\n...\ntarget_sparsity: 0.5\n"), "more than one YAML"));
  EXPECT_EQ(Recipe::parse("# a recipe\n---\npattern: 4x1\ntarget_sparsity: 0.5\n...\n").groups[0].target(), 0.5);
  EXPECT_EQ(Recipe::parse("--- {pattern: 4x1, target_sparsity: 0.5}\n").groups[0].target(), 0.5);
  // Directives come before a document's ---, and are not a document of their own.
  EXPECT_EQ(Recipe::parse("%YAML 1.2\n---\npattern: 4x1\ntarget_sparsity: 0.5\n").groups[0].target(), 0.5);
  EXPECT_EQ(Recipe::parse("%TAG ! tag:x.org,2000:\n---\npattern: 4x1\ntarget_sparsity: 0.5\n").groups[0].target(), 0.5);
  EXPECT_TRUE(
      contains(error_of("pattern: 4x1\ntarget_sparsity: 0.5\n...\n%YAML 1.2\n---\nbogus: 1\n"), "more than one YAML"));
  EXPECT_EQ(Recipe::parse("pattern: 4x1\ntarget_sparsity: 0.5\nop_names: ['---x']\n").groups[0].target(), 0.5);
  // Found by the fuzzer: yaml-cpp's LoadAll never returned on this text.
  EXPECT_TRUE(contains(error_of(",y: .]\n"), "no YAML mapping"));
  EXPECT_TRUE(contains(error_of("pattern: 4x1\ngradual_nm: true"), "only on N:M"));
  EXPECT_TRUE(contains(error_of("pattern: '2:4'\npruning_type: sparsegpt\ngradual_nm: true"), "sparsegpt"));
  EXPECT_TRUE(contains(error_of("[1, 2]"), "mapping"));
  EXPECT_TRUE(contains(error_of("a: [b"), "YAML"));
  EXPECT_TRUE(contains(error_of("a: [1, 2\nb: 3\n"), "not valid YAML: line 2, column 2: end of sequence flow"));
  const std::string deep = "pattern: " + std::string(5000, '[') + std::string(5000, ']');
  EXPECT_TRUE(contains(error_of(deep), "levels deep (yaml-cpp's limit) by line 1, column"));
  EXPECT_TRUE(contains(error_of(""), "empty"));
  EXPECT_THROW(Recipe::load("/nonexistent/recipe.yaml"), Error);
  // A recipe is a few kilobytes: a file of 17 MiB is refused before it is read, let alone parsed.
  // Named per process: ctest runs this suite under every ISA cap at once.
  const std::string huge =
      (std::filesystem::temp_directory_path() / ("spruce-huge-recipe-" + std::to_string(::getpid()) + ".yaml"))
          .string();
  std::ofstream(huge) << "# comment\n";
  std::filesystem::resize_file(huge, 17u << 20);
  try {
    Recipe::load(huge);
    ADD_FAILURE() << "a 17 MiB recipe was read";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "is 17 MiB, and a recipe is a YAML file of at most 16 MiB")) << e.what();
  }
  std::filesystem::remove(huge);
}

// Found by tests/fuzz/recipe_fuzz: yaml-cpp read a stray byte as it was and to_yaml() wrote it
// back as U+FFFD, so the recipe a checkpoint stored was not the one that pruned it.
TEST(Recipe, TextMustBeUtf8) {
  EXPECT_TRUE(contains(error_of("op_names: [\"fc\xaf\"]"), "UTF-8"));
  EXPECT_TRUE(contains(error_of("op_names: [\"\xc0\xae\"]"), "UTF-8"));      // an overlong '.'
  EXPECT_TRUE(contains(error_of("op_names: [\"\xed\xa0\x80\"]"), "UTF-8"));  // a surrogate
  EXPECT_TRUE(contains(error_of("op_names: [\"\xf0\x9f\x8c\"]"), "UTF-8"));  // cut short
  const Recipe r = Recipe::parse("op_names: [\"caf\xc3\xa9\", \"\xf0\x9f\x8c\xb2\"]");
  EXPECT_EQ(r.groups[0].op_names, (std::vector<std::string>{"caf\xc3\xa9", "\xf0\x9f\x8c\xb2"}));
  EXPECT_EQ(Recipe::parse(r.to_yaml()).groups, r.groups);
}

// Found by tests/fuzz/recipe_fuzz: a key that is a mapping or a list ("? end_step: 1010") threw
// YAML::TypedBadConversion, which no caller catches, instead of a usage error.
TEST(Recipe, KeysThatAreNotNamesAreUsageErrors) {
  EXPECT_TRUE(contains(error_of("target_sparsity: 0.5\n? end_step: 1010\n"), "not a name"));
  EXPECT_TRUE(contains(error_of("[a, b]: 1\n"), "valid keys"));
  EXPECT_TRUE(contains(error_of("pruning_configs:\n  - {? [x]: 1}\n"), "not a name"));
  EXPECT_TRUE(contains(error_of("~: 1\n"), "not a name"));  // a null key
}
