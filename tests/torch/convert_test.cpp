// Converted layers against the unconverted model: FP32 to rounding, INT8 within the bound that
// the quantization steps give. Runs under every ISA cap (it dispatches kernels).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <thread>

#include "spruce/error.hpp"
#include "spruce/torch/convert.hpp"

using namespace spruce;
using namespace spruce::torch;

namespace {
// Zeroes all but the top `keep` of every 4x1 block column group, by magnitude: a 4x1 pattern.
void prune_4x1(const ::torch::Tensor& w, double sparsity) {
  ::torch::NoGradGuard g;
  const auto blocks = w.abs().view({w.size(0) / 4, 4, w.size(1)}).sum(1);  // [OC/4][IC]
  const auto k = int64_t(double(blocks.numel()) * sparsity);
  const auto threshold = std::get<0>(blocks.flatten().kthvalue(k));
  const auto keep = (blocks > threshold).to(::torch::kFloat).repeat_interleave(4, 0);
  w.mul_(keep);
}
ConvertOptions options(Variant v) {
  ConvertOptions o;
  o.variant = v;
  return o;
}
struct Net : ::torch::nn::Module {
  LayerStack stack{nullptr};
  explicit Net(std::vector<int64_t> widths) { stack = register_module("mlp", LayerStack(widths, false)); }
};
}  // namespace

TEST(Convert, DetectsThePatternOfTheZeros) {
  ::torch::manual_seed(3);
  auto w = ::torch::randn({64, 96});
  EXPECT_EQ(detect_pattern(w).str(), "4x16");  // no zeros: every pattern holds
  prune_4x1(w, 0.8);
  EXPECT_EQ(detect_pattern(w).str(), "4x1");
  w.index_put_({0, 0}, 0.f);
  w.index_put_({0, 1}, 7.f);
  EXPECT_EQ(detect_pattern(w).str(), "1x1");
}

