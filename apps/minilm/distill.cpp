#include "minilm/distill.hpp"

#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <ostream>
#include <random>
#include <sstream>

#include "minilm/distill_checkpoint.hpp"
#include "spruce/error.hpp"
#include "spruce/torch/distillation.hpp"

namespace minilm {
namespace {

// Ranks 0..n-1 of a 1-D tensor's values (ties, rare in floats, get distinct ranks).
::torch::Tensor ranks(const ::torch::Tensor& values) {
  const auto order = values.argsort();
  auto r = ::torch::empty_like(values);
  r.index_put_({order}, ::torch::arange(values.numel(), values.options()));
  return r;
}

double pearson(const ::torch::Tensor& a, const ::torch::Tensor& b) {
  const auto x = a.to(::torch::kDouble) - a.to(::torch::kDouble).mean();
  const auto y = b.to(::torch::kDouble) - b.to(::torch::kDouble).mean();
  return ((x * y).sum() / (x.norm() * y.norm())).item<double>();
}

std::string percent(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f%%", 100 * v);
  return s;
}

// `steps` batches of text indices: each pool of 16 batches' worth of shuffled texts is sorted by
// token count and cut into batches (in shuffled order), so a batch pads little, as
// sentence-transformers' trainers bucket by length.
std::vector<std::vector<size_t>> length_bucketed_batches(const SentenceEncoder& encoder,
                                                         const std::vector<std::string>& texts, int64_t batch,
                                                         int64_t steps, uint64_t seed) {
  std::vector<size_t> lengths(texts.size());
  for (size_t i = 0; i < texts.size(); ++i) lengths[i] = encoder.tokenizer().tokenize(texts[i]).size();
  std::mt19937_64 rng(seed);
  std::vector<size_t> order(texts.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::vector<std::vector<size_t>> out;
  const size_t b = static_cast<size_t>(batch), pool = 16 * b;
  while (out.size() < static_cast<size_t>(steps)) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t begin = 0; begin + b <= order.size() && out.size() < static_cast<size_t>(steps); begin += pool) {
      const size_t end = std::min(order.size(), begin + pool);
      std::vector<size_t> chunk(order.begin() + static_cast<ptrdiff_t>(begin),
                                order.begin() + static_cast<ptrdiff_t>(end));
      std::sort(chunk.begin(), chunk.end(), [&](size_t x, size_t y) { return lengths[x] < lengths[y]; });
      std::vector<std::vector<size_t>> cut;
      for (size_t i = 0; i + b <= chunk.size(); i += b)
        cut.emplace_back(chunk.begin() + static_cast<ptrdiff_t>(i), chunk.begin() + static_cast<ptrdiff_t>(i + b));
      std::shuffle(cut.begin(), cut.end(), rng);
      for (auto& c : cut)
        if (out.size() < static_cast<size_t>(steps)) out.push_back(std::move(c));
    }
  }
  return out;
}

// Attention recording on both models while it lives (off again however training ends).
class AttentionRecording {
 public:
  AttentionRecording(BertModelImpl& teacher, BertModelImpl& student, bool on) : teacher_(teacher), student_(student) {
    teacher_.set_record_attention(on), student_.set_record_attention(on);
  }
  ~AttentionRecording() { teacher_.set_record_attention(false), student_.set_record_attention(false); }
  AttentionRecording(const AttentionRecording&) = delete;
  AttentionRecording& operator=(const AttentionRecording&) = delete;

