// Converted models saved to one file and loaded back: bit-exact outputs, packed weights adopted
// without repacking, and every kind of bad file rejected with a message that names it.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>

#include "spruce/error.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/model_file.hpp"

using namespace spruce;
using namespace spruce::torch;
namespace fs = std::filesystem;

namespace {

// A LayerStack plus a tensor outside it, so both kinds of state travel through the file.
struct Net : ::torch::nn::Module {
  LayerStack stack{nullptr};
  ::torch::Tensor shift;
  explicit Net(std::vector<int64_t> widths) {
    stack = register_module("mlp", LayerStack(widths, false));
    shift = register_parameter("shift", ::torch::randn({widths.front()}));
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return stack->forward(x + shift); }
};

// Zeroes 4x1 blocks (4 output channels x 1 input channel) below the magnitude quantile.
void prune_4x1(const ::torch::Tensor& w, double sparsity) {
  ::torch::NoGradGuard g;
  const auto blocks = w.abs().view({w.size(0) / 4, 4, w.size(1)}).sum(1);
  const auto threshold = std::get<0>(blocks.flatten().kthvalue(int64_t(double(blocks.numel()) * sparsity)));
  w.mul_((blocks > threshold).to(::torch::kFloat).repeat_interleave(4, 0));
}

const std::vector<int64_t> kWidths{40, 64, 32, 8};

Net converted_net(Variant v, const ::torch::Tensor& calibration) {
  ::torch::manual_seed(11);
  Net net(kWidths);
  for (size_t i = 0; i + 1 < net.stack->size(); ++i) prune_4x1(net.stack->linear(i)->weight, 0.8);
  ConvertOptions o;
  o.variant = v;
  // Pin the path: under Auto each copy times sparse against oneDNN itself, and the two paths'
  // f32 epilogues may differ in the last bit.
  if (v != Variant::Int8Dense) o.fallback = Fallback::Never;
  convert(net, o, [&] { net.forward(calibration); });
  return net;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("spruce_model_file_" + std::to_string(::getpid()));
  TempDir() { fs::create_directories(path); }
  ~TempDir() { fs::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "not one line: " << e.what();
  }
}

TEST(ModelFile, RoundTripIsBitExactForEveryVariant) {
  TempDir dir;
  const auto calibration = ::torch::randn({64, 40});
  const auto x = ::torch::randn({37, 40});
  for (Variant v : {Variant::F32Sparse, Variant::Int8Sparse, Variant::Int8Dense}) {
    SCOPED_TRACE(to_string(v));
    ::torch::NoGradGuard g;
    Net net = converted_net(v, calibration);
    const auto want = net.forward(x);
    const std::string path = dir.file(to_string(v) + ".safetensors");
    save_converted_model(path, net, {{"model", "net"}, {"variant", to_string(v)}});
    EXPECT_EQ(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator()), 1 + int(v))
        << "a temporary file was left behind";

    ::torch::manual_seed(99);  // different initial weights: everything must come from the file
    Net loaded(kWidths);
    const LoadedModel info = load_converted_model(path, loaded, 2);
    EXPECT_EQ(info.metadata.at("model"), "net");
    EXPECT_EQ(info.metadata.at("variant"), to_string(v));
    ASSERT_EQ(info.layers.size(), 3u);
    EXPECT_EQ(info.layers[0].name, "mlp.0");
    EXPECT_EQ(info.layers[0].variant, to_string(v));
    EXPECT_EQ(info.repacked, 0) << "the packed strips were not adopted";
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(loaded.stack->linear(i), nullptr);
    const auto got = loaded.forward(x);
    EXPECT_TRUE(::torch::equal(got, want)) << (got - want).abs().max();
  }
}

class BadFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    ::torch::NoGradGuard g;
    Net net = converted_net(Variant::Int8Sparse, ::torch::randn({64, 40}));
    save_converted_model(good, net, {{"model", "net"}});
  }
  // Loads `path` into a fresh model of `widths`.
  static void load(const std::string& path, std::vector<int64_t> widths = kWidths) {
    Net net(std::move(widths));
    load_converted_model(path, net);
  }
  // Rewrites the good file with one change.
  std::string edited(const std::string& name, const std::function<void(SafetensorsFile&)>& edit) {
    SafetensorsFile f = read_safetensors(good);
    edit(f);
    const std::string path = dir.file(name);
    write_safetensors(path, f);
    return path;
  }
  TempDir dir;
  std::string good = dir.file("good.safetensors");
};

