#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <sstream>

#include "dlrm/dlrm.hpp"
#include "dlrm/dlrm_train.hpp"
#include "spruce/error.hpp"
#include "spruce/interaction.hpp"
#include "spruce/mask.hpp"
#include "spruce/torch/convert.hpp"

using namespace spruce::torch;
using namespace spruce::dlrm;

TEST(Dlrm, HasMlperfShapes) {
  torch::manual_seed(1);  // LibTorch seeds its global generator from a random source
  Dlrm model(100);
  EXPECT_EQ(model->bottom->size(), 3u);
  EXPECT_EQ(model->top->size(), 5u);
  EXPECT_EQ(model->top->linear(0)->weight.sizes(), (std::vector<int64_t>{1024, 479}));
  EXPECT_EQ(model->bottom->linear(0)->weight.sizes(), (std::vector<int64_t>{512, 13}));
  EXPECT_EQ(model->tables.size(), 26u);
  EXPECT_EQ(model->tables[2]->weight.size(0), 100);  // capped
  EXPECT_EQ(model->tables[8]->weight.size(0), 3);    // smaller than the cap
  const ClickData d = make_synthetic_clicks(7, 1, 2026, 100);
  const auto out = model->forward(d.dense, d.sparse);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{7}));
  EXPECT_THROW(model->forward(d.dense.narrow(1, 0, 12), d.sparse), spruce::Error);
}

TEST(Dlrm, InteractionIsThePairwiseDotProducts) {
  torch::manual_seed(2);
  Dlrm model(50);
  const ClickData d = make_synthetic_clicks(3, 2, 2026, 50);
  torch::NoGradGuard g;
  const auto x = model->bottom->forward(d.dense);
  std::vector<torch::Tensor> v{x};
  for (int f = 0; f < 26; ++f) v.push_back(model->tables[size_t(f)]->forward(d.sparse.select(1, f)));
  std::vector<torch::Tensor> feats{x};
  for (int i = 1; i < 27; ++i)
    for (int j = 0; j < i; ++j) feats.push_back((v[size_t(i)] * v[size_t(j)]).sum(1, true));
  const auto want = model->top->forward(torch::cat(feats, 1)).squeeze(1);
  EXPECT_TRUE(torch::allclose(model->forward(d.dense, d.sparse), want, 1e-4, 1e-5));
}

// A converted DLRM whose embeddings are large enough that the pairwise products span the top
// MLP's u8 input range (a fresh model's are tiny and would all quantize to the zero point).
Dlrm converted_dlrm(Variant variant, const ClickData& calibration) {
  torch::manual_seed(3);
  Dlrm model(50);
  torch::NoGradGuard g;
  for (auto& t : model->tables) t->weight.normal_(0.0, 0.3);
  ConvertOptions c;
  c.variant = variant;
  c.threads = 2;
  convert(*model, c, [&] { model->forward(calibration.dense, calibration.sparse); });
  return model;
}

// LibTorch's f32 top-MLP input [B][479] (the unfused path's ops) and, per pair, sum_k |a_k b_k|.
std::pair<torch::Tensor, torch::Tensor> libtorch_top_input(DlrmImpl& m, const ClickData& d) {
  const auto x = m.bottom->forward(d.dense);
  std::vector<torch::Tensor> v{x};
  for (int64_t f = 0; f < 26; ++f) v.push_back(m.tables[size_t(f)]->forward(d.sparse.select(1, f)));
  const auto t = torch::stack(v, 1), tri = torch::tril_indices(27, 27, -1);
  const auto pairs = torch::bmm(t, t.transpose(1, 2)).index({torch::indexing::Slice(), tri[0], tri[1]});
  const auto magnitude = torch::bmm(t.abs(), t.abs().transpose(1, 2)).index({torch::indexing::Slice(), tri[0], tri[1]});
  return {torch::cat({x, pairs}, 1).contiguous(), torch::cat({torch::zeros_like(x), magnitude}, 1).contiguous()};
}

