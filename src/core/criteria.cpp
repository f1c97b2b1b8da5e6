#include "spruce/criteria.hpp"

#include <algorithm>
#include <cmath>

#include "spruce/error.hpp"

namespace spruce {

Criterion parse_criterion(std::string_view t) {
  if (t == "magnitude") return Criterion::Magnitude;
  if (t == "gradient") return Criterion::Gradient;
  if (t == "snip") return Criterion::Snip;
  if (t == "snip_momentum") return Criterion::SnipMomentum;
  if (t == "wanda") return Criterion::Wanda;
  if (t == "sparsegpt") return Criterion::SparseGpt;
  usage_error("unknown criterion '" + std::string(t) + "': valid are " + criterion_names());
}

const char* criterion_names() { return "magnitude, gradient, snip, snip_momentum, wanda, sparsegpt"; }

std::string to_string(Criterion c) {
  switch (c) {
    case Criterion::Magnitude: return "magnitude";
    case Criterion::Gradient: return "gradient";
    case Criterion::Snip: return "snip";
    case Criterion::SnipMomentum: return "snip_momentum";
    case Criterion::Wanda: return "wanda";
    case Criterion::SparseGpt: return "sparsegpt";
  }
  return "?";
}

Reduce parse_reduce(std::string_view t) {
  if (t == "mean") return Reduce::Mean;
  if (t == "sum") return Reduce::Sum;
  if (t == "max") return Reduce::Max;
  usage_error("unknown reduce type '" + std::string(t) + "': valid are mean, sum, max");
}

std::string to_string(Reduce r) {
  switch (r) {
    case Reduce::Mean: return "mean";
    case Reduce::Sum: return "sum";
    case Reduce::Max: return "max";
  }
  return "?";
}

bool needs_gradient(Criterion c) {
  return c != Criterion::Magnitude && c != Criterion::Wanda && c != Criterion::SparseGpt;
}
bool needs_inputs(Criterion c) { return c == Criterion::Wanda || c == Criterion::SparseGpt; }

namespace {
void check_same_shape(MatrixView<const float> a, MatrixView<const float> b, const char* what) {
  if (a.rows != b.rows || a.cols != b.cols)
    data_error(std::string(what) + " has shape " + std::to_string(b.rows) + "x" + std::to_string(b.cols) +
               " but the weight is " + std::to_string(a.rows) + "x" + std::to_string(a.cols));
}
}  // namespace

void element_scores(Criterion c, MatrixView<const float> w, MatrixView<const float> g, MatrixView<float> out,
                    std::span<const float> input_rms) {
  check_same_shape(w, out, "the score buffer");
  if (c == Criterion::SparseGpt)
    usage_error(
        "sparsegpt chooses masks while it reconstructs the weights, from the Gram matrix of the layer's "
        "inputs: it works through spruce::torch::Pruner while training or calibrating, not from scores alone");
  if (needs_gradient(c)) {
    if (!g.data) usage_error("criterion " + to_string(c) + " needs gradients; use magnitude without them");
    check_same_shape(w, g, "the gradient");
  }
  if (needs_inputs(c) && input_rms.size() != size_t(w.cols))
    usage_error("criterion " + to_string(c) + " needs the RMS of each of the layer's " + std::to_string(w.cols) +
                " input features (got " + std::to_string(input_rms.size()) +
                "); it works while training, where the layers' inputs are seen, or use magnitude");
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t k = 0; k < w.cols; ++k) {
      float v = 0.f;
      switch (c) {
        case Criterion::Magnitude: v = std::fabs(w(r, k)); break;
        case Criterion::Gradient: v = std::fabs(g(r, k)); break;
        case Criterion::Snip:
        case Criterion::SnipMomentum: v = std::fabs(w(r, k) * g(r, k)); break;
        case Criterion::Wanda: v = std::fabs(w(r, k)) * input_rms[size_t(k)]; break;
        case Criterion::SparseGpt: break;  // refused above
      }
      out(r, k) = v;
    }
}

void ScoreAccumulator::update(MatrixView<const float> w, MatrixView<const float> grad) {
  const bool fresh = !ready() || scores_.rows != w.rows || scores_.cols != w.cols;
  if (fresh || criterion_ != Criterion::SnipMomentum) {
    if (fresh) scores_ = MatrixF(w.rows, w.cols);
    element_scores(criterion_, w, grad, scores_.view());
    if (criterion_ == Criterion::SnipMomentum)
      for (float& s : scores_.data) s *= float(1.0 - beta_);
    return;
  }
  // The moving average in place: no allocation per training step.
  if (!grad.data) usage_error("criterion snip_momentum needs gradients; use magnitude without them");
  check_same_shape(w, grad, "the gradient");
  const float b = float(beta_), a = float(1.0 - beta_);
  for (int64_t r = 0; r < w.rows; ++r) {
    float* s = &scores_(r, 0);
    for (int64_t k = 0; k < w.cols; ++k) s[k] = b * s[k] + a * std::fabs(w(r, k) * grad(r, k));
  }
}

MatrixF block_scores(const Pattern& p, MatrixView<const float> s, Reduce reduce) {
  if (p.is_nm()) {
    MatrixF out(s.rows, s.cols);
    for (int64_t r = 0; r < s.rows; ++r)
      for (int64_t c = 0; c < s.cols; ++c) out(r, c) = s(r, c);
    return out;
  }
  BlockGrid g = block_grid(p, s.rows, s.cols);
  MatrixF out(g.grid_rows(), g.grid_cols());
  for (int64_t i = 0; i < g.grid_rows(); ++i)
    for (int64_t j = 0; j < g.grid_cols(); ++j) {
      double acc = reduce == Reduce::Max ? -INFINITY : 0.0;
      for (int64_t r = g.row_begin(i); r < g.row_end(i); ++r)
        for (int64_t c = g.col_begin(j); c < g.col_end(j); ++c)
          acc = reduce == Reduce::Max ? std::max(acc, double(s(r, c))) : acc + s(r, c);
      if (reduce == Reduce::Mean) acc /= double(g.block_elems(i, j));
      out(i, j) = float(acc);
    }
  return out;
}

}  // namespace spruce