TEST_F(BadFiles, TruncatedFile) {
  const std::string path = dir.file("truncated.safetensors");
  fs::copy_file(good, path);
  fs::resize_file(path, fs::file_size(path) / 2);
  expect_error([&] { load(path); }, path);
}

TEST_F(BadFiles, NotAModelFile) {
  const auto path = edited("plain.safetensors", [](SafetensorsFile& f) { f.metadata.clear(); });
  expect_error([&] { load(path); }, "not a spruce converted-model file");
  const auto future = edited("future.safetensors",
                             [](SafetensorsFile& f) { f.metadata["spruce.format"] = "spruce-converted-model/9"; });
  expect_error([&] { load(future); }, "convert the model again");
}

TEST_F(BadFiles, ModelOfAnotherShape) {
  expect_error([&] { load(good, {40, 64, 16, 8}); }, "build the model it was converted from");
  expect_error([&] { load(good, {40, 64, 32, 8, 4}); }, "is missing");  // mlp.3 stays a Linear
}

TEST_F(BadFiles, CorruptPackedWeights) {
  const auto path = edited("corrupt.safetensors", [](SafetensorsFile& f) {
    Tensor* k = f.find("mlp.1.packed.strip_k");
    ASSERT_NE(k, nullptr);
    const int32_t far = 1 << 20;
    std::memcpy(k->bytes.data(), &far, sizeof far);
  });
  expect_error([&] { load(path); }, "layer 'mlp.1': packed weights are corrupt");
}

TEST_F(BadFiles, MissingAndExtraTensors) {
  const auto missing = edited("missing.safetensors", [](SafetensorsFile& f) {
    std::erase_if(f.tensors, [](const Tensor& t) { return t.name == "mlp.2.packed.w_scales"; });
  });
  expect_error([&] { load(missing); }, "tensor 'mlp.2.packed.w_scales' is missing");
  const auto extra = edited("extra.safetensors", [](SafetensorsFile& f) {
    f.tensors.push_back(Tensor::from_f32("stray", {1}, std::vector<float>{1.0f}.data()));
  });
  expect_error([&] { load(extra); }, "tensor 'stray' is not part of this model");
}

TEST_F(BadFiles, BrokenLayerRecords) {
  const auto json =
      edited("json.safetensors", [](SafetensorsFile& f) { f.metadata["spruce.layers"] = "[{\"name\": "; });
  expect_error([&] { load(json); }, "'spruce.layers' is not valid JSON");
  const auto kernel = edited("kernel.safetensors", [](SafetensorsFile& f) {
    auto& text = f.metadata["spruce.layers"];
    const auto at = text.find("s8-spmm-");
    ASSERT_NE(at, std::string::npos);
    text.replace(at, 8, "s9-spmm-");
  });
  expect_error([&] { load(kernel); }, "convert the model again");
}

// int8-dense names the INT8 layer that always runs oneDNN: a record may not claim it for a layer
// whose fallback lets the sparse kernel run, nor int8-sparse for one that never does.
TEST_F(BadFiles, VariantMustGoWithFallback) {
  const auto path = edited("variant.safetensors", [](SafetensorsFile& f) {
    auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
    ASSERT_EQ(layers[0]["variant"], "int8-sparse");
    layers[0]["variant"] = "int8-dense";
    f.metadata["spruce.layers"] = layers.dump();
  });
  expect_error([&] { load(path); }, "variant 'int8-dense' does not go with fallback 'never'");
}

// A layer's u8 codes are read by the next with the next's scale and zero point: the two must agree
// (an edited x_zero_point ran with exit 0 at 10% accuracy), and the last layer gives f32.
TEST_F(BadFiles, RequantizedOutputsMustMatchTheirReader) {
  const auto shifted = edited("zero-point.safetensors", [](SafetensorsFile& f) {
    auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
    ASSERT_EQ(layers[0]["output"], "u8");
    ASSERT_EQ(layers[1]["name"], "mlp.1");
    layers[1]["x_zero_point"] = (layers[1]["x_zero_point"].get<int>() + 1) % 256;
    f.metadata["spruce.layers"] = layers.dump();
  });
  expect_error([&] { load(shifted); }, "layer 'mlp.0' gives u8 codes with y_scale");
  const auto last = edited("last.safetensors", [](SafetensorsFile& f) {
    auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
    ASSERT_EQ(layers[2]["output"], "f32");
    layers[2]["output"] = "u8";
    layers[2]["y_scale"] = 0.1;
    layers[2]["y_zero_point"] = 0;
    f.metadata["spruce.layers"] = layers.dump();
  });
  expect_error([&] { load(last); }, "layer 'mlp.2' gives u8 codes, but no INT8 layer reads them");
}

