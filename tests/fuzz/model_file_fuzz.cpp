// libFuzzer target: the converted-model loader (spruce::torch::load_converted_model) on a small
// model with a conv, a chained Linear pair and a tensor outside any layer host.
//
// Any file must either be rejected with spruce::Error or load into a model that runs. Built with
// GCC, not clang: LibTorch 1.13's headers do not compile with clang 14 in C++20 mode (see
// CMakeLists.txt here), so the GCC build links libFuzzer's runtime and gets comparison feedback
// (-fsanitize-coverage=trace-cmp, run with -use_value_profile=1) instead of edge coverage.
//
//   SPRUCE_FUZZ_WRITE_SEEDS=DIR model_file_fuzz    writes the seed corpus (the model converted to
//                                                  each variant) to DIR instead of fuzzing
#include <torch/torch.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>

#include "fuzz_check.hpp"
#include "spruce/error.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/model_file.hpp"

using namespace spruce;
using namespace spruce::torch;

namespace {

// conv 1->4 (3x3, padding 1) on 4x4 inputs, then fc 64->16 and head 16->4; and a bias to the input.
struct FuzzNet : LayerHost {
  ::torch::Tensor shift;
  FuzzNet() {
    add_conv("conv", ::torch::nn::Conv2dOptions(1, 4, 3).padding(1), /*relu_after=*/true);
    add_linear("fc", 64, 16, true, true);
    add_linear("head", 16, 4, false, false);
    shift = register_parameter("shift", ::torch::zeros({4, 4}));
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) {
    return run_layer(2, run_layer(1, run_layer(0, x + shift).flatten(1)));
  }
};

int write_seeds(const std::string& dir) {
  std::filesystem::create_directories(dir);
  ::torch::manual_seed(3);
  const auto calibration = ::torch::randn({16, 1, 4, 4});
  for (Variant v : {Variant::F32Sparse, Variant::Int8Sparse, Variant::Int8Dense}) {
    FuzzNet net;
    {
      ::torch::NoGradGuard g;
      // Zero 4x1 blocks (and half the input channels of the head) so the packed arrays are sparse.
      for (size_t i = 0; i < net.size(); ++i) {
        auto w = net.gemm_weight(i);
        auto keep = (::torch::rand({w.size(0) / 4, 1, w.size(1)}) > 0.6).to(::torch::kFloat).repeat({1, 4, 1});
        w.mul_(keep.view_as(w));
      }
    }
    ConvertOptions o;
    o.variant = v;
    o.threads = 1;
    if (v != Variant::Int8Dense) o.fallback = Fallback::Never;
    convert(net, o, [&] { net.forward(calibration); });
    save_converted_model(dir + "/seed-" + to_string(v) + ".safetensors", net, {{"model", "fuzz-net"}});
  }
  return 0;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  ::torch::set_num_threads(1);
  if (const char* dir = std::getenv("SPRUCE_FUZZ_WRITE_SEEDS")) std::exit(write_seeds(dir));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  FuzzNet net;
  try {
    const SafetensorsFile f = parse_safetensors(bytes, "fuzz.safetensors");
    load_converted_model(f, "fuzz.safetensors", net, /*threads=*/1);
  } catch (const Error&) {
    return 0;
  }
  ::torch::NoGradGuard g;
  const auto y = net.forward(::torch::linspace(-2, 2, 2 * 16).view({2, 1, 4, 4}));
  FUZZ_CHECK(y.sizes() == ::torch::IntArrayRef({2, 4}));
  return 0;
}
