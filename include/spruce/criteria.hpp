// Importance scores of weights, and their reduction per block of a pattern.
#pragma once
#include <span>
#include <string>
#include <string_view>

#include "spruce/matrix.hpp"
#include "spruce/pattern.hpp"

namespace spruce {

enum class Criterion {
  Magnitude,     // |W|
  Gradient,      // |G|
  Snip,          // |W * G|
  SnipMomentum,  // exponential moving average of |W * G|
  Wanda,         // |W| x the RMS of the input feature W multiplies (Sun et al. 2023, "Wanda")
  SparseGpt,     // OBS saliency with reconstruction of the kept weights (spruce/torch/reconstruction.hpp)
};
enum class Reduce { Mean, Sum, Max };

// "magnitude", "gradient", "snip", "snip_momentum", "wanda", "sparsegpt"
Criterion parse_criterion(std::string_view text);
std::string to_string(Criterion c);
const char* criterion_names();               // the names above, comma-separated, for messages
Reduce parse_reduce(std::string_view text);  // "mean", "sum", "max"
std::string to_string(Reduce r);
bool needs_gradient(Criterion c);
// Whether the scores need the layer's inputs (Wanda, SparseGpt), which only a training or calibration
// pass sees.
bool needs_inputs(Criterion c);

// Element-wise scores into `out` (same shape as w). `grad` may be empty unless needs_gradient(c);
// `input_rms` (one per column of w, the root mean square of that input feature over the rows
// seen) may be empty unless needs_inputs(c). SnipMomentum here gives the instantaneous |W * G|;
// ScoreAccumulator keeps the moving average. SparseGpt has no element scores: it throws.
void element_scores(Criterion c, MatrixView<const float> w, MatrixView<const float> grad, MatrixView<float> out,
                    std::span<const float> input_rms = {});

// Accumulates scores across steps: for SnipMomentum, s = beta * s + (1 - beta) * |W * G|
// (INC's beta 0.9); for the other criteria the latest score replaces the old one.
class ScoreAccumulator {
 public:
  explicit ScoreAccumulator(Criterion c, double beta = 0.9) : criterion_(c), beta_(beta) {}
  void update(MatrixView<const float> w, MatrixView<const float> grad);
  bool ready() const { return !scores_.data.empty(); }
  const MatrixF& scores() const { return scores_; }
  void reset() { scores_ = {}; }
  // Resumes from saved scores (a checkpoint's): snip_momentum's running average goes on from them.
  void restore(MatrixF scores) { scores_ = std::move(scores); }
  Criterion criterion() const { return criterion_; }

 private:
  Criterion criterion_;
  double beta_;
  MatrixF scores_;
};

// One score per block of the pattern's grid (grid_rows x grid_cols). For N:M the "blocks" are
// single elements, so this returns the element scores unchanged.
MatrixF block_scores(const Pattern& p, MatrixView<const float> scores, Reduce reduce = Reduce::Mean);

}  // namespace spruce
