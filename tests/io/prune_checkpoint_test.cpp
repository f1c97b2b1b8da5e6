#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/prune_checkpoint.hpp"

using namespace spruce;

namespace {

Tensor random_f32(const std::string& name, std::vector<int64_t> shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d;
  int64_t n = 1;
  for (auto s : shape) n *= s;
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return Tensor::from_f32(name, std::move(shape), v.data());
}

// Same values, stored as BF16 (truncated) or F16 bytes picked at random in the normal range.
Tensor random_16bit(const std::string& name, DType dtype, std::vector<int64_t> shape, uint64_t seed) {
  std::mt19937_64 rng(seed);
  Tensor t{name, dtype, std::move(shape), {}};
  t.bytes.resize(size_t(t.numel()) * 2);
  for (size_t i = 0; i < t.bytes.size(); i += 2) {
    uint16_t bits = dtype == DType::F16 ? uint16_t(0x2000 + rng() % 0x3000) : uint16_t(0x3c00 + rng() % 0x0600);
    if (rng() & 1) bits |= 0x8000;
    std::memcpy(&t.bytes[i], &bits, 2);
  }
  return t;
}

SafetensorsFile checkpoint() {
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}};
  f.tensors.push_back(random_f32("fc1.weight", {64, 48}, 1));
  f.tensors.push_back(random_f32("fc1.bias", {64}, 2));
  f.tensors.push_back(random_f32("conv.weight", {16, 8, 3, 3}, 3));
  f.tensors.push_back(random_16bit("fc2.weight", DType::BF16, {32, 64}, 4));
  f.tensors.push_back(random_16bit("fc3.weight", DType::F16, {36, 20}, 5));
  f.tensors.push_back(Tensor{"ids", DType::I32, {2, 2}, std::vector<uint8_t>(16, 7)});
  return f;
}

CheckpointPruneOptions options(const char* pattern, double s) {
  CheckpointPruneOptions o;
  o.recipe = Recipe::single(Pattern::parse(pattern), s);
  o.recipe.groups[0].scope = Scope::Local;
  return o;
}

}  // namespace

TEST(PruneCheckpoint, KeptWeightsAreBitIdenticalAndOthersByteIdentical) {
  for (const char* ps : {"4x1", "1x4", "4x16", "2:4", "1x1", "channelx1", "1xchannel"}) {
    SCOPED_TRACE(ps);
    const SafetensorsFile before = checkpoint();
    SafetensorsFile after = before;
    const auto reports = prune_checkpoint(after, options(ps, 0.75));
    const Pattern p = Pattern::parse(ps);
    for (size_t k = 0; k < before.tensors.size(); ++k) {
      const Tensor& a = before.tensors[k];
      const Tensor& b = after.tensors[k];
      ASSERT_EQ(a.bytes.size(), b.bytes.size());
      if (!reports[k].pruned) {
        EXPECT_EQ(a.bytes, b.bytes) << a.name;
        continue;
      }
      const size_t es = dtype_size(a.dtype);
      int64_t zeroed = 0;
      for (size_t i = 0; i < a.bytes.size(); i += es) {
        const bool is_zero =
            std::all_of(b.bytes.begin() + long(i), b.bytes.begin() + long(i + es), [](uint8_t x) { return x == 0; });
        if (is_zero)
          ++zeroed;
        else
          EXPECT_EQ(0, std::memcmp(&a.bytes[i], &b.bytes[i], es)) << a.name << " element " << i / es;
      }
      const MatrixF w = to_matrix(b.to_f32().data(), b.shape);
      EXPECT_TRUE(follows_pattern(p, w.view())) << a.name;
      EXPECT_NEAR(reports[k].sparsity, p.is_nm() ? 0.5 : 0.75, 0.06) << a.name;
    }
    EXPECT_FALSE(reports[1].pruned);  // bias
    EXPECT_FALSE(reports[5].pruned);  // I32
  }
}

// An N:M pattern over a width that is not a multiple of M leaves a partial group at the end, which
// keeps up to N: the report says so, as the achieved sparsity falls short of the target.
TEST(PruneCheckpoint, APartialNmGroupIsNoted) {
  SafetensorsFile f;
  f.tensors.push_back(random_f32("a.weight", {8, 6}, 11));   // 6 = 4 + 2: the tail keeps both
  f.tensors.push_back(random_f32("b.weight", {8, 7}, 12));   // 7 = 4 + 3: the tail keeps 2 of 3
  f.tensors.push_back(random_f32("c.weight", {8, 16}, 13));  // whole groups
  const auto reports = prune_checkpoint(f, options("2:4", 0.5));
  ASSERT_EQ(reports.size(), 3u);
  EXPECT_EQ(reports[0].note, "the last 2 of 6 input channels are a partial group of 4, which keeps them all");
  EXPECT_NEAR(reports[0].sparsity, 2.0 / 6, 1e-9);
  EXPECT_EQ(reports[1].note, "the last 3 of 7 input channels are a partial group of 4, which keeps 2");
  EXPECT_NEAR(reports[1].sparsity, 3.0 / 7, 1e-9);
  EXPECT_EQ(reports[2].note, "");
  EXPECT_NEAR(reports[2].sparsity, 0.5, 1e-9);
}

TEST(PruneCheckpoint, ConvWeightsArePrunedInTheirChannelsLastView) {
  SafetensorsFile f = checkpoint();
  prune_checkpoint(f, options("1x4", 0.5));
  const Tensor& conv = *f.find("conv.weight");
  // 1x4 blocks run along the view's input dimension, IC fastest: (kh,kw) fixed, 4 input channels.
  const MatrixF w = to_matrix(conv.to_f32().data(), conv.shape);
  EXPECT_TRUE(follows_pattern(Pattern::block(1, 4), w.view()));
  const auto raw = conv.to_f32();
  MatrixF storage_order(16, 72);
  std::copy(raw.begin(), raw.end(), storage_order.data.begin());
  EXPECT_FALSE(follows_pattern(Pattern::block(1, 4), storage_order.view()));
}