// The fused op against LibTorch's arithmetic on DLRM's own shapes: the u8 inputs agree exactly
// except where LibTorch's f32 sum (another summation order) lies within its rounding error of a
// .5 boundary, and there by one step.
TEST(Dlrm, FusedInteractionQuantizesWhatLibTorchComputes) {
  torch::set_num_threads(2);
  const ClickData d = make_synthetic_clicks(257, 4, 2026, 50);
  Dlrm model = converted_dlrm(Variant::Int8Dense, d);
  torch::NoGradGuard g;
  const auto* top0 = dynamic_cast<SparseLinearLayer*>(model->top->layer(0).get());
  ASSERT_TRUE(top0 != nullptr && top0->input_quant());
  const spruce::U8Quant q = *top0->input_quant();
  const auto [want_f32, magnitude] = libtorch_top_input(*model, d);

  const auto x = model->bottom->forward(d.dense).contiguous();
  std::vector<spruce::EmbeddingTable> tables;
  for (auto& t : model->tables) tables.push_back({t->weight.data_ptr<float>(), t->weight.size(0)});
  auto got = torch::empty({257, 479}, torch::kByte);
  spruce::DotInteractionArgs a;
  a.batch = 257, a.dim = 128, a.dense = x.data_ptr<float>(), a.ld_dense = 128, a.tables = tables;
  a.ids = d.sparse.data_ptr<int64_t>(), a.ld_ids = 26, a.quant = q, a.out = got.data_ptr<uint8_t>(), a.ld_out = 479;
  spruce::dot_interaction_u8(a);

  const float* w = want_f32.data_ptr<float>();
  const float* mag = magnitude.data_ptr<float>();
  const uint8_t* u = got.data_ptr<uint8_t>();
  int64_t differ = 0;
  std::vector<bool> seen(256);
  for (int64_t i = 0; i < want_f32.numel(); ++i) {
    seen[u[i]] = true;
    const int want = q.quantize(w[i]);
    if (u[i] == want) continue;
    ++differ;
    const double v = double(w[i]) / q.scale + q.zero_point, boundary = std::floor(v) + 0.5;
    // Both sums' worst-case error (128 terms, unit roundoff 2^-24), plus the f32 rounding of x / scale + zp, in steps.
    const double rounding = 2 * 128 * 6e-8 * mag[i] / q.scale + 1e-4;
    ASSERT_EQ(std::abs(int(u[i]) - want), 1) << "element " << i << ": fused " << int(u[i]) << ", LibTorch " << want;
    ASSERT_LE(std::abs(v - boundary), rounding)
        << "element " << i << " is " << std::abs(v - boundary) << " steps from .5";
  }
  EXPECT_LT(differ, want_f32.numel() / 1000);
  EXPECT_GT(std::count(seen.begin(), seen.end(), true), 100) << "the inputs span too few u8 values to test anything";
}