TEST(Convert, Fp32SparseMatchesTheModel) {
  ::torch::manual_seed(1);
  Net net({40, 64, 32, 8});
  for (size_t i = 0; i < 3; ++i) prune_4x1(net.stack->linear(i)->weight, 0.75);
  const auto x = ::torch::randn({37, 40});
  ::torch::NoGradGuard g;
  const auto want = net.stack->forward(x);
  const auto report = convert(net, options(Variant::F32Sparse));
  ASSERT_EQ(report.size(), 3u);
  EXPECT_EQ(report[0].name, "mlp.0");
  EXPECT_EQ(report[0].pattern, "4x1");
  EXPECT_NEAR(report[1].sparsity, 0.75, 0.01);
  EXPECT_EQ(net.stack->linear(0), nullptr);  // replaced
  const auto got = net.stack->forward(x);
  EXPECT_TRUE(::torch::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max();
}

TEST(Convert, Int8LayerIsWithinTheQuantizationBound) {
  ::torch::manual_seed(2);
  Net net({96, 48});
  prune_4x1(net.stack->linear(0)->weight, 0.5);
  const auto w = net.stack->linear(0)->weight.detach().clone();
  const auto b = net.stack->linear(0)->bias.detach().clone();
  const auto x = ::torch::rand({19, 96}) * 4 - 1;  // range [-1, 3]
  for (Variant v : {Variant::Int8Sparse, Variant::Int8Dense}) {
    Net copy({96, 48});
    {
      ::torch::NoGradGuard g;
      copy.stack->linear(0)->weight.copy_(w);
      copy.stack->linear(0)->bias.copy_(b);
    }
    convert(copy, options(v), [&] { copy.stack->forward(x); });
    auto* layer = dynamic_cast<SparseLinearLayer*>(copy.stack->layer(0).get());
    ASSERT_NE(layer, nullptr);
    const U8Quant in = *layer->input_quant();
    EXPECT_NEAR(in.scale * 255, 4.0, 0.01);
    ::torch::NoGradGuard g;
    const auto got = copy.stack->forward(x);
    const auto want = ::torch::matmul(x, w.t()) + b;
    // |error| <= sum_k |w| s_x / 2 + |x| s_w / 2 + s_x s_w / 4, per output channel.
    const auto s_w = w.abs().amax(1) / 127;                            // [48]
    const auto bound = (w.abs().sum(1) * in.scale / 2).unsqueeze(0) +  // [1][48]
                       ::torch::matmul(x.abs(), ::torch::ones({96, 1})) * s_w.unsqueeze(0) / 2 +
                       96 * in.scale * s_w.unsqueeze(0) / 4 + 1e-4;
    EXPECT_TRUE(((got - want).abs() <= bound).all().item<bool>())
        << to_string(v) << " max error " << (got - want).abs().max();
    EXPECT_GT((got - want).abs().max().item<float>(), 0.f);  // it really is quantized
  }
}

// Layers that take one input with one quantization (attention's Q, K, V) can share its u8: each
// gives the same bits from it as from the f32. Layers whose quantizations differ, FP32 layers and
// unconverted ones get nothing, and quantize for themselves.
TEST(Convert, SharedInputQuantizationGivesEachLayerItsOwnBits) {
  ::torch::manual_seed(3);
  const auto x = ::torch::rand({37, 64}) * 3 - 1;
  const auto layer = [&](U8Quant q, bool int8 = true) {
    auto w = ::torch::randn({32, 64});
    prune_4x1(w, 0.75);
    SparseLinearOptions o;
    o.threads = 2;
    return std::make_shared<SparseLinearLayer>(w, ::torch::randn({32}), Pattern::parse("4x1"), Activation::None,
                                               int8 ? std::optional<U8Quant>(q) : std::nullopt, std::nullopt, o);
  };
  const U8Quant q{3.0f / 255, 85}, other{3.1f / 255, 85};
  const auto a = layer(q), b = layer(q), c = layer(q);
  ::torch::NoGradGuard g;
  const auto shared = quantize_shared_input({a.get(), b.get(), c.get()}, x);
  ASSERT_TRUE(shared.defined());
  EXPECT_EQ(shared.scalar_type(), ::torch::kByte);
  for (const auto& l : {a, b, c}) EXPECT_TRUE(::torch::equal(l->forward(shared), l->forward(x)));
  EXPECT_FALSE(quantize_shared_input({a.get(), layer(other).get()}, x).defined());
  EXPECT_FALSE(quantize_shared_input({a.get(), layer(q, false).get()}, x).defined());
  ::torch::nn::Linear plain(64, 32);
  EXPECT_FALSE(quantize_shared_input({a.get(), plain.get()}, x).defined());
}

TEST(Convert, Int8StackRequantizesBetweenLayersAndStaysClose) {
  ::torch::manual_seed(4);
  Net net({64, 128, 128, 4});
  for (size_t i = 0; i < 3; ++i) prune_4x1(net.stack->linear(i)->weight, 0.7);
  const auto x = ::torch::randn({256, 64});
  ::torch::NoGradGuard g;
  const auto want = net.stack->forward(x);
  convert(net, options(Variant::Int8Sparse), [&] { net.stack->forward(x); });
  const auto got = net.stack->forward(x);
  EXPECT_EQ(got.scalar_type(), ::torch::kFloat);
  const double rel = ((got - want).norm() / want.norm()).item<double>();
  EXPECT_LT(rel, 0.03);
  EXPECT_GT(rel, 0.0);
}

// A calibration that runs the model from several threads at once (the sentence encoder can run its
// passes side by side) sees every value: each layer's range is the one a single thread finds.
TEST(Convert, CalibrationFromManyThreadsSeesEveryValue) {
  ::torch::manual_seed(5);
  Net net({64, 64, 32});
  std::vector<::torch::Tensor> batches;
  for (int i = 0; i < 64; ++i) batches.push_back(::torch::randn({256, 64}) * (1 + i % 7));
  auto input_quants = [&](int threads) {
    Net copy({64, 64, 32});
    {
      ::torch::NoGradGuard g;
      for (size_t l = 0; l < 2; ++l) {
        copy.stack->linear(l)->weight.copy_(net.stack->linear(l)->weight);
        copy.stack->linear(l)->bias.copy_(net.stack->linear(l)->bias);
      }
    }
    convert(copy, options(Variant::Int8Dense), [&] {
      std::vector<std::thread> team;
      for (int t = 0; t < threads; ++t)
        team.emplace_back([&, t] {
          ::torch::NoGradGuard g;  // per thread
          for (size_t b = size_t(t); b < batches.size(); b += size_t(threads)) copy.stack->forward(batches[b]);
        });
      for (auto& member : team) member.join();
    });
    std::vector<std::pair<float, int32_t>> out;
    for (size_t l = 0; l < copy.stack->size(); ++l)
      if (const auto* gemm = converted_gemm(*copy.stack->layer(l))) {
        const U8Quant q = *gemm->input_quant();
        out.emplace_back(q.scale, q.zero_point);
      }
    return out;
  };
  const auto alone = input_quants(1);
  ASSERT_EQ(alone.size(), 2u);
  for (int round = 0; round < 3; ++round) EXPECT_EQ(input_quants(4), alone) << "round " << round;
}

TEST(Convert, Int8NeedsCalibrationAndAStack) {
  Net net({8, 8});
  EXPECT_THROW(convert(net, options(Variant::Int8Sparse)), Error);
  ::torch::nn::Linear plain(4, 4);
  EXPECT_THROW(convert(*plain, options(Variant::F32Sparse)), Error);
  EXPECT_THROW(parse_variant("int4"), Error);
}

// Calibration borrows the hosts' observers and gives back their own (a Pruner's), also when the
// calibration run throws, so that no observer is left pointing into a finished convert().
TEST(Convert, CalibrationGivesTheHostsTheirObserversBack) {
  Net net({8, 8, 4});
  int seen = 0;
  net.stack->set_observer([&seen](size_t, const ::torch::Tensor&) { ++seen; });
  const auto x = ::torch::randn({4, 8});
  EXPECT_THROW(convert(net, options(Variant::Int8Sparse), [&] { throw Error(ErrorKind::Data, "no data"); }), Error);
  ASSERT_TRUE(net.stack->observer());
  net.stack->forward(x);
  EXPECT_EQ(seen, 2);
  convert(net, options(Variant::Int8Sparse), [&] { net.stack->forward(x); });
  EXPECT_EQ(seen, 2) << "the model's own observer saw calibration";
  net.stack->forward(x);
  EXPECT_EQ(seen, 4);
}

// A layer with no zeros follows every pattern, but packs bigger than dense: it stays dense.
TEST(Convert, DetectedDenseLayerStaysDense) {
  ::torch::manual_seed(5);
  Net net({64, 96, 10});
  prune_4x1(net.stack->linear(0)->weight, 0.9);
  const auto x = ::torch::randn({16, 64});
  ::torch::NoGradGuard g;
  const auto want = net.stack->forward(x);
  const auto report = convert(net, options(Variant::F32Sparse));
  ASSERT_EQ(report.size(), 2u);
  EXPECT_EQ(report[0].pattern, "4x1");
  EXPECT_LT(report[0].packed_bytes, report[0].dense_bytes);
  EXPECT_EQ(report[1].pattern, "dense");
  EXPECT_EQ(report[1].kernel, "onednn");
  EXPECT_TRUE(::torch::allclose(net.stack->forward(x), want, 1e-4, 1e-4));
}

// Under Auto, conversion times both paths for the batch sizes given; where sparse cannot win
// (1x1 at 0% sparsity), dense is chosen, and run() keeps that choice.
TEST(Convert, TunedFallbackPicksDenseWhereSparseLoses) {
  ::torch::manual_seed(5);
  Net net({512, 512});
  const auto x = ::torch::randn({256, 512});
  ::torch::NoGradGuard g;
  const auto want = net.stack->forward(x);
  ConvertOptions o = options(Variant::F32Sparse);
  o.pattern = Pattern::parse("1x1");
  o.tune_m = {256};
  convert(net, o);
  const auto got = net.stack->forward(x);
  const auto& op = dynamic_cast<SparseLinearLayer*>(net.stack->layer(0).get())->op();
  EXPECT_EQ(op.impl(256).rfind("onednn", 0), 0u) << op.impl(256);
  EXPECT_EQ(op.dense_for_m().size(), 1u);
  EXPECT_TRUE(::torch::allclose(got, want, 1e-4, 1e-4));
}

namespace {
// One conv in a LayerHost, followed by ReLU.
struct ConvNet : LayerHost {
  explicit ConvNet(const ::torch::nn::Conv2dOptions& o) { add_conv("conv", o, /*relu_after=*/true); }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return run_layer(0, x); }
};

// Zeroes aligned groups of 4 input channels at one kernel tap (1x4 blocks of the channels-last
// [OC][KH*KW*IC] view), by magnitude.
void prune_conv_1x4(const ::torch::Tensor& w, double sparsity) {
  ::torch::NoGradGuard g;
  const auto groups = w.abs().view({w.size(0), w.size(1) / 4, 4, w.size(2), w.size(3)}).sum(2);  // [OC][IC/4][KH][KW]
  const auto threshold = std::get<0>(groups.flatten().kthvalue(int64_t(double(groups.numel()) * sparsity)));
  w.mul_((groups > threshold).to(::torch::kFloat).repeat_interleave(4, 1));
}
}  // namespace