 private:
  BertModelImpl &teacher_, &student_;
};

// What the losses on the teacher's embedding bank need: the bank, its spread, and each row's own
// entry in it (undefined: none).
struct BankTerms {
  ::torch::Tensor bank, spread, self;
};

// The step's loss: the embedding's 1 - cosine plus every term the options weigh in.
::torch::Tensor distillation_loss(const DistillOptions& o, const EncoderOutput& out, const EncoderOutput& target,
                                  const ::torch::Tensor& mask, const ::torch::Tensor& embedding,
                                  const ::torch::Tensor& target_embedding, const BankTerms& b) {
  namespace st = spruce::torch;
  auto loss = st::embedding_distillation(embedding, target_embedding);
  if (o.hidden_weight > 0)
    loss = loss + o.hidden_weight * st::hidden_state_distillation(out.hidden_states, target.hidden_states, mask);
  if (o.attention_weight > 0)
    loss = loss + o.attention_weight *
                      (st::attention_distillation(out.attention_log_probs, target.attention_log_probs, mask) +
                       st::attention_distillation(out.value_relation_log_probs, target.value_relation_log_probs, mask));
  if (o.similarity_weight > 0)
    loss = loss + o.similarity_weight * st::similarity_distillation(embedding, target_embedding);
  if (o.spread_weight > 0)
    loss = loss + o.spread_weight * st::spread_distillation(embedding, target_embedding, b.spread);
  if (o.neighbour_weight > 0)
    loss = loss + o.neighbour_weight *
                      st::neighbour_distillation(embedding, target_embedding, b.bank, o.neighbour_temperature, b.self);
  return loss;
}

// Reorders the student's channels for the recipe's N:M pattern, by |W| x input RMS (the inputs of
// the run's first batches) for the criteria that read inputs, wanda and sparsegpt, else by |W|; and
// says what the masks gain.
ChannelOrderReport reorder_channels(SentenceEncoder& student, const std::vector<TrainingBatch>& batches,
                                    const DistillOptions& o, std::ostream& log) {
  if (!o.recipe || o.recipe->groups.size() != 1 || !o.recipe->groups[0].pattern.is_nm())
    spruce::usage_error("channel permutation needs one N:M pattern for the encoder, such as 2:4");
  const spruce::PruningGroup& g = o.recipe->groups[0];
  std::optional<ReorderedInputs> inputs;
  if (spruce::needs_inputs(g.criterion)) {
    std::vector<Inputs> first;
    for (size_t b = 0; b < std::min<size_t>(batches.size(), 8); ++b) {
      std::vector<std::string> texts;
      for (size_t i : batches[b].indices) texts.push_back((*batches[b].texts)[i]);
      first.push_back(student.tokenize(texts));
    }
    inputs = gather_reordered_inputs(*student.model(), first);
  }
  const ChannelOrderReport r = reorder_for_nm(*student.model(), g.pattern, g.criterion, inputs ? &*inputs : nullptr);
  // The scores used: wanda's for the criteria that read inputs, |W| for the others, whose own scores
  // (gradients) are zero while the student is the teacher.
  const char* scores = inputs ? "|W| x input RMS" : "|W|";
  char line[300];
  if (r.total > 0)
    std::snprintf(line, sizeof line,
                  "channel permutation: %s keeps %.2f%% of the %s scores of the %lld reordered layers, %.2f%% "
                  "before (%.1f s)\n",
                  g.pattern.str().c_str(), 100 * r.kept_after / r.total, scores, (long long)r.layers,
                  100 * r.kept_before / r.total, r.seconds);
  else
    std::snprintf(line, sizeof line, "channel permutation: every %s score is zero, so the order stays\n", scores);
  log << line << std::flush;
  return r;
}

}  // namespace

Fidelity measure_fidelity(const ::torch::Tensor& student, const ::torch::Tensor& teacher) {
  const int64_t n = student.size(0);
  if (n < 11 || !student.sizes().equals(teacher.sizes()))
    spruce::usage_error("fidelity needs the same 11 or more texts embedded by student and teacher");
  ::torch::NoGradGuard no_grad;
  Fidelity f;
  f.texts = n;
  f.mean_cosine = (student * teacher).sum(1).mean().item<double>();
  const auto eye = ::torch::eye(n, ::torch::kBool);
  const auto sim_s = student.matmul(student.t()).masked_fill(eye, -2.0);
  const auto sim_t = teacher.matmul(teacher.t()).masked_fill(eye, -2.0);
  const auto top_s = std::get<1>(sim_s.topk(10, 1)), top_t = std::get<1>(sim_t.topk(10, 1));
  // Shared neighbours per text: each of the student's 10 found among the teacher's 10.
  const auto shared = (top_s.unsqueeze(2) == top_t.unsqueeze(1)).any(2).sum(1).to(::torch::kDouble);
  f.top10_overlap = (shared / 10).mean().item<double>();
  const auto upper = ::torch::triu_indices(n, n, 1);
  const auto pairs_s = sim_s.index({upper[0], upper[1]}), pairs_t = sim_t.index({upper[0], upper[1]});
  f.spearman = pearson(ranks(pairs_s), ranks(pairs_t));
  return f;
}