// Both INT8 variants take the fused path, and give the logits of the same converted model run
// through LibTorch's ops: identical for nearly every click (a sample whose u8 inputs all agree
// gets bit-identical logits), and close for the few with a one-step input difference.
TEST(Dlrm, ConvertedModelsRunTheFusedPathAndMatchTheUnfusedOne) {
  torch::set_num_threads(2);
  const ClickData d = make_synthetic_clicks(300, 5, 2026, 50);
  for (Variant variant : {Variant::Int8Dense, Variant::Int8Sparse}) {
    Dlrm model = converted_dlrm(variant, d);
    torch::NoGradGuard g;
    const auto fused = model->forward(d.dense, d.sparse);
    model->fuse_int8_interaction = false;
    const auto unfused = model->forward(d.dense, d.sparse);
    model->fuse_int8_interaction = true;
    const auto same = (fused == unfused).sum().item<int64_t>();
    EXPECT_GE(same, 270) << to_string(variant);
    const double spread = unfused.std().item<double>();
    EXPECT_GT(spread, 0.0);
    EXPECT_LT((fused - unfused).abs().max().item<double>(), 0.05 * spread) << to_string(variant);

    // An id outside its table is a spruce::Error that says so (LibTorch's path would throw c10::Error).
    for (int64_t bad : {int64_t(50), int64_t(-3)}) {
      auto ids = d.sparse.clone();
      ids[7][3] = bad;
      try {
        model->forward(d.dense, ids);
        ADD_FAILURE() << "id " << bad << " was accepted";
      } catch (const spruce::Error& e) {
        EXPECT_NE(std::string(e.what()).find("out of range"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("sample 7, categorical feature 3"), std::string::npos) << e.what();
      }
    }
  }
}

// Row-wise INT8 tables against the FP32 tables, through the fused op on DLRM's shapes. Each
// dequantized element is within s / 2 of the f32 one (s = its row's scale), so a pair's dot
// product moves by at most (s_a / 2) |b|_1 + (s_b / 2) |a|_1 + dim s_a s_b / 4 (the dense vector
// has no error), plus both f32 sums' rounding (2 * 128 * 2^-24 * sum |a_k b_k|, as above). In u8
// steps that is bound / q.scale, and the rounding to u8 adds up to one step: every element must
// stay within floor(bound / q.scale) + 1 steps. This bounds each element, so a kernel that
// dequantized wrongly (a wrong scale, a wrong row) breaks it, while the tables' real quantization
// error cannot.
TEST(Dlrm, Int8TablesMoveEachTopInputByNoMoreThanTheirQuantizationError) {
  torch::set_num_threads(2);
  const ClickData d = make_synthetic_clicks(257, 4, 2026, 50);
  Dlrm model = converted_dlrm(Variant::Int8Dense, d);
  torch::NoGradGuard g;
  const spruce::U8Quant q = *dynamic_cast<SparseLinearLayer*>(model->top->layer(0).get())->input_quant();
  const auto x = model->bottom->forward(d.dense).contiguous();
  std::vector<spruce::EmbeddingTable> f32;
  std::vector<spruce::Int8EmbeddingTable> s8;
  std::vector<std::vector<int8_t>> rows(26);
  std::vector<std::vector<float>> scales(26);
  for (size_t f = 0; f < 26; ++f) {
    const auto& w = model->tables[f]->weight;
    rows[f].resize(size_t(w.numel()));
    scales[f].resize(size_t(w.size(0)));
    spruce::quantize_embedding_rows(w.data_ptr<float>(), w.size(0), 128, rows[f].data(), scales[f].data());
    f32.push_back({w.data_ptr<float>(), w.size(0)});
    s8.push_back({rows[f].data(), scales[f].data(), w.size(0)});
  }
  auto want = torch::empty({257, 479}, torch::kByte), got = torch::empty({257, 479}, torch::kByte);
  spruce::DotInteractionArgs a;
  a.batch = 257, a.dim = 128, a.dense = x.data_ptr<float>(), a.ld_dense = 128, a.tables = f32;
  a.ids = d.sparse.data_ptr<int64_t>(), a.ld_ids = 26, a.quant = q, a.out = want.data_ptr<uint8_t>(), a.ld_out = 479;
  spruce::dot_interaction_u8(a);
  a.tables = {}, a.int8_tables = s8, a.out = got.data_ptr<uint8_t>();
  spruce::dot_interaction_u8(a);

  const auto tri_t = torch::tril_indices(27, 27, -1);
  const auto tri = tri_t.accessor<int64_t, 2>();
  const auto gu = got.accessor<uint8_t, 2>(), wu = want.accessor<uint8_t, 2>();
  const int64_t* ids = d.sparse.data_ptr<int64_t>();
  const float* xp = x.data_ptr<float>();
  int64_t moved = 0, max_steps = 0;
  for (int64_t b = 0; b < 257; ++b) {
    std::vector<const float*> v{xp + b * 128};
    std::vector<float> s{0.f};
    for (int64_t f = 0; f < 26; ++f) {
      v.push_back(f32[size_t(f)].rows + ids[b * 26 + f] * 128);
      s.push_back(scales[size_t(f)][size_t(ids[b * 26 + f])]);
    }
    for (int64_t k = 0; k < 128; ++k) ASSERT_EQ(gu[b][k], wu[b][k]);
    for (int64_t p = 0; p < 351; ++p) {
      const int64_t i = tri[0][p], j = tri[1][p];
      double l1i = 0, l1j = 0, mag = 0;
      for (int64_t k = 0; k < 128; ++k)
        l1i += std::abs(v[size_t(i)][k]), l1j += std::abs(v[size_t(j)][k]),
            mag += std::abs(double(v[size_t(i)][k]) * v[size_t(j)][k]);
      const double bound = 0.5 * s[size_t(i)] * l1j + 0.5 * s[size_t(j)] * l1i +
                           128 * 0.25 * s[size_t(i)] * s[size_t(j)] + 2 * 128 * 6e-8 * mag;
      const int64_t steps = std::abs(int(gu[b][128 + p]) - int(wu[b][128 + p]));
      ASSERT_LE(steps, int64_t(std::floor(bound / q.scale)) + 1) << "sample " << b << " pair " << i << "," << j;
      moved += steps > 0, max_steps = std::max(max_steps, steps);
    }
  }
  EXPECT_GT(moved, 0) << "the INT8 tables changed nothing: is the test still looking at them?";
  std::cout << moved << " of " << 257 * 351 << " pair inputs moved, by at most " << max_steps << " steps\n";
}

// DlrmImpl::quantize_tables(): derived state that is no parameter or buffer, and that the fused
// forward of both INT8 variants uses, close to the FP32 tables' logits. Tolerance: the INT8 tables
// move about a fifth of the pair inputs by a step or two (the test above), a disturbance of the same
// order as the u8 quantization of the top input itself (half a step on each of the 479 inputs), so
// of convert()'s whole error (weights to s8, every stack's input to u8). Measured here: 1.2x
// convert()'s change from the FP32 model, mean and max (these tables' rows are wide, N(0, 0.3)).
// The bound: at most 2x convert()'s change, on average and at worst (a wrong row or scale moves
// the logits by their whole spread), and the clicks still ranked alike (Pearson r > 0.99).
TEST(Dlrm, Int8TablesKeepTheFusedForwardCloseToTheFp32Tables) {
  torch::set_num_threads(2);
  const ClickData d = make_synthetic_clicks(300, 5, 2026, 50);
  for (Variant variant : {Variant::Int8Dense, Variant::Int8Sparse}) {
    torch::manual_seed(3);  // converted_dlrm's model, unconverted
    Dlrm plain(50);
    torch::NoGradGuard g;
    for (auto& t : plain->tables) t->weight.normal_(0.0, 0.3);
    const auto fp32_model = plain->forward(d.dense, d.sparse);
    Dlrm model = converted_dlrm(variant, d);
    const size_t params = model->parameters().size(), buffers = model->buffers().size();
    const auto state = model->named_parameters().size();
    const auto fp32_tables = model->forward(d.dense, d.sparse);
    EXPECT_FALSE(model->has_int8_tables());
    model->quantize_tables();
    ASSERT_TRUE(model->has_int8_tables());
    EXPECT_EQ(model->parameters().size(), params);
    EXPECT_EQ(model->buffers().size(), buffers);
    EXPECT_EQ(model->named_parameters().size(), state);
    const auto int8_tables = model->forward(d.dense, d.sparse);
    model->use_int8_tables = false;
    EXPECT_TRUE(torch::equal(model->forward(d.dense, d.sparse), fp32_tables)) << "use_int8_tables = false";
    model->use_int8_tables = true;
    model->fuse_int8_interaction = false;
    const auto unfused = model->forward(d.dense, d.sparse);  // LibTorch reads the FP32 tables
    model->fuse_int8_interaction = true;
    EXPECT_LT((unfused - fp32_tables).abs().max().item<double>(), 0.05 * fp32_tables.std().item<double>());

    const double spread = fp32_tables.std().item<double>();
    const auto diff = (int8_tables - fp32_tables).abs();
    EXPECT_GT(diff.max().item<double>(), 0.0) << to_string(variant) << ": the INT8 tables were not used";
    const auto conv = (fp32_tables - fp32_model).abs();
    EXPECT_LT(diff.max().item<double>(), 2 * conv.max().item<double>()) << to_string(variant);
    EXPECT_LT(diff.mean().item<double>(), 2 * conv.mean().item<double>()) << to_string(variant);
    const auto r = torch::corrcoef(torch::stack({int8_tables, fp32_tables}))[0][1].item<double>();
    EXPECT_GT(r, 0.99) << to_string(variant);
    std::cout << to_string(variant) << ": INT8 tables change the logits by " << diff.mean().item<double>() / spread
              << " (mean), " << diff.max().item<double>() / spread << " (max) of their spread; convert() by "
              << conv.mean().item<double>() / spread << ", " << conv.max().item<double>() / spread << "; r " << r
              << "\n";
    model->drop_int8_tables();
    EXPECT_TRUE(torch::equal(model->forward(d.dense, d.sparse), fp32_tables));
  }
  // An FP32 model: quantize_tables() only prepares; LibTorch's forward is unchanged.
  torch::manual_seed(1);
  Dlrm fp32(50);
  torch::NoGradGuard g;
  const auto before = fp32->forward(d.dense, d.sparse);
  fp32->quantize_tables();
  EXPECT_TRUE(torch::equal(fp32->forward(d.dense, d.sparse), before));
}

TEST(Dlrm, SyntheticDataIsReproducibleAndCriteoLike) {
  const ClickData a = make_synthetic_clicks(20000, 5, 2026, 1000);
  const ClickData b = make_synthetic_clicks(20000, 5, 2026, 1000);
  EXPECT_TRUE(torch::equal(a.sparse, b.sparse));
  EXPECT_TRUE(torch::equal(a.labels, b.labels));
  const double ctr = a.labels.mean().item<double>();
  EXPECT_GT(ctr, 0.18);
  EXPECT_LT(ctr, 0.35);
  EXPECT_GE(a.sparse.min().item<int64_t>(), 0);
  const auto sizes = dlrm_table_sizes(1000);
  for (int f = 0; f < 26; ++f) EXPECT_LT(a.sparse.select(1, f).max().item<int64_t>(), sizes[size_t(f)]);
  EXPECT_GE(a.dense.min().item<float>(), 0.f);
  EXPECT_FALSE(torch::equal(make_synthetic_clicks(100, 6, 2026, 1000).sparse, a.sparse.narrow(0, 0, 100)));
}

TEST(Dlrm, AucOfKnownRankings) {
  const auto y = torch::tensor({0.f, 0.f, 1.f, 1.f});
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.1f, 0.2f, 0.8f, 0.9f}), y), 1.0);
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.9f, 0.8f, 0.2f, 0.1f}), y), 0.0);
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.5f, 0.5f, 0.5f, 0.5f}), y), 0.5);
  EXPECT_DOUBLE_EQ(roc_auc(torch::tensor({0.1f, 0.6f, 0.5f, 0.9f}), y), 0.75);
  // One class only: no ranking to measure (it printed 0.5000 beside 100% accuracy).
  EXPECT_TRUE(std::isnan(roc_auc(torch::tensor({0.1f, 0.6f}), torch::tensor({0.0f, 0.0f}))));
}

