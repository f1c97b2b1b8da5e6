// Pruning all-MiniLM-L6-v2 by distillation: the fortune corpus and its held-out split, the
// fidelity metrics on constructed cases, and a few real steps that reach the pattern's sparsity.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

#include "minilm/distill.hpp"
#include "minilm/distill_checkpoint.hpp"
#include "spruce/error.hpp"

namespace fs = std::filesystem;

namespace {

TEST(Fidelity, IsPerfectForTheTeacherAndFallsWithNoise) {
  torch::manual_seed(3);
  const auto teacher = torch::nn::functional::normalize(torch::randn({40, 16}));
  const auto same = minilm::measure_fidelity(teacher, teacher);
  EXPECT_NEAR(same.mean_cosine, 1.0, 1e-6);
  EXPECT_DOUBLE_EQ(same.top10_overlap, 1.0);
  EXPECT_NEAR(same.spearman, 1.0, 1e-9);
  const auto noisy = torch::nn::functional::normalize(teacher + 0.1 * torch::randn({40, 16}));
  const auto f = minilm::measure_fidelity(noisy, teacher);
  EXPECT_LT(f.mean_cosine, 0.99);
  EXPECT_LT(f.top10_overlap, 1.0);
  EXPECT_GT(f.spearman, 0.5);  // still related
  EXPECT_LT(f.spearman, 0.99);
  // Unrelated embeddings: about chance (10 of 39 neighbours) and no rank correlation.
  const auto other = torch::nn::functional::normalize(torch::randn({40, 16}));
  const auto unrelated = minilm::measure_fidelity(other, teacher);
  EXPECT_LT(unrelated.top10_overlap, 0.45);
  EXPECT_LT(std::abs(unrelated.spearman), 0.2);
  EXPECT_THROW(minilm::measure_fidelity(teacher.narrow(0, 0, 10), teacher.narrow(0, 0, 10)), spruce::Error);
}

// A crop is a run of whole, consecutive words: at least 3, never the whole text, and many runs occur.
TEST(Distill, CropsAreRunsOfConsecutiveWords) {
  const std::string text = "one two three four five six seven";
  std::mt19937_64 rng(11);
  std::set<std::string> seen;
  for (int i = 0; i < 400; ++i) {
    const std::string crop = minilm::crop_words(text, 3, rng);
    ASSERT_NE(crop, text);
    ASSERT_NE(text.find(crop), std::string::npos) << crop;
    ASSERT_TRUE(crop.front() != ' ' && crop.back() != ' ') << "'" << crop << "'";
    const size_t at = text.find(crop), end = at + crop.size();
    ASSERT_TRUE(at == 0 || text[at - 1] == ' ') << "'" << crop << "' starts inside a word";
    ASSERT_TRUE(end == text.size() || text[end] == ' ') << "'" << crop << "' ends inside a word";
    ASSERT_GE(std::count(crop.begin(), crop.end(), ' '), 2) << "'" << crop << "' has fewer than 3 words";
    seen.insert(crop);
  }
  EXPECT_EQ(seen.size(), 5u + 4u + 3u + 2u);  // every run of 3 to 6 of the 7 words
  EXPECT_EQ(minilm::crop_words("too short", 3, rng), "too short");
  EXPECT_EQ(minilm::crop_words("just three words", 3, rng), "just three words");
}

// Constant until the masks stop changing, then a straight line to zero at the last step.
TEST(Distill, LearningRateDecaysAfterTheLastMaskUpdate) {
  EXPECT_DOUBLE_EQ(minilm::decayed_learning_rate(1e-3, 0, 70, 100), 1e-3);
  EXPECT_DOUBLE_EQ(minilm::decayed_learning_rate(1e-3, 70, 70, 100), 1e-3);
  EXPECT_DOUBLE_EQ(minilm::decayed_learning_rate(1e-3, 85, 70, 100), 0.5e-3);
  EXPECT_DOUBLE_EQ(minilm::decayed_learning_rate(1e-3, 99, 70, 100), 1e-3 / 30);
  EXPECT_DOUBLE_EQ(minilm::decayed_learning_rate(1e-3, 50, 0, 100), 0.5e-3);  // 2:4: the whole run
  EXPECT_DOUBLE_EQ(minilm::decayed_learning_rate(1e-3, 99, 100, 100), 1e-3);  // no steps left to decay over
}

TEST(Distill, TheDecayStartsWhenTheMasksStopChanging) {
  minilm::DistillOptions o;
  o.steps = 1000;
  EXPECT_EQ(minilm::decay_start(o), 0) << "no pruning: the whole run";
  o.recipe = minilm::encoder_recipe(spruce::Pattern::parse("2:4"), 0.5, 1000, spruce::Criterion::Wanda);
  EXPECT_EQ(minilm::decay_start(o), 0) << "2:4 set whole at the start";
  o.recipe->groups[0].gradual_nm = true;
  EXPECT_EQ(minilm::decay_start(o), 700) << "gradual 2:4 changes its masks until 70% of the steps";
  o.recipe = minilm::encoder_recipe(spruce::Pattern::parse("4x1"), 0.8, 1000, spruce::Criterion::Wanda);
  EXPECT_EQ(minilm::decay_start(o), 700);
  o.decay_lr = false;
  EXPECT_EQ(minilm::decay_start(o), 1000) << "a constant rate never decays";
}

// Straight-through re-scores the masks about 100 times until 70% of the steps, N:M included.
TEST(Distill, StraightThroughRecipesKeepChangingTheirMasks) {
  const auto plain = minilm::encoder_recipe(spruce::Pattern::parse("2:4"), 0.5, 1000, spruce::Criterion::Wanda);
  EXPECT_FALSE(plain.groups[0].straight_through);
  for (const char* pattern : {"2:4", "4x1"}) {
    const spruce::PruningGroup g =
        minilm::encoder_recipe(spruce::Pattern::parse(pattern), 0.5, 1000, spruce::Criterion::Wanda, true, 0.002)
            .groups[0];
    EXPECT_TRUE(g.straight_through) << pattern;
    EXPECT_DOUBLE_EQ(g.straight_through_decay, 0.002) << pattern;
    EXPECT_EQ(g.schedule.end_step, 700) << pattern;
    EXPECT_EQ(g.schedule.frequency, 7) << pattern;
  }
}

class FortuneDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("spruce_fortunes_" + std::to_string(getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  fs::path dir_;
};

TEST_F(FortuneDir, ReadsSplitsAndDeduplicates) {
  std::string fortunes;
  for (int i = 0; i < 300; ++i) fortunes += "Fortune number " + std::to_string(i) + " says\n  hello   there.\n%\n";
  fortunes += "Fortune number 0 says hello there.\n%\ntoo short\n%\n";  // a duplicate (after whitespace) and 2 words
  write("wisdom", fortunes);
  write("wisdom.dat", "binary index");
  write("ascii-art", "  ___  \n / _ \\ pictures are skipped\n%\n");
  const auto corpus = minilm::read_fortunes(dir_.string(), 10);
  EXPECT_EQ(corpus.train.size() + corpus.held_out.size(), 300u);
  EXPECT_GT(corpus.held_out.size(), 10u);
  EXPECT_LT(corpus.held_out.size(), 60u);
  std::set<std::string> train(corpus.train.begin(), corpus.train.end());
  for (const auto& t : corpus.held_out) EXPECT_EQ(train.count(t), 0u) << t;
  EXPECT_EQ(train.count("Fortune number 0 says hello there.") +
                (corpus.held_out.end() !=
                 std::find(corpus.held_out.begin(), corpus.held_out.end(), "Fortune number 0 says hello there.")),
            1u);
  // The split is a property of each text, not of the order it was read in.
  write("more", "An extra fortune that shifts nothing.\n%\n");
  const auto again = minilm::read_fortunes(dir_.string(), 10);
  for (const auto& t : corpus.held_out)
    EXPECT_NE(std::find(again.held_out.begin(), again.held_out.end(), t), again.held_out.end()) << t;
}

// Only the ASCII art is skipped: a filter on names containing "art" dropped startrek and art (quotes).
TEST_F(FortuneDir, EveryTextCollectionIsReadButTheAsciiArt) {
  std::string trek, quotes;
  for (int i = 0; i < 20; ++i) {
    trek += "Captain's log, stardate " + std::to_string(i) + ", nothing to report.\n%\n";
    quotes += "Art quote number " + std::to_string(i) + " about painting.\n%\n";
  }
  write("startrek", trek);
  write("art", quotes);
  write("ascii-art", "  ___  \n / _ \\ pictures are skipped\n%\n");
  const auto corpus = minilm::read_fortunes(dir_.string(), 10);
  EXPECT_EQ(corpus.train.size() + corpus.held_out.size(), 40u);
}

TEST_F(FortuneDir, NamesThePackageWhenThereAreNone) {
  try {
    minilm::read_fortunes((dir_ / "missing").string());
    ADD_FAILURE();
  } catch (const spruce::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fortunes"), std::string::npos) << e.what();
  }
}

TEST_F(FortuneDir, WordNetGivesDefinitionsAndExamplesNotAlreadyInTheCorpus) {
  const std::string license = "  1 This software and database is being provided to you, the LICENSEE, by  \n";
  write("data.noun", license +
                         "02084071 05 n 02 dog 0 domestic_dog 0 001 @ 02083346 n 0000 | a member of the genus Canis "
                         "(probably descended from the common wolf); \"the dog barked all night\"  \n"
                         "00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known or "
                         "inferred to have its own distinct existence (living or nonliving)  \n");
  write("data.verb", license +
                         "00001740 29 v 01 breathe 0 002 | draw air into, and expel out of, the lungs; \"I "
                         "can breathe better\"; \"wow\"; \"the dog barked all night\"  \n");
  write("data.adj", license);
  write("data.adv", license);
  minilm::Corpus corpus;
  corpus.held_out = {"I can breathe better"};
  minilm::add_wordnet(corpus, dir_.string());
  const std::vector<std::string> expected = {
      "a member of the genus Canis (probably descended from the common wolf)", "the dog barked all night",
      "that which is perceived or known or inferred to have its own distinct existence (living or nonliving)",
      "draw air into, and expel out of, the lungs"};  // "wow" is too short; the rest are in already
  EXPECT_EQ(corpus.extra, expected);
  EXPECT_TRUE(corpus.train.empty());
  fs::remove(dir_ / "data.adv");
  try {
    minilm::add_wordnet(corpus, dir_.string());
    ADD_FAILURE();
  } catch (const spruce::Error& e) {
    EXPECT_NE(std::string(e.what()).find("wordnet-base"), std::string::npos) << e.what();
  }
}

TEST(Distill, TrainingBatchesDrawTheirShareFromTheExtraTexts) {
  const auto encoder = minilm::SentenceEncoder::load(minilm::default_model_dir());
  minilm::Corpus corpus;
  for (int i = 0; i < 40; ++i) corpus.train.push_back("fortune " + std::to_string(i) + std::string(i % 7, '!'));
  for (int i = 0; i < 30; ++i) corpus.extra.push_back("definition " + std::to_string(i));
  minilm::DistillOptions o;
  o.steps = 300;
  o.batch = 8;
  auto from_extra = [&](double share) {
    o.extra_share = share;
    const auto batches = minilm::training_batches(encoder, corpus, o);
    EXPECT_EQ(batches.size(), 300u);
    size_t extra = 0;
    for (const auto& b : batches) {
      EXPECT_TRUE(b.texts == &corpus.train || b.texts == &corpus.extra);
      EXPECT_EQ(b.indices.size(), 8u);
      for (size_t i : b.indices) EXPECT_LT(i, b.texts->size());
      extra += b.texts == &corpus.extra;
    }
    return extra;
  };
  EXPECT_EQ(from_extra(0), 0u);
  EXPECT_EQ(from_extra(1), 300u);
  const size_t half = from_extra(0.5);
  EXPECT_GT(half, 110u);
  EXPECT_LT(half, 190u);
  corpus.extra.resize(7);  // fewer than a batch
  EXPECT_THROW(from_extra(0.5), spruce::Error);
  EXPECT_EQ(from_extra(0), 0u);
  o.extra_share = 1.5;
  EXPECT_THROW(minilm::training_batches(encoder, corpus, o), spruce::Error);
}

TEST(Distill, PrunesEveryEncoderLinearToTwoOfFourAndKeepsTheTeacher) {
  auto teacher = minilm::SentenceEncoder::load(minilm::default_model_dir());
  auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
  const auto teacher_before = teacher.model()->named_parameters()["encoder.layer.0.output.dense.weight"].clone();
  minilm::Corpus corpus;
  for (int i = 0; i < 64; ++i)
    corpus.train.push_back("training sentence " + std::to_string(i) + " about cats and dogs");
  for (int i = 0; i < 12; ++i) corpus.held_out.push_back("held out text " + std::to_string(i) + " on the weather");
  for (int i = 0; i < 8; ++i) corpus.extra.push_back("a definition, number " + std::to_string(i));
  minilm::DistillOptions o;
  o.steps = 4;
  o.batch = 8;
  o.recipe = minilm::encoder_recipe(spruce::Pattern::parse("2:4"), 0.5, o.steps);
  o.attention_weight = 1;  // every loss term on, attention transfer included
  o.dropout = 0.1;
  std::ostringstream log;
  const auto result = minilm::distill(teacher, student, corpus, o, log);
  ASSERT_TRUE(result.report);
  EXPECT_EQ(result.report->layers.size(), 36u);
  for (const auto& layer : result.report->layers) EXPECT_NEAR(layer.sparsity(), 0.5, 1e-9) << layer.name;
  EXPECT_TRUE(std::isfinite(result.final_loss));
  EXPECT_GT(result.fidelity.mean_cosine, 0.0);
  EXPECT_LT(result.fidelity.mean_cosine, 1.0);  // pruned: no longer the teacher
  EXPECT_TRUE(torch::equal(teacher.model()->named_parameters()["encoder.layer.0.output.dense.weight"], teacher_before));
  EXPECT_NE(log.str().find("held-out cosine"), std::string::npos) << log.str();
  // Dropout and recording attention were for training only: inference is deterministic again, and
  // back on the fused kernel.
  EXPECT_FALSE(student.model()->is_training());
  const auto in = student.tokenize({"a text"});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(student.model()->forward(in.ids, in.mask).last_hidden,
                           student.model()->forward(in.ids, in.mask).last_hidden));
  EXPECT_TRUE(student.model()->forward(in.ids, in.mask).attention_log_probs.empty());
  EXPECT_TRUE(teacher.model()->forward(in.ids, in.mask).attention_log_probs.empty());
}

// Reordering the channels for 2:4 changes no embedding (each permutation is undone by the layer
// that reads it), raises the score the 2:4 masks keep, and moves V's rows only within their heads.
TEST(ChannelOrder, ReorderingForTwoOfFourKeepsTheFunction) {
  auto teacher = minilm::SentenceEncoder::load(minilm::default_model_dir());
  auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
  const std::vector<std::string> texts{"A cat sat on the mat.", "Stocks fell sharply on Monday.",
                                       "The quick brown fox jumps over the lazy dog.", "Fortune favours the bold."};
  const auto inputs = minilm::gather_reordered_inputs(*student.model(), {student.tokenize(texts)});
  ASSERT_EQ(inputs.ffn_output.size(), 6u);
  EXPECT_EQ(inputs.ffn_output[0].size(), 1536u);
  EXPECT_EQ(inputs.attention_output[5].size(), 384u);
  const auto report =
      minilm::reorder_for_nm(*student.model(), spruce::Pattern::parse("2:4"), spruce::Criterion::Wanda, &inputs);
  EXPECT_EQ(report.layers, 12);
  EXPECT_GT(report.kept_after, report.kept_before * 1.005);
  EXPECT_LE(report.kept_after, report.total);
  torch::NoGradGuard no_grad;
  const auto cosine = (student.encode(texts) * teacher.encode(texts)).sum(1);
  EXPECT_GT(cosine.min().item<double>(), 0.99999);
  auto weight = [](minilm::SentenceEncoder& e, const std::string& name) {
    return e.model()->named_parameters()["encoder.layer.3." + name];
  };
  // Reordered: FFN in's rows and FFN out's columns; V's rows, each a row of the same head.
  EXPECT_FALSE(
      torch::equal(weight(student, "intermediate.dense.weight"), weight(teacher, "intermediate.dense.weight")));
  const auto v_student = weight(student, "attention.self.value.weight"),
             v_teacher = weight(teacher, "attention.self.value.weight");
  EXPECT_FALSE(torch::equal(v_student, v_teacher));
  for (int64_t head = 0; head < 12; ++head) {
    const auto rows = [&](const torch::Tensor& v) { return v.slice(0, head * 32, head * 32 + 32).sum(0); };
    EXPECT_TRUE(torch::allclose(rows(v_student), rows(v_teacher), 1e-5, 1e-6)) << "head " << head;
  }
  // Unchanged: what reads the residual stream.
  EXPECT_TRUE(
      torch::equal(weight(student, "attention.self.query.weight"), weight(teacher, "attention.self.query.weight")));
  EXPECT_THROW(minilm::reorder_for_nm(*student.model(), spruce::Pattern::parse("4x1"), spruce::Criterion::Magnitude),
               spruce::Error);
}

// Every recipe the encoder gets ends its mask updates within the run, so its last masks are set: a
// 1-step straight-through run ended with no pruning at all and saved a dense model.
TEST(Distill, EveryEncoderRecipeEndsItsUpdatesWithinTheRun) {
  for (int64_t steps = 1; steps <= 12; ++steps)
    for (const char* pattern : {"4x1", "2:4"})
      for (const auto criterion : {spruce::Criterion::Magnitude, spruce::Criterion::SparseGpt})
        for (const bool straight_through : {false, true}) {
          if (straight_through && criterion == spruce::Criterion::SparseGpt) continue;
          const auto r =
              minilm::encoder_recipe(spruce::Pattern::parse(pattern), 0.5, steps, criterion, straight_through);
          EXPECT_LE(r.groups[0].schedule.end_step, steps - 1)
              << pattern << ", " << steps << " steps" << (straight_through ? ", straight-through" : "");
        }
}

// 64 training and 12 held-out texts, enough for a few steps of 8.
minilm::Corpus tiny_corpus() {
  minilm::Corpus corpus;
  for (int i = 0; i < 64; ++i)
    corpus.train.push_back("training sentence " + std::to_string(i) + " about cats and dogs");
  for (int i = 0; i < 12; ++i) corpus.held_out.push_back("held out text " + std::to_string(i) + " on the weather");
  return corpus;
}

minilm::DistillOptions few_steps(int64_t steps) {
  minilm::DistillOptions o;
  o.steps = steps;
  o.batch = 8;
  o.attention_weight = 0;
  return o;
}

// --ema returns the average of the weights from the step after the last mask update on: the mask
// survives it, and with a decay near 1 the average stays near its first iterate, so its kept
// weights lie closer to the teacher's than the last iterate's do.
TEST(Distill, TheWeightAverageKeepsTheMaskAndIsWhatComesBack) {
  auto teacher = minilm::SentenceEncoder::load(minilm::default_model_dir());
  const minilm::Corpus corpus = tiny_corpus();
  minilm::DistillOptions o = few_steps(6);
  o.evaluations = 1;
  o.recipe = minilm::encoder_recipe(spruce::Pattern::parse("2:4"), 0.5, o.steps);
  const std::string name = "encoder.layer.2.intermediate.dense.weight";
  auto distance_to_teacher = [&](double ema, spruce::torch::SparsityReport* report) {
    auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
    o.ema = ema;
    std::ostringstream log;
    const auto result = minilm::distill(teacher, student, corpus, o, log);
    *report = *result.report;
    // How far training moved the kept weights from the teacher's (the pruned ones are zero in both).
    const auto w = student.model()->named_parameters()[name];
    return (w - teacher.model()->named_parameters()[name] * (w != 0)).norm().item<double>();
  };
  spruce::torch::SparsityReport last, averaged;
  const double from_last = distance_to_teacher(0, &last), from_average = distance_to_teacher(0.999, &averaged);
  for (const auto& layer : averaged.layers) EXPECT_NEAR(layer.sparsity(), 0.5, 1e-9) << layer.name;
  EXPECT_LT(from_average, from_last);
  o.ema = 1;
  auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
  std::ostringstream log;
  EXPECT_THROW(minilm::distill(teacher, student, corpus, o, log), spruce::Error);
}

// A run stopped twice and resumed from its checkpoint gives the student, the held-out checks and the
// masks of an uninterrupted run: the optimizer, the pruner's input statistics (wanda), the crop
// generator and the weight average all come back.
TEST(Distill, AResumedRunGivesWhatAnUninterruptedOneGives) {
  auto teacher = minilm::SentenceEncoder::load(minilm::default_model_dir());
  const minilm::Corpus corpus = tiny_corpus();
  minilm::DistillOptions o = few_steps(8);
  o.evaluations = 4;
  o.crop = 0.5;
  o.ema = 0.5;
  std::ostringstream log;
  const auto dir = std::filesystem::temp_directory_path() / ("spruce-distill-resume-" + std::to_string(getpid()));
  // 4x1: a schedule of updates, the stops between them; 2:4: set once, the average after it.
  for (const char* pattern : {"4x1", "2:4"}) {
    SCOPED_TRACE(pattern);
    o.recipe = minilm::encoder_recipe(spruce::Pattern::parse(pattern), 0.5, o.steps, spruce::Criterion::Wanda);
    o.permute_channels = o.recipe->groups[0].pattern.is_nm();  // reordered once, in the first sitting
    o.checkpoint_dir.clear();
    o.resume = false;
    o.stop_after = 0;
    auto whole = minilm::SentenceEncoder::load(minilm::default_model_dir());
    const auto expected = minilm::distill(teacher, whole, corpus, o, log);

    std::filesystem::remove_all(dir);
    o.checkpoint_dir = dir.string();
    o.checkpoint_every = 1;
    minilm::DistillResult got;
    for (int64_t stop : {3, 6, 0}) {  // three sittings, each with a freshly loaded student
      auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
      o.stop_after = stop;
      got = minilm::distill(teacher, student, corpus, o, log);
      o.resume = true;
      EXPECT_EQ(got.finished, stop == 0);
      EXPECT_EQ(got.steps, stop ? stop : o.steps);
      if (stop == 0) {
        for (const auto& item : student.model()->named_parameters())
          EXPECT_TRUE(torch::equal(item.value(), whole.model()->named_parameters()[item.key()])) << item.key();
      }
    }
    ASSERT_EQ(got.history.size(), expected.history.size());
    for (size_t i = 0; i < got.history.size(); ++i) {
      EXPECT_EQ(got.history[i].step, expected.history[i].step);
      EXPECT_EQ(got.history[i].fidelity.mean_cosine, expected.history[i].fidelity.mean_cosine) << i;
    }
    EXPECT_EQ(got.report->zeros(), expected.report->zeros());
    EXPECT_EQ(got.channel_order.has_value(), o.permute_channels);
    if (got.channel_order) {
      EXPECT_EQ(got.channel_order->kept_after, expected.channel_order->kept_after);
    }
  }

  // Another setting than the checkpoint's is refused, naming it; so is resuming from nothing.
  auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
  o.learning_rate *= 2;
  try {
    minilm::distill(teacher, student, corpus, o, log);
    ADD_FAILURE() << "resumed with another learning rate";
  } catch (const spruce::Error& e) {
    EXPECT_NE(std::string(e.what()).find("learning_rate"), std::string::npos) << e.what();
  }
  o.learning_rate /= 2;
  o.recipe = minilm::encoder_recipe(spruce::Pattern::parse("4x1"), 0.5, o.steps, spruce::Criterion::Wanda);
  try {  // the checkpoint is the 2:4 run's: the recipe's first differing line is named
    minilm::distill(teacher, student, corpus, o, log);
    ADD_FAILURE() << "resumed with another pattern";
  } catch (const spruce::Error& e) {
    EXPECT_NE(std::string(e.what()).find("another recipe (pattern: 2:4, here pattern: 4x1)"), std::string::npos)
        << e.what();
  }
  {  // a garbled checkpoint is a data error that names the file
    std::ofstream(minilm::checkpoint_path(dir.string()), std::ios::binary) << "PK\x03\x04 not a torch archive";
    try {
      minilm::distill(teacher, student, corpus, o, log);
      ADD_FAILURE() << "resumed from a garbled checkpoint";
    } catch (const spruce::Error& e) {
      EXPECT_NE(std::string(e.what()).find("checkpoint.pt: not a checkpoint"), std::string::npos) << e.what();
    }
  }
  std::filesystem::remove_all(dir);
  EXPECT_THROW(minilm::distill(teacher, student, corpus, o, log), spruce::Error);
  o.resume = false;
  o.checkpoint_dir.clear();
  o.stop_after = 4;  // stopping early needs a checkpoint to resume from
  EXPECT_THROW(minilm::distill(teacher, student, corpus, o, log), spruce::Error);
}

// What a resumed run trusts is checked: the teacher, every setting (one that an older checkpoint
// lacks taking its default, what runs then did), and every number of the run state, which --json
// reports (a step of 1e30 came out as INT64_MIN).
TEST(Distill, ACheckpointIsCheckedAgainstTheRunThatResumesIt) {
  auto student = minilm::SentenceEncoder::load(minilm::default_model_dir());
  std::vector<torch::Tensor> trained;
  for (auto& p : student.model()->parameters()) trained.push_back(p);
  torch::optim::AdamW optimizer(trained, torch::optim::AdamWOptions(1e-3));
  const minilm::Corpus corpus = tiny_corpus();
  minilm::DistillOptions o = few_steps(8);
  const std::string teacher = minilm::default_model_dir();
  const auto fingerprint = [&](const std::string& teacher_dir) {
    return minilm::distill_fingerprint(o, corpus, minilm::teacher_checksum(teacher_dir));
  };
  const std::string defaults =
      minilm::distill_fingerprint(minilm::DistillOptions{}, corpus, minilm::teacher_checksum(teacher));
  const auto dir = fs::temp_directory_path() / ("spruce-distill-check-" + std::to_string(getpid()));
  fs::remove_all(dir);
  minilm::DistillProgress good;
  good.step = 4, good.window = 2, good.seconds = 10, good.loss_sum = 1.5, good.cosine_sum = 1.8;
  good.history = {{2, 0.5, 0.3, minilm::Fidelity{0.9, 0.6, 0.8, 12}}};
  std::ostringstream crop;
  crop << std::mt19937_64();
  good.crop_rng = crop.str();
  good.torch_rng = at::globalContext().defaultGenerator(at::kCPU).get_state();
  const auto save = [&](const minilm::DistillProgress& p, const std::string& settings) {
    minilm::save_distill_checkpoint(dir.string(), student, optimizer, nullptr, p, settings);
  };
  const auto load = [&](const std::string& settings) {
    return minilm::load_distill_checkpoint(dir.string(), student, optimizer, nullptr, settings, defaults);
  };
  const auto refused = [&](const std::string& settings, const std::string& why) {
    try {
      load(settings);
      ADD_FAILURE() << "accepted; expected a refusal naming " << why;
    } catch (const spruce::Error& e) {
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  save(good, fingerprint(teacher));
  EXPECT_EQ(load(fingerprint(teacher)).history.size(), 1u);

  // A checkpoint from before --permute-channels: the setting is missing, and means off.
  auto older = nlohmann::json::parse(fingerprint(teacher));
  older.erase("permute_channels");
  save(good, older.dump());
  EXPECT_NO_THROW(load(fingerprint(teacher)));
  o.permute_channels = true;
  refused(fingerprint(teacher), "permute_channels");
  // Permuted, but no word of the reordering in the run state.
  save(good, fingerprint(teacher));
  refused(fingerprint(teacher), "does not say how");
  o.permute_channels = false;

  // Another teacher: one of its files differs.
  const auto other = fs::temp_directory_path() / ("spruce-distill-other-teacher-" + std::to_string(getpid()));
  fs::remove_all(other);
  fs::copy(teacher, other, fs::copy_options::recursive);
  std::ofstream(other / "config_sentence_transformers.json", std::ios::app) << "\n";
  save(good, fingerprint(teacher));
  refused(fingerprint(other.string()), "another teacher");
  fs::remove_all(other);

  // Numbers that no run writes.
  const std::vector<std::pair<std::function<void(minilm::DistillProgress&)>, std::string>> edits{
      {[](auto& p) { p.history[0].step = 7; }, "a held-out check's step"},
      {[](auto& p) { p.history.push_back(p.history[0]); }, "a held-out check's step"},
      {[](auto& p) { p.history[0].fidelity.mean_cosine = 7.5; }, "a mean cosine"},
      {[](auto& p) { p.history[0].fidelity.top10_overlap = -0.1; }, "a top-10 overlap"},
      {[](auto& p) { p.history[0].fidelity.texts = 3; }, "a held-out text count"},
      {[](auto& p) { p.seconds = -1; }, "seconds"},
      {[](auto& p) { p.window = 5; }, "window"},
      {[](auto& p) { p.cosine_sum = 9; }, "cosine sum"},
      {[](auto& p) {
         p.channel_order = minilm::ChannelOrderReport{12, 0.5, 1.5, 1.0, 1.0};
       },
       "kept channel score"},
      {[](auto& p) {
         p.channel_order = minilm::ChannelOrderReport{-5, 0.5, 0.6, 1.0, 1.0};
       },
       "reordered layers"},
  };
  for (const auto& [edit, why] : edits) {
    minilm::DistillProgress p = good;
    edit(p);
    save(p, fingerprint(teacher));
    refused(fingerprint(teacher), why);
  }
  fs::remove_all(dir);
}

}  // namespace