spruce::Recipe encoder_recipe(const spruce::Pattern& pattern, double sparsity, int64_t steps,
                              spruce::Criterion criterion, bool straight_through, double straight_through_decay) {
  spruce::Recipe r = spruce::Recipe::single(pattern, sparsity);
  spruce::PruningGroup& g = r.groups[0];
  g.op_names = {"^encoder\\.layer\\.[0-9]+\\."};
  g.op_types = {"Linear"};
  g.criterion = criterion;
  g.scope = spruce::Scope::Local;  // every layer at the target: what the kernels will see
  g.schedule.start_step = 0;
  g.schedule.end_step = std::max<int64_t>(0, steps * 7 / 10);
  g.schedule.frequency = std::max<int64_t>(1, g.schedule.end_step / 20);
  if (criterion == spruce::Criterion::SparseGpt) {
    // The first update waits for the Gram matrices of kGramSteps batches (the student is still the
    // teacher then, so those steps' gradients are zero and change nothing). N:M is set once: each
    // later update would rebuild the same pattern at the cost of the Gram matrices.
    g.schedule.start_step = std::min<int64_t>(spruce::torch::Pruner::kGramSteps, std::max<int64_t>(0, steps - 1));
    g.schedule.end_step =
        pattern.is_nm() ? g.schedule.start_step : std::max(g.schedule.start_step, g.schedule.end_step);
    g.schedule.frequency = std::max<int64_t>(1, (g.schedule.end_step - g.schedule.start_step) / 20);
  }
  if (straight_through) {
    g.straight_through = true;
    g.straight_through_decay = straight_through_decay;
    // The last update at step `steps` - 1 at the latest, or a 1-step run never reaches its masks.
    g.schedule.end_step = std::min<int64_t>(std::max<int64_t>(1, steps * 7 / 10), std::max<int64_t>(0, steps - 1));
    g.schedule.frequency = std::max<int64_t>(1, g.schedule.end_step / 100);
  }
  return r;
}

std::string crop_words(const std::string& text, size_t min_words, std::mt19937_64& rng) {
  std::vector<size_t> starts{0};  // where each word begins
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if (text[i] == ' ') starts.push_back(i + 1);
  const size_t words = starts.size();
  if (words <= min_words) return text;
  const size_t length = std::uniform_int_distribution<size_t>(min_words, words - 1)(rng);
  const size_t first = std::uniform_int_distribution<size_t>(0, words - length)(rng);
  const size_t begin = starts[first], end = first + length < words ? starts[first + length] - 1 : text.size();
  return text.substr(begin, end - begin);
}

std::vector<TrainingBatch> training_batches(const SentenceEncoder& encoder, const Corpus& corpus,
                                            const DistillOptions& o) {
  if (!(o.extra_share >= 0 && o.extra_share <= 1)) spruce::usage_error("the share of extra texts must be in [0, 1]");
  const double share = corpus.extra.empty() ? 0.0 : o.extra_share;
  if (share > 0 && corpus.extra.size() < static_cast<size_t>(o.batch))
    spruce::usage_error("fewer extra training texts than one batch");
  if (share < 1 && corpus.train.size() < static_cast<size_t>(o.batch))
    spruce::usage_error("fewer training texts than one batch");
  std::mt19937_64 rng(o.seed ^ 0x6578747261u);
  std::bernoulli_distribution from_extra(share);
  std::vector<bool> extra(static_cast<size_t>(o.steps));
  for (size_t i = 0; i < extra.size(); ++i) extra[i] = from_extra(rng);
  const auto n_extra = static_cast<int64_t>(std::count(extra.begin(), extra.end(), true));
  auto train_batches = length_bucketed_batches(encoder, corpus.train, o.batch, o.steps - n_extra, o.seed);
  auto extra_batches = length_bucketed_batches(encoder, corpus.extra, o.batch, n_extra, o.seed + 1);
  std::vector<TrainingBatch> out;
  size_t next_train = 0, next_extra = 0;
  for (const bool e : extra)
    out.push_back(
        {e ? &corpus.extra : &corpus.train, std::move(e ? extra_batches[next_extra++] : train_batches[next_train++])});
  return out;
}

int64_t decay_start(const DistillOptions& o) {
  if (!o.decay_lr) return o.steps;
  int64_t from = 0;
  if (o.recipe)
    for (const auto& g : o.recipe->groups)
      if (!g.pattern.is_nm() || g.gradual_nm) from = std::max(from, g.schedule.end_step);
  return from;
}

