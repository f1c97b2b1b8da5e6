// The C++ all-MiniLM-L6-v2 against sentence-transformers: the same token ids and, in FP32,
// embeddings with cosine >= 0.9999 to the reference's, alone and in padded batches.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "minilm/sentence_encoder.hpp"
#include "minilm_reference.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"

namespace {

minilm::SentenceEncoder& encoder() {
  static minilm::SentenceEncoder e = minilm::SentenceEncoder::load(minilm::default_model_dir(), reference().max_length);
  return e;
}

TEST(MiniLM, TokenIdsMatchTheReference) {
  const auto& r = reference();
  for (size_t i = 0; i < r.texts.size(); ++i) {
    const auto in = encoder().tokenize({r.texts[i]});
    const auto* p = in.ids.data_ptr<int64_t>();
    EXPECT_EQ(std::vector<int64_t>(p, p + in.ids.numel()), r.ids[i]) << r.texts[i];
  }
}

TEST(MiniLM, Fp32EmbeddingsMatchTheReferenceAloneAndInBatches) {
  const auto& r = reference();
  for (int64_t batch : {1, 7, 64}) {
    const auto e = encoder().encode(r.texts, batch);
    ASSERT_EQ(e.sizes(), r.embeddings.sizes());
    const auto cosine = (e * r.embeddings).sum(1) / (e.norm(2, 1) * r.embeddings.norm(2, 1));
    EXPECT_GE(cosine.min().item<double>(), 0.9999)
        << "batch " << batch << ", worst at text " << cosine.argmin().item<int64_t>();
    EXPECT_NEAR(e.norm(2, 1).max().item<double>(), 1.0, 1e-5);
  }
}

// A padded batch run in passes of whole sequences gives each sequence the embedding it gets in
// one pass, in the batch's order.
TEST(MiniLM, PassesOfWholeSequencesChangeNoEmbedding) {
  const auto& r = reference();
  const std::vector<std::string> texts(r.texts.begin(), r.texts.begin() + 11);
  const auto in = encoder().tokenize(texts);
  ASSERT_GT((in.mask == 0).sum().item<int64_t>(), 0) << "the batch should have padding";
  auto& e = encoder();
  const int64_t length = in.ids.size(1), saved = e.tokens_per_pass();
  torch::Tensor whole, split;
  {
    torch::NoGradGuard no_grad;
    e.set_tokens_per_pass(0);
    whole = e.embed(in);
    e.set_tokens_per_pass(3 * length + length / 2);  // passes of 3 rows: 3, 3, 3, 2
    split = e.embed(in);
  }
  e.set_tokens_per_pass(saved);
  ASSERT_EQ(split.sizes(), whole.sizes());
  EXPECT_LT((split - whole).abs().max().item<double>(), 1e-5);
  EXPECT_GT((split - whole.roll(1, 0)).abs().max().item<double>(), 0.1) << "rows must stay in their order";
  EXPECT_THROW(e.set_tokens_per_pass(-1), spruce::Error);
}

// The default pass fits a core's L2 cache in whole sequences: 256 tokens for an Intel Xeon's 2 MiB,
// one sequence for Zen 4's 1 MiB (and for a cache too small for one), never more than 1024.
TEST(MiniLM, DefaultPassesFitTheL2Cache) {
  using minilm::tokens_per_pass_for_l2;
  EXPECT_EQ(tokens_per_pass_for_l2(2 << 20), 256);
  EXPECT_EQ(tokens_per_pass_for_l2(1 << 20), 128);
  EXPECT_EQ(tokens_per_pass_for_l2(256 << 10), 128);
  EXPECT_EQ(tokens_per_pass_for_l2(3 << 20), 384);
  EXPECT_EQ(tokens_per_pass_for_l2(int64_t(32) << 20), 1024);
  // The encoder and the bench start from this host's value.
  const int64_t here = tokens_per_pass_for_l2(spruce::l2_cache_bytes());
  EXPECT_EQ(minilm::MinilmBenchOptions{}.tokens_per_pass, here);
  EXPECT_EQ(minilm::SentenceEncoder::load(minilm::default_model_dir()).tokens_per_pass(), here);
}

// Passes side by side, one thread each, give the embeddings of the same passes run one at a time
// on every thread, in the batch's order; and the plan gives every thread a pass.
TEST(MiniLM, PassesSideBySideChangeNoEmbedding) {
  using minilm::SentenceEncoder;
  const auto& r = reference();
  const std::vector<std::string> texts(r.texts.begin(), r.texts.begin() + 11);
  const auto in = encoder().tokenize(texts);
  auto& e = encoder();
  const int64_t length = in.ids.size(1), saved = e.tokens_per_pass();
  const int threads_before = at::get_num_threads();
  at::set_num_threads(2);
  ASSERT_EQ(SentenceEncoder::plan_passes(3 * length, length, in.ids.size(0), at::get_num_threads(), true).workers, 2);
  torch::Tensor side_by_side, one_at_a_time;
  {
    torch::NoGradGuard no_grad;
    e.set_tokens_per_pass(3 * length);  // 4 passes: 3, 3, 3, 2 rows
    side_by_side = e.embed(in);
    e.set_parallel_passes(false);
    one_at_a_time = e.embed(in);
    e.set_parallel_passes(true);
  }
  e.set_tokens_per_pass(saved);
  at::set_num_threads(threads_before);
  ASSERT_EQ(side_by_side.sizes(), one_at_a_time.sizes());
  EXPECT_LT((side_by_side - one_at_a_time).abs().max().item<double>(), 1e-5);
  EXPECT_GT((side_by_side - one_at_a_time.roll(1, 0)).abs().max().item<double>(), 0.1) << "rows must stay in order";

  const auto plan = [](int64_t tokens, int64_t length, int64_t rows, int threads, bool parallel) {
    const auto p = SentenceEncoder::plan_passes(tokens, length, rows, threads, parallel);
    return std::make_pair(p.sequences, p.workers);
  };
  EXPECT_EQ(plan(1024, 128, 32, 2, true), std::make_pair(int64_t(8), 2));   // 4 passes of 8
  EXPECT_EQ(plan(1024, 128, 8, 2, true), std::make_pair(int64_t(4), 2));    // one pass would leave a thread idle
  EXPECT_EQ(plan(1024, 128, 3, 4, true), std::make_pair(int64_t(1), 3));    // no more workers than sequences
  EXPECT_EQ(plan(1024, 128, 1, 2, true), std::make_pair(int64_t(1), 1));    // one sequence: every thread on it
  EXPECT_EQ(plan(1024, 128, 32, 2, false), std::make_pair(int64_t(8), 1));  // one at a time
  EXPECT_EQ(plan(1024, 128, 32, 1, true), std::make_pair(int64_t(8), 1));
  EXPECT_EQ(plan(0, 128, 32, 2, true), std::make_pair(int64_t(32), 1));  // 0: the whole batch at once
}

// Inference runs spruce's fused attention and residual + LayerNorm; training runs LibTorch's
// differentiable ops. On padded batches (masked keys) every layer's hidden states agree to FP32
// rounding.
TEST(MiniLM, FusedInferenceMatchesLibTorchOps) {
  const auto& r = reference();
  const std::vector<std::string> texts(r.texts.begin(), r.texts.begin() + 9);
  const auto in = encoder().tokenize(texts);
  ASSERT_GT((in.mask == 0).sum().item<int64_t>(), 0) << "the batch should have padding";
  auto& model = encoder().model();
  minilm::EncoderOutput fused, reference_ops;
  {
    torch::NoGradGuard no_grad;
    fused = model->forward(in.ids, in.mask);
  }
  reference_ops = model->forward(in.ids, in.mask);  // gradients on: LibTorch's attention and LayerNorm
  ASSERT_TRUE(reference_ops.last_hidden.requires_grad());
  const auto real = in.mask.unsqueeze(-1).to(torch::kBool);  // padded rows' values are never used
  for (size_t layer = 0; layer < fused.hidden_states.size(); ++layer) {
    const auto diff = (fused.hidden_states[layer] - reference_ops.hidden_states[layer].detach()).abs();
    EXPECT_LT(diff.masked_select(real).max().item<double>(), 2e-4) << "layer " << layer;
  }
}

// Recording, for attention distillation, keeps every layer's distributions over the real keys and
// leaves the hidden states as they were; switched off, nothing is kept.
TEST(MiniLM, RecordedAttentionIsADistributionOverRealKeys) {
  const auto& r = reference();
  const std::vector<std::string> texts(r.texts.begin(), r.texts.begin() + 9);
  const auto in = encoder().tokenize(texts);
  auto& model = encoder().model();
  torch::NoGradGuard no_grad;
  const auto plain = model->forward(in.ids, in.mask);
  model->set_record_attention(true);
  const auto recorded = model->forward(in.ids, in.mask);
  model->set_record_attention(false);
  EXPECT_TRUE(model->forward(in.ids, in.mask).attention_log_probs.empty());
  const int64_t layers = model->config().num_layers, heads = model->config().num_heads;
  ASSERT_EQ(recorded.attention_log_probs.size(), size_t(layers));
  ASSERT_EQ(recorded.value_relation_log_probs.size(), size_t(layers));
  const auto padding = (in.mask == 0).view({in.mask.size(0), 1, 1, in.mask.size(1)});
  for (int64_t l = 0; l < layers; ++l) {
    EXPECT_LT((plain.hidden_states[l] - recorded.hidden_states[l])
                  .abs()
                  .masked_select(in.mask.unsqueeze(-1) != 0)
                  .max()
                  .item<double>(),
              2e-4)
        << "layer " << l;
    for (const auto& log_probs : {recorded.attention_log_probs[l], recorded.value_relation_log_probs[l]}) {
      ASSERT_EQ(log_probs.sizes(), torch::IntArrayRef({in.ids.size(0), heads, in.ids.size(1), in.ids.size(1)}));
      const auto p = log_probs.exp();
      EXPECT_EQ(p.masked_select(padding.expand_as(p)).max().item<double>(), 0.0) << "layer " << l;
      EXPECT_LT((p.sum(-1) - 1).abs().max().item<double>(), 1e-5) << "layer " << l;
    }
  }
}

TEST(MiniLM, SavedWeightsReloadBitForBit) {
  const auto dir = std::filesystem::temp_directory_path() / ("spruce_minilm_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  minilm::save_weights(*encoder().model(), (dir / "model.safetensors").string());
  minilm::BertModel copy(encoder().model()->config());
  minilm::load_weights(*copy, (dir / "model.safetensors").string());
  const auto a = encoder().model()->named_parameters(), b = copy->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& item : a) EXPECT_TRUE(torch::equal(item.value(), b[item.key()])) << item.key();
  std::filesystem::remove_all(dir);
}

TEST(MiniLM, LinearLayersCarryHuggingFaceNames) {
  std::vector<std::string> names;
  for (const auto& host : spruce::torch::find_layer_hosts(*encoder().model()))
    for (size_t i = 0; i < host.host->size(); ++i) names.push_back(host.layer_path(i));
  ASSERT_EQ(names.size(), 36u);  // 6 layers x (Q, K, V, attention output, FFN in, FFN out)
  EXPECT_EQ(names.front(), "encoder.layer.0.attention.self.query");
  EXPECT_EQ(names.back(), "encoder.layer.5.output.dense");
}

TEST(MiniLM, RefusesAMissingModelOrAForeignConfig) {
  try {
    minilm::SentenceEncoder::load("/nonexistent");
    ADD_FAILURE();
  } catch (const spruce::Error& e) {
    EXPECT_NE(std::string(e.what()).find("install-deps"), std::string::npos) << e.what();
  }
  const auto path = std::filesystem::temp_directory_path() / ("spruce_config_" + std::to_string(getpid()) + ".json");
  for (const char* text :
       {"{\"model_type\": \"gpt2\"}", "{\"model_type\": \"bert\", \"hidden_size\": 384}", "{",
        "{\"model_type\": \"bert\", \"vocab_size\": 10, \"hidden_size\": 385, \"num_hidden_layers\": 1,"
        " \"num_attention_heads\": 12, \"intermediate_size\": 4, \"max_position_embeddings\": 8}"}) {
    std::ofstream(path) << text;
    EXPECT_THROW(minilm::BertConfig::read(path.string()), spruce::Error) << text;
  }
  std::filesystem::remove(path);
}

}  // namespace