TEST(Dlrm, LearnsTheTeacher) {
  torch::set_num_threads(2);
  torch::manual_seed(0);  // the initialization, whatever ran before in this process
  const ClickData train = make_synthetic_clicks(4096, 11, 2026, 50);
  const ClickData test = make_synthetic_clicks(2048, 12, 2026, 50);
  Dlrm model(50);
  const double auc_before = evaluate_clicks(*model, test).auc;
  DlrmTrainOptions o;
  o.epochs = 2;
  o.batch_size = 256;
  std::ostringstream log;
  const DlrmTrainResult r = train_dlrm(*model, train, test, o, log);
  EXPECT_EQ(r.steps, 2 * 4096 / 256);
  EXPECT_GT(r.test.auc, 0.6) << "AUC before training " << auc_before << "\n" << log.str();
  EXPECT_FALSE(r.report.has_value());
}

TEST(Dlrm, PrunesTheMlpsTo4x16AndLeavesTheExcludedLayersDense) {
  torch::set_num_threads(2);
  const ClickData train = make_synthetic_clicks(1024, 13, 2026, 50);
  torch::manual_seed(3);
  Dlrm model(50);
  DlrmTrainOptions o;
  o.batch_size = 256;
  o.recipe = dlrm_recipe(spruce::Pattern::block(4, 16), 0.85, 4);
  std::ostringstream log;
  const DlrmTrainResult r = train_dlrm(*model, train, train.slice(0, 256), o, log);
  EXPECT_NEAR(r.sparsity, 0.85, 0.01);
  ASSERT_TRUE(r.report.has_value());
  EXPECT_EQ(r.report->layers.size(), 6u);  // bottom.1-2, top.0-3
  auto follows = [](const torch::Tensor& w) {
    return spruce::follows_pattern(spruce::Pattern::block(4, 16),
                                   spruce::mask_of_nonzeros({w.data_ptr<float>(), w.size(0), w.size(1)}));
  };
  for (size_t i : {1, 2}) EXPECT_TRUE(follows(model->bottom->linear(i)->weight));
  for (size_t i : {0, 1, 2, 3}) EXPECT_TRUE(follows(model->top->linear(i)->weight));
  EXPECT_NEAR((model->top->linear(1)->weight == 0).to(torch::kDouble).mean().item<double>(), 0.85, 0.01);
  EXPECT_EQ((model->bottom->linear(0)->weight == 0).sum().item<int64_t>(), 0);  // excluded: dense
  EXPECT_EQ((model->top->linear(4)->weight == 0).sum().item<int64_t>(), 0);
}