double decayed_learning_rate(double base, int64_t step, int64_t decay_from, int64_t steps) {
  if (step <= decay_from || steps <= decay_from) return base;
  return base * static_cast<double>(std::max<int64_t>(0, steps - step)) / static_cast<double>(steps - decay_from);
}

void check_held_out(const Corpus& corpus, const std::string& source, const std::string& fix) {
  if (corpus.held_out.size() < 11)
    spruce::usage_error(source + ": " + std::to_string(corpus.held_out.size()) +
                        " held-out texts, and the fidelity checks need 11 or more; " + fix);
}

DistillResult distill(SentenceEncoder& teacher, SentenceEncoder& student, const Corpus& corpus, const DistillOptions& o,
                      std::ostream& log) {
  if (o.steps < 1 || o.batch < 1) spruce::usage_error("distillation needs at least 1 step and a batch of 1");
  check_draw_size(o);
  if (!(o.crop >= 0 && o.crop <= 1)) spruce::usage_error("the share of cropped texts must be in [0, 1]");
  check_held_out(corpus);
  const auto started = std::chrono::steady_clock::now();
  double seconds_before = 0;  // a resumed run's earlier sittings, less this one's start
  auto elapsed = [&] {
    return seconds_before + std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  };
  ::torch::manual_seed(o.seed);
  const auto teacher_held_out = teacher.encode(corpus.held_out, 64);
  teacher.model()->eval();
  if (o.checkpoint_every < 0 || o.stop_after < 0) spruce::usage_error("checkpoint steps must not be negative");
  if ((o.resume || o.stop_after > 0) && o.checkpoint_dir.empty())
    spruce::usage_error("resuming and stopping early need a checkpoint folder (--checkpoint DIR)");
  DistillResult result;
  const auto batches = training_batches(student, corpus, o);
  // Dropout off by default: the student follows the teacher's deterministic outputs. With
  // o.dropout, the student's dropout layers (BERT's: hidden states and attention) regularize it.
  if (!(o.dropout >= 0 && o.dropout < 1)) spruce::usage_error("the dropout probability must be in [0, 1)");
  for (auto& m : student.model()->modules())
    if (auto* d = m->as<::torch::nn::Dropout>()) d->options.p(o.dropout);
  student.model()->train(o.dropout > 0);
  if (!(o.attention_weight >= 0)) spruce::usage_error("the attention loss's weight must not be negative");
  const bool attention = o.attention_weight > 0;
  const AttentionRecording recording(*teacher.model(), *student.model(), attention);
  // The embeddings are not pruned and stay the teacher's unless o.train_embeddings.
  for (auto& p : student.model()->embeddings->parameters()) p.set_requires_grad(o.train_embeddings);
  std::vector<::torch::Tensor> trained;
  for (auto& p : student.model()->parameters())
    if (p.requires_grad()) trained.push_back(p);
  ::torch::optim::AdamW optimizer(trained, ::torch::optim::AdamWOptions(o.learning_rate).weight_decay(0.0));
  if (!(o.ema >= 0 && o.ema < 1)) spruce::usage_error("the weight average's decay must be in [0, 1), e.g. 0.99");
  // The weight average starts once the masks are final, so that it averages masked weights only:
  // after the schedule's last update, or, for an N:M pattern, after its first (later updates pick
  // the same weights, the pruned ones scoring zero; the end re-applies the masks all the same).
  int64_t ema_from = 0;
  bool nm_first = false;
  if (o.recipe)
    for (const auto& g : o.recipe->groups) {
      if (g.pattern.is_nm() && !g.straight_through && !g.gradual_nm)
        nm_first = true;
      else
        ema_from = std::max(ema_from, g.schedule.end_step + 1);
    }
  std::vector<::torch::Tensor> averaged;  // of `trained`, once started
  auto swap_average = [&] {               // exchanges the trained weights with their average
    ::torch::NoGradGuard no_grad;
    for (size_t i = 0; i < trained.size(); ++i) {
      const auto held = trained[i].detach().clone();
      trained[i].detach().copy_(averaged[i]);
      averaged[i].copy_(held);
    }
  };
  if (!(o.neighbour_temperature > 0)) spruce::usage_error("the neighbourhood temperature must be positive");
  if (!(o.spread_weight >= 0)) spruce::usage_error("the spread loss's weight must not be negative");
  // Before the Pruner, whose input observers the calibration forwards would replace; a resumed run's
  // student was reordered in its first sitting.
  if (o.permute_channels && !o.resume) result.channel_order = reorder_channels(student, batches, o, log);
  std::optional<spruce::torch::Pruner> pruner;
  if (o.recipe) pruner.emplace(*student.model(), *o.recipe);
  if (pruner) pruner->on_train_begin();
  const bool redraw = o.progress_bar && isatty(STDERR_FILENO) && &log == &std::cerr;
  const int64_t decay_from = decay_start(o);
  // The teacher's embeddings of every training text: the bank each text's neighbours are drawn from.
  const ::torch::Tensor bank =
      o.neighbour_weight > 0 || o.spread_weight > 0 ? teacher.encode(corpus.train, 64) : ::torch::Tensor();
  const ::torch::Tensor spread = o.spread_weight > 0 ? spruce::torch::embedding_spread(bank) : ::torch::Tensor();
  std::mt19937_64 crop_rng(o.seed ^ 0x63726f70u);
  std::bernoulli_distribution cropped(o.crop);
  double loss_sum = 0, cosine_sum = 0;
  int64_t window = 0, first_step = 0;
  const int64_t every = std::max<int64_t>(1, o.steps / std::max<int64_t>(1, o.evaluations));  // held-out checks
  const int64_t checkpoint_every = o.checkpoint_every > 0 ? o.checkpoint_every : every;
  // Reads the teacher's files for their checksum: only for a run kept in a checkpoint.
  const std::string teacher_files = o.checkpoint_dir.empty() ? std::string() : teacher_checksum(teacher.directory());
  const std::string fingerprint =
      o.checkpoint_dir.empty() ? std::string() : distill_fingerprint(o, corpus, teacher_files);
  auto save = [&](int64_t done) {
    DistillProgress p;
    p.step = done, p.seconds = elapsed(), p.history = result.history;
    p.loss_sum = loss_sum, p.cosine_sum = cosine_sum, p.window = window;
    std::ostringstream rng;
    rng << crop_rng;
    p.crop_rng = rng.str();
    p.torch_rng = at::globalContext().defaultGenerator(at::kCPU).get_state();
    p.averaged = averaged;
    p.channel_order = result.channel_order;
    save_distill_checkpoint(o.checkpoint_dir, student, optimizer, pruner ? &*pruner : nullptr, p, fingerprint);
  };
  if (o.resume) {
    DistillProgress p =
        load_distill_checkpoint(o.checkpoint_dir, student, optimizer, pruner ? &*pruner : nullptr, fingerprint,
                                distill_fingerprint(DistillOptions{}, corpus, teacher_files));
    first_step = p.step;
    seconds_before = p.seconds - elapsed();
    loss_sum = p.loss_sum, cosine_sum = p.cosine_sum, window = p.window;
    result.history = std::move(p.history);
    if (!result.history.empty()) {
      result.fidelity = result.history.back().fidelity;
      result.final_loss = result.history.back().loss;
    }
    std::istringstream rng(p.crop_rng);
    rng >> crop_rng;
    at::Generator generator = at::globalContext().defaultGenerator(at::kCPU);
    generator.set_state(p.torch_rng);
    averaged = std::move(p.averaged);
    result.channel_order = p.channel_order;
    log << "distil: resumed from " << checkpoint_path(o.checkpoint_dir) << " after step " << first_step << "\n";
    if (o.stop_after > 0 && first_step >= o.stop_after)
      log << "distil: the run is already past --stop-after " << o.stop_after << "; nothing to do in this sitting\n";
  }
  int64_t step = first_step;
  for (; step < o.steps; ++step) {
    if (o.stop_after > 0 && step >= o.stop_after) break;
    std::vector<std::string> batch;
    const TrainingBatch& drawn = batches[static_cast<size_t>(step)];
    for (size_t i : drawn.indices) {
      const std::string& text = (*drawn.texts)[i];
      batch.push_back(cropped(crop_rng) ? crop_words(text, 3, crop_rng) : text);
    }
    const Inputs in = student.tokenize(batch);
    EncoderOutput target;
    {
      ::torch::NoGradGuard no_grad;
      target = teacher.model()->forward(in.ids, in.mask);
    }
    const auto target_embedding = mean_pool_normalized(target.last_hidden, in.mask);
    if (pruner) pruner->on_step_begin(step);
    const EncoderOutput out = student.model()->forward(in.ids, in.mask);
    const auto embedding = mean_pool_normalized(out.last_hidden, in.mask);
    // The bank holds the training texts: a batch of extra texts has no rows of its own there.
    const auto self =
        o.neighbour_weight > 0 && drawn.texts == &corpus.train
            ? ::torch::tensor(std::vector<int64_t>(drawn.indices.begin(), drawn.indices.end()), ::torch::kInt64)
            : ::torch::Tensor();
    const auto loss = distillation_loss(o, out, target, in.mask, embedding, target_embedding, {bank, spread, self});
    if (o.decay_lr)
      static_cast<::torch::optim::AdamWOptions&>(optimizer.param_groups()[0].options())
          .lr(decayed_learning_rate(o.learning_rate, step, decay_from, o.steps));
    // Diverged: every later step would be NaN too, and the saved model useless.
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      spruce::data_error("distil step " + std::to_string(step + 1) + ": the loss is " +
                         (std::isnan(loss_value) ? "NaN" : "infinite") + " (training diverged); lower --lr" +
                         (o.neighbour_weight > 0 ? " or raise --neighbour-temperature" : ""));
    optimizer.zero_grad();
    loss.backward();
    if (pruner) pruner->on_before_optimizer_step();
    optimizer.step();
    if (pruner) pruner->on_after_optimizer_step();
    if (pruner && step + 1 == o.steps) pruner->finish_updates();  // a run shorter than the warm-up
    if (o.ema > 0 && step >= ema_from && (!nm_first || pruner->mask_updates() > 0)) {
      ::torch::NoGradGuard no_grad;
      if (averaged.empty())
        for (const auto& p : trained) averaged.push_back(p.detach().clone());
      else
        for (size_t i = 0; i < trained.size(); ++i) averaged[i].mul_(o.ema).add_(trained[i].detach(), 1 - o.ema);
    }
    loss_sum += loss_value;
    cosine_sum += (embedding.detach() * target_embedding).sum(1).mean().item<double>();
    ++window;
    const double sparsity = pruner ? pruner->sparsity() : 0.0;
    if (redraw && (step % 5 == 0 || step + 1 == o.steps)) {
      char line[200];
      std::snprintf(line, sizeof line, "\rdistil step %lld/%lld  loss %.4f  cosine %.4f  sparsity %5.2f%% ",
                    (long long)(step + 1), (long long)o.steps, loss_sum / window, cosine_sum / window, 100 * sparsity);
      log << line << std::flush;
    }
    if ((step + 1) % every == 0 || step + 1 == o.steps) {
      student.model()->set_record_attention(false);  // inference: the fused kernel, no dropout
      student.model()->eval();
      if (!averaged.empty()) swap_average();
      const Fidelity f = measure_fidelity(student.encode(corpus.held_out, 64), teacher_held_out);
      if (!averaged.empty()) swap_average();
      student.model()->set_record_attention(attention);
      student.model()->train(o.dropout > 0);
      const double seconds = elapsed();
      char line[300];
      std::snprintf(line, sizeof line,
                    "%sstep %lld/%lld  loss %.4f  train cosine %.4f  held-out cosine %.4f  top-10 %.3f  "
                    "spearman %.4f  sparsity %s  %.0f s\n",
                    redraw ? "\r\033[K" : "", (long long)(step + 1), (long long)o.steps, loss_sum / window,
                    cosine_sum / window, f.mean_cosine, f.top10_overlap, f.spearman, percent(sparsity).c_str(),
                    seconds);
      log << line << std::flush;
      result.final_loss = loss_sum / window;
      result.fidelity = f;
      result.history.push_back({step + 1, sparsity, result.final_loss, f});
      loss_sum = cosine_sum = 0;
      window = 0;
    }
    if (!o.checkpoint_dir.empty() &&
        ((step + 1) % checkpoint_every == 0 || step + 1 == o.steps || step + 1 == o.stop_after))
      save(step + 1);
  }
  result.steps = step;
  if (step < o.steps) {  // stopped early: the checkpoint holds the run, the student is mid-way
    result.finished = false;
    result.seconds = elapsed();
    return result;
  }
  if (!averaged.empty()) {  // the student returned is the average
    swap_average();
    if (pruner) pruner->apply_masks();
  }
  student.model()->eval();  // as loaded: ready for inference
  if (pruner) result.report = pruner->on_train_end();
  result.seconds = elapsed();
  return result;
}

}  // namespace minilm