// A layer that fuses another activation than the model has after it is the file's fault, and named
// with it when the model loads (it was found only at the first forward pass, without the file).
TEST_F(BadFiles, FusedActivationMustBeTheModels) {
  const auto path = edited("gelu.safetensors", [](SafetensorsFile& f) {
    auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
    ASSERT_EQ(layers[0]["activation"], "relu");
    layers[0]["activation"] = "gelu";
    f.metadata["spruce.layers"] = layers.dump();
  });
  expect_error([&] { load(path); }, path + ": layer 'mlp.0' applies gelu where the model has relu after it");
}

// The model's layers have biases, so the file must hold them (a missing one ran without).
TEST_F(BadFiles, MissingBiasIsAnError) {
  const auto path = edited("no-bias.safetensors", [](SafetensorsFile& f) {
    std::erase_if(f.tensors, [](const Tensor& t) { return t.name == "mlp.0.packed.bias"; });
  });
  expect_error([&] { load(path); }, "tensor 'mlp.0.packed.bias' is missing");
}

// Non-finite values would reach every output of the layer (a NaN bias scored 10% accuracy).
TEST_F(BadFiles, NonFiniteBiasOrWeights) {
  const auto poisoned = [&](const std::string& name, const std::string& tensor, float value, size_t element) {
    return edited(name, [&](SafetensorsFile& f) {
      Tensor* t = f.find(tensor);
      ASSERT_NE(t, nullptr);
      ASSERT_GT(t->bytes.size(), (element + 1) * sizeof value);
      std::memcpy(t->bytes.data() + element * sizeof value, &value, sizeof value);
    });
  };
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  expect_error([&] { load(poisoned("b1.safetensors", "mlp.2.packed.bias", nan, 3)); },
               "tensor 'mlp.2.packed.bias' holds NaN at element 3");
  expect_error([&] { load(poisoned("b2.safetensors", "mlp.0.packed.bias", -inf, 0)); },
               "tensor 'mlp.0.packed.bias' holds Inf at element 0");
  // FP32 packed weights: their values are an F32 array of the packing.
  ::torch::NoGradGuard g;
  Net net = converted_net(Variant::F32Sparse, ::torch::randn({64, 40}));
  save_converted_model(good, net, {{"model", "net"}});
  expect_error([&] { load(poisoned("w.safetensors", "mlp.1.packed.strip_w", inf, 0)); },
               "tensor 'mlp.1.packed.strip_w' holds Inf at element 0 (1 values are not finite); a converted layer's");
}

// Layer records are small: a crafted "tuned" map of 200,000 buckets took 32 s to load, each insert
// into an ordered object searching it.
TEST_F(BadFiles, OversizedRecords) {
  const auto with_tuned = [&](const std::string& name, int buckets) {
    return edited(name, [&](SafetensorsFile& f) {
      auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
      nlohmann::json tuned = nlohmann::json::object();
      for (int b = 1; b <= buckets; ++b) tuned[std::to_string(b)] = "sparse";
      layers[0]["tuned"] = tuned;
      f.metadata["spruce.layers"] = layers.dump();
    });
  };
  expect_error([&] { load(with_tuned("big.safetensors", 200000)); },
               "'spruce.layers' holds an object of 200000 fields; a layer record has at most 64");
  EXPECT_NO_THROW(load(with_tuned("fine.safetensors", 13)));
  const auto deep = edited("deep.safetensors", [](SafetensorsFile& f) {
    auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
    layers[0]["tuned"] = nlohmann::json::parse("{\"1\": [[[[[\"sparse\"]]]]]}");
    f.metadata["spruce.layers"] = layers.dump();
  });
  expect_error([&] { load(deep); }, "is nested deeper than layer records are");
}

