// The converted encoder (spruce's operators in place of every Linear) against its FP32 LibTorch
// twin: FP32 sparse >= 0.9999 and INT8 sparse / dense >= 0.99 cosine on the reference texts.
// Under every ISA cap, as the kernels differ.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <iostream>
#include <string>

#include "minilm/sentence_encoder.hpp"
#include "minilm_reference.hpp"
#include "spruce/attention.hpp"
#include "spruce/torch/pruner.hpp"

namespace {

// A copy of the model with every encoder Linear pruned by magnitude, one shot, to `pattern`.
minilm::SentenceEncoder pruned_copy(const std::string& pattern, double sparsity) {
  auto e = minilm::SentenceEncoder::load(minilm::default_model_dir(), reference().max_length);
  auto recipe = spruce::Recipe::single(spruce::Pattern::parse(pattern), sparsity);
  recipe.groups[0].criterion = spruce::Criterion::Magnitude;
  recipe.groups[0].schedule.start_step = recipe.groups[0].schedule.end_step = 0;
  spruce::torch::Pruner pruner(*e.model(), recipe);
  pruner.on_train_begin();
  pruner.on_step_begin(0);
  EXPECT_NEAR(pruner.sparsity(), sparsity, 1e-4);  // whole blocks per layer
  return e;
}

double min_cosine(const torch::Tensor& a, const torch::Tensor& b) { return (a * b).sum(1).min().item<double>(); }

TEST(MiniLM, ConvertedEncodersFollowTheirFp32Twins) {
  const auto& texts = reference().texts;
  auto sparse = pruned_copy("4x1", 0.8);
  const auto fp32 = sparse.encode(texts, 8);
  auto f32_sparse = pruned_copy("4x1", 0.8), int8_sparse = pruned_copy("4x1", 0.8),
       int8_dense = pruned_copy("4x1", 0.8);
  spruce::torch::ConvertOptions o;
  o.threads = 2;
  o.pattern = spruce::Pattern::parse("4x1");  // packed by it under every cap (detection may keep a layer dense)
  o.variant = spruce::torch::Variant::F32Sparse;
  const auto layers = f32_sparse.convert(o, {});
  ASSERT_EQ(layers.size(), 36u);
  for (const auto& l : layers) EXPECT_EQ(l.pattern, "4x1") << l.name;
  EXPECT_GE(min_cosine(f32_sparse.encode(texts, 8), fp32), 0.9999);
  o.variant = spruce::torch::Variant::Int8Sparse;
  int8_sparse.convert(o, texts);
  // Q, K and V share one calibrated input quantization, so the encoder quantizes their input once.
  for (const auto& layer : *int8_sparse.model()->layers) {
    const auto& self = *layer->as<minilm::BertLayer>()->attention->self_attention;
    EXPECT_TRUE(spruce::torch::quantize_shared_input({self.layer(0).get(), self.layer(1).get(), self.layer(2).get()},
                                                     torch::zeros({1, 384}))
                    .defined());
  }
  const double int8_cosine = min_cosine(int8_sparse.encode(texts, 8), fp32);
  EXPECT_GE(int8_cosine, 0.99);  // the target
  std::cout << "INT8 sparse 4x1@80% vs its FP32 twin: min cosine " << int8_cosine << " over " << texts.size()
            << " texts\n";
  // BF16 and INT8 attention (where the CPU has them; FP32 elsewhere, the same bytes) keep the
  // INT8 target.
  for (auto precision : {spruce::AttentionPrecision::BF16, spruce::AttentionPrecision::Int8}) {
    const std::string kernel = int8_sparse.model()->set_attention_precision(precision);
    const auto rounded = int8_sparse.encode(texts, 8);
    EXPECT_GE(min_cosine(rounded, fp32), 0.99) << kernel;
    std::cout << "  with attention " << kernel << ": min cosine " << min_cosine(rounded, fp32) << "\n";
  }
  EXPECT_EQ(int8_sparse.model()->set_attention_precision(spruce::AttentionPrecision::F32),
            spruce::attention_kernel_name(32));
  o.variant = spruce::torch::Variant::Int8Dense;
  int8_dense.convert(o, texts);
  EXPECT_GE(min_cosine(int8_dense.encode(texts, 8), fp32), 0.99);
  // INT8 passes side by side (each operator on its calling thread) give the same bits as one at a
  // time on 2 threads: spruce's kernels and oneDNN's are exact, whatever the split.
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);
  ASSERT_EQ(minilm::SentenceEncoder::plan_passes(20, 128, 16, at::get_num_threads(), true).workers, 2);
  for (auto* e : {&int8_sparse, &int8_dense}) {
    e->set_tokens_per_pass(20);  // a text per pass: 40 texts, passes two at a time
    const auto side_by_side = e->encode(texts, 16);
    e->set_parallel_passes(false);
    EXPECT_TRUE(torch::equal(side_by_side, e->encode(texts, 16))) << (e == &int8_sparse ? "sparse" : "dense");
    e->set_parallel_passes(true);
  }
  at::set_num_threads(threads_before);
}

// INT8: the FFN up-projection requantizes its GELU output for the down-projection in its
// epilogue, with the down-projection's calibrated parameters and quantize_u8's rounding, so the
// encoder gives the same bits as with the f32 hand-over, and the 25 MB f32 tensor per layer at
// batch 32 is never written.
TEST(MiniLM, FfnUpProjectionHandsU8ToTheDownProjection) {
  const auto& texts = reference().texts;
  auto chained = pruned_copy("4x1", 0.8), unchained = pruned_copy("4x1", 0.8);
  for (const auto& layer : *unchained.model()->layers)
    layer->as<minilm::BertLayer>()->intermediate->set_feeds_host(nullptr);
  spruce::torch::ConvertOptions o;
  o.threads = 2;
  o.pattern = spruce::Pattern::parse("4x1");
  o.fallback = spruce::Fallback::Never;  // the same kernels in both
  chained.convert(o, texts);
  unchained.convert(o, texts);
  for (auto* e : {&chained, &unchained})
    for (const auto& layer : *e->model()->layers) {
      const auto* up = spruce::torch::converted_gemm(*layer->as<minilm::BertLayer>()->intermediate->layer(0));
      ASSERT_NE(up, nullptr);
      EXPECT_EQ(up->op().quant().out, e == &chained ? spruce::OutType::U8 : spruce::OutType::F32);
    }
  EXPECT_TRUE(torch::equal(chained.encode(texts, 8), unchained.encode(texts, 8)));
}

}  // namespace