TEST(Convert, ConvMatchesLibTorchForEveryGeometry) {
  namespace nn = ::torch::nn;
  const nn::Conv2dOptions geometries[] = {nn::Conv2dOptions(8, 12, 3).padding(1), nn::Conv2dOptions(8, 12, 3).stride(2),
                                          nn::Conv2dOptions(8, 12, {3, 2}).padding({0, 1}).stride({1, 2}),
                                          nn::Conv2dOptions(8, 12, 1)};
  int seed = 20;
  for (const auto& geometry : geometries) {
    ::torch::manual_seed(seed++);
    ConvNet net(geometry);
    prune_conv_1x4(net.conv(0)->weight, 0.8);  // sparse enough that FP32 strips pack smaller than dense
    const auto x = ::torch::randn({3, 8, 9, 7});
    ::torch::NoGradGuard g;
    const auto want = net.forward(x);
    const auto report = convert(net, options(Variant::F32Sparse));
    ASSERT_EQ(report.size(), 1u);
    // The zeros follow 1x4 only in the channels-last view: this checks the unfold's order.
    EXPECT_EQ(report[0].pattern, "1x4");
    EXPECT_EQ(report[0].in_features, 8 * geometry.kernel_size()->at(0) * geometry.kernel_size()->at(1));
    ASSERT_NE(dynamic_cast<SparseConvLayer*>(net.layer(0).get()), nullptr);
    const auto got = net.forward(x);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_TRUE(::torch::allclose(got, want, 1e-4, 1e-5)) << (got - want).abs().max();
  }
}

