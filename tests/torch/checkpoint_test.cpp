// Checkpoints keep masks and the schedule position; resuming never silently loses sparsity.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <optional>

#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "tiny_net.hpp"

namespace spruce::test {
namespace {

namespace fs = std::filesystem;
using spruce::torch::MaskSource;
using spruce::torch::Pruner;

Recipe growing_recipe() {
  Recipe r = Recipe::single(Pattern::block(4, 1), 0.75);
  r.groups[0].excluded_op_names = {"head"};
  r.groups[0].schedule.start_step = 0;
  r.groups[0].schedule.end_step = 20;  // the checkpoint falls mid-schedule
  r.groups[0].schedule.frequency = 2;
  return r;
}

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("spruce-" + name + "-" + std::to_string(::getpid()));
  fs::create_directories(p);
  return p;
}

double zeros_of(const ::torch::Tensor& w) { return (w == 0).sum().item<double>() / double(w.numel()); }

TEST(Checkpoint, RoundTripKeepsMasksStepAndSparsity) {
  const fs::path dir = temp_dir("roundtrip");
  TinyData d = tiny_data();
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner pruner(net, growing_recipe());
  pruner.on_train_begin();
  for (int64_t step = 0; step < 11; ++step) train_step(net, opt, pruner, d, step);
  const double sparsity = pruner.sparsity();
  ASSERT_GT(sparsity, 0.2);
  spruce::torch::save_checkpoint((dir / "checkpoint.pt").string(), net, &opt, &pruner, {1, 11});

  ::torch::manual_seed(99);  // a different initialization that the checkpoint must overwrite
  TinyNet resumed;
  ::torch::optim::Adam resumed_opt(resumed.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner resumed_pruner(resumed, growing_recipe());
  auto position =
      spruce::torch::load_checkpoint((dir / "checkpoint.pt").string(), resumed, &resumed_opt, &resumed_pruner);
  EXPECT_EQ(position.epoch, 1);
  EXPECT_EQ(position.step, 11);
  EXPECT_EQ(resumed_pruner.step(), pruner.step());
  ASSERT_EQ(resumed_pruner.layers().size(), pruner.layers().size());
  for (size_t i = 0; i < pruner.layers().size(); ++i) {
    EXPECT_TRUE(::torch::equal(resumed_pruner.layers()[i].mask, pruner.layers()[i].mask)) << pruner.layers()[i].name;
    EXPECT_TRUE(::torch::equal(resumed_pruner.layers()[i].weight, pruner.layers()[i].weight))
        << pruner.layers()[i].name;
  }
  EXPECT_DOUBLE_EQ(resumed_pruner.sparsity(), sparsity);

  // Training on never lowers the sparsity, and the schedule still lands on its target.
  resumed_pruner.on_train_begin();
  for (int64_t step = 11; step < 24; ++step) {
    train_step(resumed, resumed_opt, resumed_pruner, d, step);
    EXPECT_GE(resumed_pruner.sparsity(), sparsity - 1e-12) << "sparsity fell after resuming, step " << step;
  }
  EXPECT_NEAR(resumed_pruner.sparsity(), 0.75, 0.01);
  fs::remove_all(dir);
}

TEST(Checkpoint, StraightThroughWeightsSurviveAResume) {
  const fs::path dir = temp_dir("straight-through");
  TinyData d = tiny_data();
  Recipe recipe = growing_recipe();
  recipe.groups[0].criterion = Criterion::Magnitude;
  recipe.groups[0].straight_through = true;
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner pruner(net, recipe);
  pruner.on_train_begin();
  for (int64_t step = 0; step < 7; ++step) train_step(net, opt, pruner, d, step);
  spruce::torch::save_checkpoint((dir / "checkpoint.pt").string(), net, &opt, &pruner, {1, 7});

  ::torch::manual_seed(99);
  TinyNet resumed;
  ::torch::optim::Adam resumed_opt(resumed.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner resumed_pruner(resumed, recipe);
  spruce::torch::load_checkpoint((dir / "checkpoint.pt").string(), resumed, &resumed_opt, &resumed_pruner);
  for (size_t i = 0; i < pruner.layers().size(); ++i) {
    const auto& kept = pruner.layers()[i].dense;
    ASSERT_TRUE(kept.defined() && resumed_pruner.layers()[i].dense.defined()) << pruner.layers()[i].name;
    EXPECT_TRUE(::torch::equal(resumed_pruner.layers()[i].dense, kept)) << pruner.layers()[i].name;
    EXPECT_GT(kept.masked_select(pruner.layers()[i].mask == 0).abs().sum().item<float>(), 0.0f);
  }
  // Both runs go on alike: the pruned weights' values were not lost.
  for (int64_t step = 7; step < 12; ++step) {
    train_step(net, opt, pruner, d, step);
    train_step(resumed, resumed_opt, resumed_pruner, d, step);
  }
  for (size_t i = 0; i < pruner.layers().size(); ++i) {
    EXPECT_TRUE(::torch::equal(resumed_pruner.layers()[i].mask, pruner.layers()[i].mask)) << pruner.layers()[i].name;
    EXPECT_TRUE(::torch::allclose(resumed_pruner.layers()[i].dense, pruner.layers()[i].dense, 1e-5, 1e-6))
        << pruner.layers()[i].name;
  }
  fs::remove_all(dir);
}

TEST(Checkpoint, SnipMomentumScoresSurviveAResume) {
  const fs::path dir = temp_dir("scores");
  TinyData d = tiny_data();
  Recipe recipe = growing_recipe();
  recipe.groups[0].criterion = Criterion::SnipMomentum;
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner pruner(net, recipe);
  pruner.on_train_begin();
  for (int64_t step = 0; step < 7; ++step) train_step(net, opt, pruner, d, step);
  ASSERT_TRUE(pruner.layers()[0].scores.ready());
  spruce::torch::save_checkpoint((dir / "checkpoint.pt").string(), net, &opt, &pruner, {1, 7});

  TinyNet resumed;
  ::torch::optim::Adam resumed_opt(resumed.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner resumed_pruner(resumed, recipe);
  spruce::torch::load_checkpoint((dir / "checkpoint.pt").string(), resumed, &resumed_opt, &resumed_pruner);
  for (size_t i = 0; i < pruner.layers().size(); ++i) {
    const auto& kept = pruner.layers()[i].scores;
    const auto& loaded = resumed_pruner.layers()[i].scores;
    ASSERT_TRUE(loaded.ready()) << pruner.layers()[i].name;
    EXPECT_EQ(loaded.scores().data, kept.scores().data) << pruner.layers()[i].name;
  }
  // The resumed run's next masks are the uninterrupted run's, bit for bit.
  resumed_pruner.on_train_begin();
  for (int64_t step = 7; step < 12; ++step) {
    train_step(net, opt, pruner, d, step);
    train_step(resumed, resumed_opt, resumed_pruner, d, step);
  }
  EXPECT_EQ(resumed_pruner.mask_checksum(), pruner.mask_checksum());
  fs::remove_all(dir);
}

TEST(Checkpoint, ResumingWithALongerScheduleNeverLowersSparsity) {
  const fs::path dir = temp_dir("longer");
  TinyData d = tiny_data();
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner pruner(net, growing_recipe());
  for (int64_t step = 0; step < 15; ++step) train_step(net, opt, pruner, d, step);
  const double sparsity = pruner.sparsity();
  spruce::torch::save_checkpoint((dir / "checkpoint.pt").string(), net, &opt, &pruner, {1, 15});

  Recipe longer = growing_recipe();
  longer.groups[0].schedule.end_step = 60;  // at step 15 this schedule asks for less than was reached
  TinyNet resumed;
  ::torch::optim::Adam resumed_opt(resumed.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner resumed_pruner(resumed, longer);
  spruce::torch::load_checkpoint((dir / "checkpoint.pt").string(), resumed, &resumed_opt, &resumed_pruner);
  resumed_pruner.on_train_begin();
  for (int64_t step = 15; step < 40; ++step) {
    train_step(resumed, resumed_opt, resumed_pruner, d, step);
    EXPECT_GE(resumed_pruner.sparsity(), sparsity - 1e-12) << "sparsity fell after resuming, step " << step;
  }
  fs::remove_all(dir);
}

// Trains `net` 22 steps on the growing recipe and saves it as dir/checkpoint.pt, with the
// pruner's masks or (weights only) without them; returns the path.
std::string save_pruned_run(const fs::path& dir, TinyNet& net, bool with_masks) {
  TinyData d = tiny_data();
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner pruner(net, growing_recipe());
  for (int64_t step = 0; step < 22; ++step) train_step(net, opt, pruner, d, step);
  const std::string path = (dir / "checkpoint.pt").string();
  spruce::torch::save_checkpoint(path, net, &opt, with_masks ? &pruner : nullptr, {2, 22});
  return path;
}

TEST(Checkpoint, APrunedRunIsNotResumedWithoutItsPruner) {
  const fs::path dir = temp_dir("pruner-missing");
  TinyNet net;
  const std::string path = save_pruned_run(dir, net, /*with_masks=*/true);

  TinyNet dense;
  ::torch::optim::Adam dense_opt(dense.parameters(), ::torch::optim::AdamOptions(1e-2));
  try {
    spruce::torch::load_checkpoint(path, dense, &dense_opt, /*pruner=*/nullptr);
    FAIL() << "a pruned run was resumed as a dense one";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("recipe"), std::string::npos) << e.what();
  }
  TinyNet evaluated;  // reading the weights for inference needs no pruner
  spruce::torch::load_checkpoint(path, evaluated, nullptr, nullptr);
  EXPECT_TRUE(evaluated.fc->weight.equal(net.fc->weight));
  fs::remove_all(dir);
}

TEST(Checkpoint, SparseWeightsWithoutMasksAreRefusedOrLocked) {
  const fs::path dir = temp_dir("maskless");
  TinyNet net;
  const std::string path = save_pruned_run(dir, net, /*with_masks=*/false);  // weights only
  TinyData d = tiny_data();

  TinyNet refused;
  Pruner refused_pruner(refused, growing_recipe());
  try {
    spruce::torch::load_checkpoint(path, refused, nullptr, &refused_pruner, MaskSource::Checkpoint);
    FAIL() << "a sparse checkpoint without masks was resumed silently";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("pattern lock"), std::string::npos) << e.what();
  }

  TinyNet locked;
  ::torch::optim::Adam locked_opt(locked.parameters(), ::torch::optim::AdamOptions(1e-2));
  Recipe lock_only = growing_recipe();
  lock_only.groups[0].schedule.start_step = lock_only.groups[0].schedule.end_step = 1000;  // never prunes
  Pruner locked_pruner(locked, lock_only);
  spruce::torch::load_checkpoint(path, locked, nullptr, &locked_pruner, MaskSource::LockZeros);
  const double sparsity = locked_pruner.sparsity();
  EXPECT_NEAR(sparsity, 0.75, 0.01);
  locked_pruner.on_train_begin();
  for (int64_t step = 0; step < 5; ++step) train_step(locked, locked_opt, locked_pruner, d, step);
  EXPECT_DOUBLE_EQ(locked_pruner.sparsity(), sparsity);
  fs::remove_all(dir);
}

TEST(Checkpoint, ExportsAreSafetensorsWithWeightsAndMasks) {
  const fs::path dir = temp_dir("export");
  TinyData d = tiny_data();
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  Pruner pruner(net, growing_recipe());
  for (int64_t step = 0; step < 21; ++step) train_step(net, opt, pruner, d, step);
  spruce::torch::export_safetensors((dir / "model.safetensors").string(), net, {{"spruce.model", "tiny"}});
  spruce::torch::export_masks((dir / "masks.safetensors").string(), pruner);

  const SafetensorsFile model = read_safetensors((dir / "model.safetensors").string());
  ASSERT_NE(model.find("fc.weight"), nullptr);
  ASSERT_NE(model.find("conv.weight"), nullptr);
  EXPECT_EQ(model.metadata.at("spruce.model"), "tiny");
  const std::vector<float> fc = model.find("fc.weight")->to_f32();
  EXPECT_NEAR(double(std::count(fc.begin(), fc.end(), 0.0f)) / double(fc.size()), zeros_of(net.fc->weight), 1e-12);

  const SafetensorsFile masks = read_safetensors((dir / "masks.safetensors").string());
  const Tensor* fc_mask = masks.find("fc.weight");
  ASSERT_NE(fc_mask, nullptr);
  EXPECT_EQ(fc_mask->dtype, DType::U8);
  EXPECT_EQ(masks.metadata.at("fc.weight.pattern"), "4x1");
  for (size_t i = 0; i < fc.size(); ++i) ASSERT_EQ(fc_mask->bytes[i] == 0, fc[i] == 0.0f) << "element " << i;

  // The export loads back into a fresh model.
  TinyNet loaded;
  spruce::torch::load_safetensors_weights((dir / "model.safetensors").string(), loaded);
  EXPECT_TRUE(::torch::equal(loaded.fc->weight, net.fc->weight));
  fs::remove_all(dir);
}

// What loading `path` into a fresh TinyNet (and pruner, when a recipe is given) says; "" if it loads.
std::string load_error(const std::string& path, const Recipe* recipe = nullptr) {
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  std::optional<Pruner> pruner;
  if (recipe) pruner.emplace(net, *recipe);
  try {
    spruce::torch::load_checkpoint(path, net, &opt, pruner ? &*pruner : nullptr);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A damaged file's tensors are checked before they are used: LibTorch takes their offsets,
// shapes and values as they come (a huge offset crashed eval; a wrong shape trained on).
TEST(Checkpoint, DamagedTensorsAreRefused) {
  const fs::path dir = temp_dir("damaged");
  const std::string path = (dir / "checkpoint.pt").string();
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  spruce::torch::save_checkpoint(path, net, &opt, nullptr, {1, 3});
  EXPECT_EQ(load_error(path), "");
  {
    ::torch::NoGradGuard no_grad;
    net.fc->weight[0][0] = std::nan("");
  }
  spruce::torch::save_checkpoint(path, net, &opt, nullptr, {1, 3});
  EXPECT_EQ(load_error(path),
            path + ": model.fc.weight holds NaN or infinity; the file is damaged, or its training diverged");
  {
    ::torch::NoGradGuard no_grad;
    net.fc->weight[0][0] = 0;
  }
  struct Wider : ::torch::nn::Module {  // another shape under the same names
    Wider() {
      register_module("conv", ::torch::nn::Conv2d(::torch::nn::Conv2dOptions(3, 8, 3).padding(1)));
      register_module("fc", ::torch::nn::Linear(8 * 6 * 6 / 2, 32));
      register_module("head", ::torch::nn::Linear(32, 4));
    }
  } wider;
  spruce::torch::save_checkpoint(path, wider, nullptr, nullptr, {1, 3});
  EXPECT_EQ(
      load_error(path),
      path + ": model.fc.weight is [32, 144] where the model's is [32, 288]; it is not a checkpoint of this model");
  struct Other : ::torch::nn::Module {  // another model: its parts are named
    Other() { register_module("body", ::torch::nn::Linear(2, 2)); }
  } other;
  spruce::torch::save_checkpoint(path, other, nullptr, nullptr, {1, 3});
  EXPECT_EQ(load_error(path), path +
                                  " has no part model.conv (it holds model.body); it is another model's checkpoint "
                                  "(was it trained with another --model?)");
  for (const auto& [epoch, step] : {std::pair<int64_t, int64_t>{-3, 2}, {5, 2}, {0, -1}}) {
    spruce::torch::save_checkpoint(path, net, nullptr, nullptr, {epoch, step});
    EXPECT_NE(load_error(path).find("is impossible; the file is damaged"), std::string::npos)
        << epoch << " " << step << ": " << load_error(path);
  }
  // A tensor whose offset points past its storage, as a damaged file can declare.
  auto outside = ::torch::zeros({4, 4});
  outside.unsafeGetTensorImpl()->set_storage_offset(2147483647);
  try {
    spruce::torch::require_sound_tensor(outside, "x.weight");
    ADD_FAILURE() << "accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "x.weight lies outside its storage; the file is damaged");
  }
  auto last_row = ::torch::zeros({4, 4});  // one element past the end
  last_row.unsafeGetTensorImpl()->set_storage_offset(1);
  EXPECT_THROW(spruce::torch::require_sound_tensor(last_row, "x"), Error);
  EXPECT_NO_THROW(spruce::torch::require_sound_tensor(::torch::zeros({8}).slice(0, 4), "x"));
  fs::remove_all(dir);
}

// A pruned run's masks must be masks, and its recipe the one it was pruned with: an edited
// recipe.yaml pruned on with another pattern while the masks kept the old one.
TEST(Checkpoint, DamagedMasksAndChangedRecipesAreRefused) {
  const fs::path dir = temp_dir("masks");
  const std::string path = (dir / "checkpoint.pt").string();
  TinyData d = tiny_data();
  TinyNet net;
  ::torch::optim::Adam opt(net.parameters(), ::torch::optim::AdamOptions(1e-2));
  const Recipe recipe = growing_recipe();
  Pruner pruner(net, recipe);
  pruner.on_train_begin();
  for (int64_t step = 0; step < 5; ++step) train_step(net, opt, pruner, d, step);
  spruce::torch::save_checkpoint(path, net, &opt, &pruner, {1, 5});
  EXPECT_EQ(load_error(path, &recipe), "");
  Recipe other = recipe;
  other.groups[0].pattern = Pattern::block(1, 4);
  EXPECT_EQ(load_error(path, &other), path +
                                          ": the checkpoint's masks follow pattern 4x1, and the recipe now says 1x4; "
                                          "resume with its pattern, or start a new run");
  other = recipe;  // a longer schedule to a higher target goes on from the masks
  other.groups[0].schedule.end_step = 40;
  other.groups[0].schedule.target = 0.9;
  EXPECT_EQ(load_error(path, &other), "");
  auto& fc = const_cast<::torch::Tensor&>(pruner.layers()[1].mask);
  ASSERT_TRUE(fc.defined());
  const auto kept = fc.clone();
  fc.mul_(255);
  spruce::torch::save_checkpoint(path, net, &opt, &pruner, {1, 5});
  EXPECT_NE(load_error(path, &recipe).find("holds values other than 0 and 1"), std::string::npos);
  fc.zero_();
  spruce::torch::save_checkpoint(path, net, &opt, &pruner, {1, 5});
  EXPECT_NE(load_error(path, &recipe).find("removes every weight of the layer"), std::string::npos);
  fc.copy_(kept);
  fs::remove_all(dir);
}

TEST(Checkpoint, MissingFileIsADataError) {
  TinyNet net;
  try {
    spruce::torch::load_checkpoint("/nonexistent/checkpoint.pt", net, nullptr, nullptr);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Data);
  }
}

}  // namespace
}  // namespace spruce::test
