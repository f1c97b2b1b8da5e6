// Pruning all-MiniLM-L6-v2 by distillation: the dense encoder teaches, a copy is pruned by the
// recipe while it learns to reproduce the teacher's embeddings (and, optionally, its hidden
// states) on the training texts; fidelity is then measured on held-out texts.
#pragma once
#include <torch/types.h>

#include <iosfwd>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "minilm/channel_order.hpp"
#include "minilm/corpus.hpp"
#include "minilm/options.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/recipe.hpp"
#include "spruce/torch/pruner.hpp"

namespace minilm {

// How closely a student's embeddings follow the teacher's on the same texts.
struct Fidelity {
  double mean_cosine = 0;    // between each text's student and teacher embeddings
  double top10_overlap = 0;  // shared share of each text's 10 nearest neighbours (retrieval)
  double spearman = 0;       // rank correlation of all pairwise similarities
  int64_t texts = 0;
};
// `student` and `teacher` [N][H] unit rows for the same N >= 11 texts.
Fidelity measure_fidelity(const ::torch::Tensor& student, const ::torch::Tensor& teacher);

struct FidelityPoint {
  int64_t step = 0;
  double sparsity = 0, loss = 0;
  Fidelity fidelity;
};

struct DistillResult {
  std::vector<FidelityPoint> history;  // each held-out evaluation during training
  int64_t steps = 0;                   // done, over every sitting
  bool finished = true;                // false when stop_after ended the sitting first
  double seconds = 0, final_loss = 0;
  Fidelity fidelity;
  std::optional<spruce::torch::SparsityReport> report;
  std::optional<ChannelOrderReport> channel_order;  // with options.permute_channels, in a new run
};

// A recipe for every Linear of the encoder (Q, K, V, attention output, FFN in and out), with the
// schedule reaching its target at 70% of `steps` and pruning 20 times on the way. Magnitude by
// default: at step 0 the student is the teacher, so distillation's gradients (and any score
// built on them, as snip's) are exactly zero. `straight_through` (not with sparsegpt) re-scores the
// masks about 100 times until 70% of the steps, N:M included, with that per-step decay.
spruce::Recipe encoder_recipe(const spruce::Pattern& pattern, double sparsity, int64_t steps,
                              spruce::Criterion criterion = spruce::Criterion::Magnitude, bool straight_through = false,
                              double straight_through_decay = 0.0);

// A random run of consecutive words of `text` (single-spaced), `min_words` long or more, shorter
// than the whole; the text itself when it has no more than `min_words` words.
std::string crop_words(const std::string& text, size_t min_words, std::mt19937_64& rng);

// Where the learning rate starts to decay (options.decay_lr; else options.steps): once the masks stop
// changing, at the schedule's end, or at step 0 when every group is N:M set whole at the start
// (straight-through N:M too, as its runs were measured).
int64_t decay_start(const DistillOptions& options);

// The learning rate at `step`: constant until `decay_from`, then linearly down to 0 at `steps`.
double decayed_learning_rate(double base, int64_t step, int64_t decay_from, int64_t steps);

// One training step's texts: indices into `texts`.
struct TrainingBatch {
  const std::vector<std::string>* texts;
  std::vector<size_t> indices;
};

// options.steps batches of options.batch texts, each bucketed by length (padding little): a
// random share options.extra_share of them from corpus.extra (when it has texts), the rest from
// corpus.train. Throws spruce::Error (usage) when a source it draws from has fewer texts than a batch.
std::vector<TrainingBatch> training_batches(const SentenceEncoder& encoder, const Corpus& corpus,
                                            const DistillOptions& options);

// Throws spruce::Error (usage) unless `corpus` holds out 11 or more texts, the fewest the top-10
// retrieval check can rank. `source` names where the texts came from, `fix` what to do instead.
void check_held_out(const Corpus& corpus, const std::string& source = "the corpus",
                    const std::string& fix = "give more texts");

// Trains `student` (a loaded copy of the teacher) in place; `teacher` is only run.
DistillResult distill(SentenceEncoder& teacher, SentenceEncoder& student, const Corpus& corpus,
                      const DistillOptions& options, std::ostream& log);

}  // namespace minilm