// A layer's "route" (AMX hosts: which kernel each tuned bucket of m takes) must name a bucket and
// "amx" or "vnni"; a well-formed one loads on any host.
TEST_F(BadFiles, BrokenRoutes) {
  const auto with_route = [&](const std::string& name, const nlohmann::json& route) {
    return edited(name, [&](SafetensorsFile& f) {
      auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
      for (auto& layer : layers) layer["route"] = route;
      f.metadata["spruce.layers"] = layers.dump();
    });
  };
  expect_error([&] { load(with_route("r1.safetensors", 5)); }, "'route' is not an object");
  const char* must = "'route' must map batch-size buckets (>= 1) to \"amx\" or \"vnni\"";
  expect_error([&] { load(with_route("r2.safetensors", {{"16", "avx"}})); }, must);
  expect_error([&] { load(with_route("r3.safetensors", {{"0", "amx"}})); }, must);
  expect_error([&] { load(with_route("r4.safetensors", {{"8x", "vnni"}})); }, must);
  expect_error([&] { load(with_route("r5.safetensors", {{"16", 1}})); }, must);
  EXPECT_NO_THROW(load(with_route("ok.safetensors", {{"1", "vnni"}, {"128", "amx"}})));
}

// Integers that overflow their field are refused, not narrowed; scales must be finite and usable.
TEST_F(BadFiles, MetadataOutOfRange) {
  struct Case {
    const char* key;
    nlohmann::json value;
    const char* message;
  };
  const Case cases[] = {{"x_zero_point", int64_t(1) << 40, "out of range"},
                        {"x_zero_point", 256, "outside [0, 255]"},
                        {"x_zero_point", -1, "outside [0, 255]"},
                        {"x_zero_point", 3.5, "is not an integer"},
                        {"strip_h", (int64_t(1) << 32) + 4, "packed weights are corrupt: tile"},
                        {"strip_h", 0, "packed weights are corrupt: tile"},
                        {"strip_kg", -4, "packed weights are corrupt: tile"},
                        {"strip_kg", 1e300, "is not an integer"},
                        {"kernel", 7, "has the wrong type"},
                        {"x_scale", 1e39, "is not a finite f32"},
                        {"x_scale", 0.0, "is not a usable scale"},
                        {"x_scale", -0.5, "is not a usable scale"},
                        {"x_scale", 1e-40, "is not a usable scale"},
                        {"y_scale", 1e-39, "is not a usable scale"},
                        {"x_scale", "0.1", "is not a number"}};
  int i = 0;
  for (const Case& c : cases) {
    const auto path = edited("range" + std::to_string(i++) + ".safetensors", [&](SafetensorsFile& f) {
      auto layers = nlohmann::json::parse(f.metadata["spruce.layers"]);
      for (auto& layer : layers) {
        if (layer.contains(c.key)) layer[c.key] = c.value;
        if (layer["packed"].contains(c.key)) layer["packed"][c.key] = c.value;  // the packed weights' record
      }
      f.metadata["spruce.layers"] = layers.dump();
    });
    expect_error([&] { load(path); }, c.message);
  }
  const auto scales = edited("w_scales.safetensors", [](SafetensorsFile& f) {
    Tensor* t = f.find("mlp.1.packed.w_scales");
    ASSERT_NE(t, nullptr);
    const float inf = std::numeric_limits<float>::infinity();
    std::memcpy(t->bytes.data(), &inf, sizeof inf);
  });
  expect_error([&] { load(scales); }, "a w_scale");
}

// Bytes appended to a model file make it a file the format does not describe.
TEST_F(BadFiles, AppendedBytes) {
  const std::string path = dir.file("appended.safetensors");
  fs::copy_file(good, path);
  std::ofstream(path, std::ios::binary | std::ios::app) << "trailing";
  expect_error([&] { load(path); }, "belong to no tensor");
}

TEST_F(BadFiles, SavingNeedsAConvertedModel) {
  Net plain(kWidths);
  expect_error([&] { save_converted_model(dir.file("plain.safetensors"), plain); }, "convert() it first");
  EXPECT_FALSE(fs::exists(dir.file("plain.safetensors")));
}

TEST_F(BadFiles, LoadingTwiceIsAnError) {
  Net net(kWidths);
  load_converted_model(good, net);
  expect_error([&] { load_converted_model(good, net); }, "converted already");
}

}  // namespace
