// Conversion of a trained model for fast inference: each Linear in the model's LayerHosts becomes
// a SparseLinearLayer that holds packed weights and calls spruce's operator (spruce/spmm.hpp),
// and each Conv2d a SparseConvLayer: the same GEMM over the input unfolded channels-last.
//
//   FP32 sparse   f32 weights, packed by their pattern; the operator falls back to oneDNN where
//                 sparse would lose (Fallback::Auto)
//   INT8 sparse   s8 weights (a scale per output channel) x u8 activations (scale and zero point
//                 from calibration on real inputs), packed; same fallback rule
//   INT8 dense    s8 x u8 through oneDNN's dense matmul: the baseline the seed compares against
//
// ReLU is fused into the layer before it. Between two INT8 layers the first requantizes its
// output straight to the second's u8 input, so activations stay 8-bit along a chain.
#pragma once
#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "spruce/calibration.hpp"
#include "spruce/pattern.hpp"
#include "spruce/spmm.hpp"
#include "spruce/torch/layer_stack.hpp"

namespace spruce::torch {

enum class Variant { F32Sparse, Int8Sparse, Int8Dense };
Variant parse_variant(const std::string& text);  // "fp32-sparse", "int8-sparse", "int8-dense"
std::string to_string(Variant v);

struct ConvertOptions {
  Variant variant = Variant::Int8Sparse;
  int threads = 0;  // operator threads; 0: OpenMP's default
  CalibrationMethod calibration = CalibrationMethod::MinMax;
  double percentile = 99.99;
  // The pattern to pack by; none: detect it per layer (detect_pattern), and a layer whose packed
  // weights would be no smaller than dense stays dense (runs oneDNN; reported as "dense").
  std::optional<Pattern> pattern;
  // The operators' dense fallback; none: Auto for the sparse variants, Always for INT8 dense.
  std::optional<Fallback> fallback;
  // The batch sizes the model will run: under Auto, each layer times sparse against dense for
  // them at conversion (the choices are saved with the model); layers alike (TuningCache: same
  // shape, pattern, sparsity, epilogue) time once and share the choice. Untuned, Auto runs sparse.
  // Two conversions may choose differently (and differ in the last bits, where oneDNN rounds its
  // epilogue otherwise).
  std::vector<int64_t> tune_m;
};

// What became of one layer.
struct ConvertedLayer {
  std::string name;     // qualified, e.g. "top.1"
  std::string variant;  // fp32-sparse | int8-sparse | int8-dense
  std::string pattern;  // the pattern its weights were packed by, or "dense" where it runs oneDNN
  std::string kernel;   // the sparse kernel, or "onednn" where INT8 dense always falls back
  double sparsity = 0;  // zero weights
  int64_t in_features = 0, out_features = 0;
  size_t packed_bytes = 0, dense_bytes = 0;
};

// A converted Linear. It takes f32 input, or u8 input already quantized with its input_quant();
// it returns f32, or u8 when it requantizes for the next INT8 layer.
class SparseLinearLayer : public FusedLayer {
 public:
  // FP32 (in_quant empty) or INT8 (in_quant given). `w` [out][in] f32, `b` [out] or undefined;
  // `activation` (ReLU, GELU) runs in the operator's epilogue.
  SparseLinearLayer(const ::torch::Tensor& w, const ::torch::Tensor& b, const Pattern& pattern, Activation activation,
                    const std::optional<U8Quant>& in_quant, const std::optional<U8Quant>& out_quant,
                    SparseLinearOptions options);
  // Around an operator made elsewhere (a loaded model): INT8 operators take u8 input quantized
  // with their QuantParams::x, and return u8 when they requantize.
  explicit SparseLinearLayer(std::shared_ptr<SparseLinear> op);
  ::torch::Tensor forward(const ::torch::Tensor& x) override;
  Activation fused_activation() const override { return op_->options().activation; }

  const SparseLinear& op() const { return *op_; }
  void tune(std::span<const int64_t> ms);                      // SparseLinear::tune
  void tune(std::span<const int64_t> ms, TuningCache& cache);  // sharing with layers alike
  // INT8: the u8 quantization its input takes (the operator's QuantParams::x).
  std::optional<U8Quant> input_quant() const;

 private:
  std::shared_ptr<SparseLinear> op_;
};

// A converted Conv2d: the input [N][C][H][W] is (quantized to u8 for INT8, then) unfolded
// channels-last into [N*OH*OW][KH*KW*C] rows, which the GEMM layer multiplies by the weight viewed
// [OC][KH*KW*C], as the pruner saw it; the output is returned as [N][OC][OH][OW].
struct ConvGeometry {
  int64_t in_channels = 0, kernel_h = 1, kernel_w = 1, stride_h = 1, stride_w = 1, pad_h = 0, pad_w = 0;
  static ConvGeometry of(const ::torch::nn::Conv2dImpl& conv);
};
class SparseConvLayer : public FusedLayer {
 public:
  SparseConvLayer(std::shared_ptr<SparseLinearLayer> gemm, const ConvGeometry& geometry);
  ::torch::Tensor forward(const ::torch::Tensor& x) override;
  Activation fused_activation() const override { return gemm_->fused_activation(); }
  const SparseLinearLayer& gemm() const { return *gemm_; }
  const ConvGeometry& geometry() const { return geometry_; }

 private:
  std::shared_ptr<SparseLinearLayer> gemm_;
  ConvGeometry geometry_;
};

// The GEMM layer of a converted Linear or Conv2d, or null for any other layer.
const SparseLinearLayer* converted_gemm(const ::torch::nn::Module& layer);

// x [..][in] f32 quantized once for INT8 layers that all take it (attention's Q, K and V) with one
// input quantization: the u8 tensor each would make of x itself. Undefined where a layer is not an
// INT8 SparseLinearLayer, or their quantizations differ: each then quantizes x on its own.
::torch::Tensor quantize_shared_input(std::initializer_list<const ::torch::nn::Module*> layers,
                                      const ::torch::Tensor& x);

// The report line for a converted layer.
ConvertedLayer describe_layer(const std::string& name, const std::string& variant, const SparseLinear& op);

// The coarsest of spruce's kernel patterns that the weight's zeros follow (1x1 if none).
Pattern detect_pattern(const ::torch::Tensor& weight);

// Converts every Linear and Conv2d in every LayerHost of `model`. For INT8, `calibrate` is called
// once while the hosts record their layers' inputs: it must run representative inputs through it.
std::vector<ConvertedLayer> convert(::torch::nn::Module& model, const ConvertOptions& options,
                                    const std::function<void()>& calibrate = {});

}  // namespace spruce::torch
