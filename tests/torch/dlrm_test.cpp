#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sstream>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"
#include "spruce/torch/dlrm.hpp"
#include "spruce/torch/dlrm_train.hpp"

using namespace spruce::torch;

TEST(Dlrm, HasMlperfShapes) {
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
    return spruce::follows_pattern(spruce::Pattern::block(4, 16), spruce::mask_of_nonzeros({w.data_ptr<float>(), w.size(0), w.size(1)}));
  };
  for (size_t i : {1, 2}) EXPECT_TRUE(follows(model->bottom->linear(i)->weight));
  for (size_t i : {0, 1, 2, 3}) EXPECT_TRUE(follows(model->top->linear(i)->weight));
  EXPECT_NEAR((model->top->linear(1)->weight == 0).to(torch::kDouble).mean().item<double>(), 0.85, 0.01);
  EXPECT_EQ((model->bottom->linear(0)->weight == 0).sum().item<int64_t>(), 0);  // excluded: dense
  EXPECT_EQ((model->top->linear(4)->weight == 0).sum().item<int64_t>(), 0);
}
