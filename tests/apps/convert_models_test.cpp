// The applications' models through the library's convert() and converted-model files: DLRM (both
// MLPs and the embedding tables) and the Fashion-MNIST CNN (conv layers). Runs under every ISA cap
// (it dispatches kernels), as the library's convert and model-file suites do.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>
#include <filesystem>
#include <string>

#include "dlrm/dlrm.hpp"
#include "fashion_mnist/eval.hpp"
#include "fashion_mnist/models.hpp"
#include "spruce/error.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/model_file.hpp"

using namespace spruce;
using namespace spruce::torch;
using namespace spruce::dlrm;
using spruce::fashion_mnist::make_model;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("spruce_app_models_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

ConvertOptions options(Variant v) {
  ConvertOptions o;
  o.variant = v;
  return o;
}

TEST(Convert, DlrmInt8KeepsItsRanking) {
  ::torch::manual_seed(6);
  Dlrm model(50);
  const ClickData data = make_synthetic_clicks(128, 7, 2026, 50);
  ::torch::NoGradGuard g;
  const auto want = model->forward(data.dense, data.sparse);
  convert(*model, options(Variant::Int8Sparse), [&] { model->forward(data.dense, data.sparse); });
  const auto got = model->forward(data.dense, data.sparse);
  EXPECT_LT(((got - want).norm() / want.norm()).item<double>(), 0.05);
}

TEST(ModelFile, DlrmTablesAndBothStacksRoundTrip) {
  TempDir dir;
  ::torch::manual_seed(5);
  const ClickData clicks = make_synthetic_clicks(96, 3, 2026, 50);
  Dlrm model(50);
  model->eval();
  ConvertOptions o;
  o.fallback = Fallback::Never;
  convert(*model, o, [&] { model->forward(clicks.dense, clicks.sparse); });
  ::torch::NoGradGuard g;
  const auto want = model->forward(clicks.dense, clicks.sparse);
  const std::string path = dir.file("dlrm.safetensors");
  save_converted_model(path, *model, {{"model", "dlrm"}});
  ::torch::manual_seed(6);
  Dlrm loaded(50);
  loaded->eval();
  EXPECT_EQ(load_converted_model(path, *loaded).layers.size(), 8u);
  EXPECT_TRUE(::torch::equal(loaded->forward(clicks.dense, clicks.sparse), want));
}

TEST(ModelFile, CnnConvLayersRoundTrip) {
  TempDir dir;
  ::torch::manual_seed(40);
  auto model = make_model("cnn");
  model->eval();
  const auto images = ::torch::rand({16, 1, 28, 28});
  ConvertOptions o;
  o.fallback = Fallback::Never;
  ::torch::NoGradGuard g;
  const auto report = convert(*model, o, [&] { model->forward(images); });
  ASSERT_EQ(report.size(), 4u);
  EXPECT_EQ(report[1].name, "conv2");
  EXPECT_EQ(report[1].in_features, 16 * 9);
  const auto want = model->forward(images);
  const std::string path = dir.file("cnn.safetensors");
  save_converted_model(path, *model, {{"model", "cnn"}});
  auto loaded = make_model("cnn");
  loaded->eval();
  const auto layers = load_converted_model(path, *loaded).layers;
  EXPECT_EQ(layers.size(), 4u);
  EXPECT_TRUE(::torch::equal(loaded->forward(images), want));
  // `spruce eval` labels a loaded file by its metadata's variant, which must agree with its layers.
  fashion_mnist::check_variant_label("int8-sparse", layers, path);
  fashion_mnist::check_variant_label("converted", layers, path);
  auto refusal = [&](const std::string& label) {
    try {
      fashion_mnist::check_variant_label(label, layers, path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(refusal("fp32-sparse"), path +
                                        ": metadata 'variant' says fp32-sparse but layer 'conv1' is int8-sparse; "
                                        "convert the model again");
  // An int8-dense model has no sparse layer (the label alone was compared as INT8 or not).
  EXPECT_EQ(refusal("int8-dense"), path +
                                       ": metadata 'variant' says int8-dense but layer 'conv1' is int8-sparse; "
                                       "convert the model again");
  EXPECT_EQ(refusal("int9-sparse"), path +
                                        ": metadata 'variant' 'int9-sparse' is not fp32-sparse, int8-sparse or "
                                        "int8-dense; convert the model again");
}

}  // namespace