TEST(Convert, Int8ConvStaysWithinQuantizationError) {
  ::torch::manual_seed(30);
  ConvNet net(::torch::nn::Conv2dOptions(16, 32, 3).padding(1));
  prune_conv_1x4(net.conv(0)->weight, 0.7);
  const auto x = ::torch::randn({8, 16, 10, 10});
  ::torch::NoGradGuard g;
  const auto want = net.forward(x);
  convert(net, options(Variant::Int8Sparse), [&] { net.forward(x); });
  const auto got = net.forward(x);
  const double rel = ((got - want).norm() / want.norm()).item<double>();
  EXPECT_LT(rel, 0.03);  // 8-bit activations and weights over 144-term sums
  EXPECT_GT(rel, 0.0);
}

namespace {
// An FFN as BERT has it: up-projection with GELU, then down-projection.
struct GeluFfn : LayerHost {
  GeluFfn() {
    add_linear("up", 24, 64, Activation::GELU, false);
    add_linear("down", 64, 16, Activation::None, false);
  }
  ::torch::Tensor forward(const ::torch::Tensor& x) { return run_layer(1, run_layer(0, x)); }
};
struct GeluNet : ::torch::nn::Module {
  std::shared_ptr<GeluFfn> ffn = register_module("ffn", std::make_shared<GeluFfn>());
};
}  // namespace

TEST(Convert, GeluRunsInTheConvertedLayersEpilogue) {
  ::torch::manual_seed(5);
  GeluNet net;
  for (size_t i = 0; i < 2; ++i) prune_4x1(net.ffn->linear(i)->weight, 0.5);
  const auto x = ::torch::randn({21, 24}) * 2;
  ::torch::NoGradGuard g;
  const auto want = net.ffn->forward(x);
  const auto up_w = net.ffn->linear(0)->weight.clone(), up_b = net.ffn->linear(0)->bias.clone();
  convert(net, options(Variant::F32Sparse));
  const auto* up = converted_gemm(*net.ffn->layer(0));
  ASSERT_NE(up, nullptr);
  EXPECT_EQ(up->fused_activation(), Activation::GELU);  // in the kernel's epilogue, not LibTorch's
  EXPECT_TRUE(::torch::allclose(net.ffn->forward(x), want, 1e-4, 1e-5));

  // A layer that leaves its activation to the host (as files written before GELU was fused do)
  // gets LibTorch's; one that applies another activation is refused when it is put in, not a
  // silent wrong answer, and the host keeps the layer it had.
  SparseLinearOptions o;
  o.fallback = Fallback::Never;
  const Pattern p = Pattern::parse("4x1");
  net.ffn->replace_layer(
      0, std::make_shared<SparseLinearLayer>(up_w, up_b, p, Activation::None, std::nullopt, std::nullopt, o));
  EXPECT_TRUE(::torch::allclose(net.ffn->forward(x), want, 1e-4, 1e-5));
  EXPECT_THROW(net.ffn->replace_layer(0, std::make_shared<SparseLinearLayer>(up_w, up_b, p, Activation::ReLU,
                                                                             std::nullopt, std::nullopt, o)),
               Error);
  EXPECT_TRUE(::torch::allclose(net.ffn->forward(x), want, 1e-4, 1e-5));
}