TEST(PruneCheckpoint, IncludeExcludeAndRecipeGroupsPickTensors) {
  SafetensorsFile f = checkpoint();
  auto o = options("4x1", 0.5);
  o.include = "fc";
  o.exclude = "fc3";
  const auto r = prune_checkpoint(f, o);
  EXPECT_TRUE(r[0].pruned);
  EXPECT_FALSE(r[2].pruned);
  EXPECT_TRUE(r[3].pruned);
  EXPECT_FALSE(r[4].pruned);
  EXPECT_EQ(r[4].reason, "matched by --exclude");
  o.include = std::string("fc(");
  EXPECT_THROW(prune_checkpoint(f, o), Error);

  SafetensorsFile g = checkpoint();
  CheckpointPruneOptions byrecipe;
  byrecipe.recipe = Recipe::parse("pattern: 4x1\ntarget_sparsity: 0.9\npruning_op_types: [Conv]\n");
  const auto rr = prune_checkpoint(g, byrecipe);
  EXPECT_FALSE(rr[0].pruned);
  EXPECT_TRUE(rr[2].pruned);
  EXPECT_EQ(rr[0].reason, "no recipe group matches");
}

// A recipe names layers as training does (fc1, not fc1.weight), so one recipe serves `spruce
// prune` and `spruce train`; `^fc1$` selected nothing here.
TEST(PruneCheckpoint, RecipesNameLayersAsInTraining) {
  SafetensorsFile f = checkpoint();
  CheckpointPruneOptions o;
  o.recipe = Recipe::parse(
      "pattern: 4x1\npruning_scope: local\npruning_configs:\n  - op_names: ['^fc1$']\n    target_sparsity: 0.5\n"
      "  - op_names: ['^conv$']\n    target_sparsity: 0.25\n");
  const auto r = prune_checkpoint(f, o);
  EXPECT_TRUE(r[0].pruned);
  EXPECT_DOUBLE_EQ(r[0].target, 0.5);
  EXPECT_TRUE(r[2].pruned);
  EXPECT_DOUBLE_EQ(r[2].target, 0.25);
  EXPECT_FALSE(r[3].pruned);
  // A config that selects nothing lists the layers it could have.
  o.recipe = Recipe::parse(
      "pattern: 4x1\ntarget_sparsity: 0.5\npruning_configs:\n  - op_names: ['^fc1$']\n  - op_names: ['^fc_2$']\n");
  try {
    SafetensorsFile g = checkpoint();
    prune_checkpoint(g, o);
    ADD_FAILURE() << "a config that selects nothing was taken";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("selects none of the model's layers ('fc1', 'conv', 'fc2', 'fc3')"),
              std::string::npos)
        << e.what();
  }
}

// The one rule for "is this a weight" (prune_checkpoint and `spruce inspect` both use it).
TEST(PruneCheckpoint, WeightsAreFloatTensorsOfRankTwoOrFour) {
  const SafetensorsFile f = checkpoint();
  SafetensorsFile pruned = f;
  const auto r = prune_checkpoint(pruned, options("4x1", 0.5));
  for (size_t k = 0; k < f.tensors.size(); ++k) {
    EXPECT_EQ(is_weight(f.tensors[k]), r[k].pruned) << f.tensors[k].name;
    EXPECT_EQ(not_a_weight(f.tensors[k]), r[k].reason) << f.tensors[k].name;
  }
  EXPECT_EQ(not_a_weight(f.tensors[1]), "rank 1 is not a weight");
  EXPECT_EQ(not_a_weight(f.tensors[5]), "dtype I32 is carried through");
  EXPECT_EQ(not_a_weight(Tensor{"e", DType::F32, {0, 4}, {}}), "empty");
  EXPECT_FALSE(is_weight(random_f32("w3", {2, 3, 4}, 6)));
  EXPECT_TRUE(is_weight(random_f32("w4", {2, 3, 1, 1}, 7)));
}

TEST(PruneCheckpoint, GlobalScopeReachesTheOverallTarget) {
  SafetensorsFile f = checkpoint();
  auto o = options("4x1", 0.8);
  o.scope = Scope::Global;
  const auto r = prune_checkpoint(f, o);
  double zeros = 0, total = 0;
  for (const auto& t : r)
    if (t.pruned) {
      int64_t n = 1;
      for (auto d : t.shape) n *= d;
      zeros += t.sparsity * double(n);
      total += double(n);
    }
  EXPECT_NEAR(zeros / total, 0.8, 0.01);
}

// A NaN or Inf has no magnitude to rank: the tensor is refused by name, not pruned at random.
TEST(PruneCheckpoint, NonFiniteWeightsAreRefusedByName) {
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    SafetensorsFile f = checkpoint();
    std::vector<float> values = f.tensors[0].to_f32();
    values[77] = bad;
    f.tensors[0] = Tensor::from_f32("fc1.weight", {64, 48}, values.data());
    auto o = options("4x1", 0.5);
    o.source = "model.safetensors";
    try {
      prune_checkpoint(f, o);
      FAIL() << "a weight of " << bad << " was pruned";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(e.kind(), ErrorKind::Data);
      for (const char* part : {"model.safetensors", "'fc1.weight'", std::isnan(bad) ? "NaN" : "Inf", "element 77"})
        EXPECT_NE(m.find(part), std::string::npos) << part << " missing from: " << m;
    }
    o.exclude = "^fc1\\.";  // the fix the message names
    EXPECT_NO_THROW(prune_checkpoint(f, o));
  }
}
