#include "spruce/torch/reconstruction.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <string>

#include "spruce/error.hpp"
#include "spruce/mask.hpp"

namespace spruce::torch {
namespace {

// Columns per step: `wanted` rounded up to whole blocks (or N:M groups), so that no block straddles
// two steps; a pattern whose blocks span every column takes them all at once.
int64_t columns_per_step(const Pattern& p, int64_t ic, int64_t wanted) {
  if (p.is_block() && p.cols() == Pattern::kChannel) return ic;
  const int64_t unit = p.is_nm() ? p.m() : p.block_cols(ic);
  return std::min(ic, std::max<int64_t>(1, (wanted + unit - 1) / unit) * unit);
}

// The upper Cholesky factor U of the damped H's inverse (H^-1 = U^T U). Row j of U, over columns
// j.., is the row of the inverse of H restricted to columns j.., scaled: the OBS update for
// pruning column j once the columns before it are fixed. The damping grows tenfold until H is
// positive definite.
::torch::Tensor inverse_upper_factor(::torch::Tensor h, double damping) {
  auto diagonal = h.diagonal();
  diagonal.masked_fill_(diagonal <= 0, 1.0);  // a feature that was always zero: its weights cannot matter
  const double mean = diagonal.mean().item<double>();
  const auto eye = ::torch::eye(h.size(0), h.options());
  for (int attempt = 0; attempt < 8; ++attempt, damping *= 10) {
    auto [lower, info] = ::torch::linalg_cholesky_ex(h + eye * (damping * mean));
    if (info.item<int64_t>() != 0) continue;
    auto [upper, info_inverse] = ::torch::linalg_cholesky_ex(::torch::cholesky_inverse(lower), /*upper=*/true);
    if (info_inverse.item<int64_t>() == 0) return upper;
  }
  data_error("the layer's input Gram matrix stays singular after damping; calibrate with more or other inputs");
}

}  // namespace

::torch::Tensor prune_with_reconstruction(::torch::Tensor& weight, const ::torch::Tensor& gram, const Pattern& pattern,
                                          double ratio, Reduce reduce, const ::torch::Tensor& previous_mask,
                                          const ReconstructionOptions& options) {
  if (!weight.defined() || weight.dim() != 2 || weight.scalar_type() != ::torch::kFloat32)
    usage_error("pruning with reconstruction needs a float32 weight of rank 2 (a Linear layer's)");
  const int64_t oc = weight.size(0), ic = weight.size(1);
  if (!gram.defined() || gram.dim() != 2 || gram.size(0) != ic || gram.size(1) != ic)
    usage_error("the input Gram matrix must be " + std::to_string(ic) + " x " + std::to_string(ic) +
                ", one row and column per input feature of the weight");
  if (previous_mask.defined() && !previous_mask.sizes().equals(weight.sizes()))
    usage_error("the previous mask must have the weight's shape");
  if (!(options.damping > 0) || options.block_columns < 1)
    usage_error("reconstruction needs a positive damping and at least one column per step");
  ::torch::NoGradGuard no_grad;
  ::torch::Tensor h = gram.to(::torch::kFloat64).clone();
  if (!::torch::isfinite(h).all().item<bool>()) data_error("the layer's input Gram matrix holds NaN or infinity");
  h = (h + h.t()) / 2;
  const ::torch::Tensor u = inverse_upper_factor(h, options.damping);

  ::torch::Tensor w = weight.detach().to(::torch::kFloat64).clone();
  const ::torch::Tensor stay_pruned = previous_mask.defined() ? previous_mask.to(::torch::kFloat64) : ::torch::Tensor();
  if (stay_pruned.defined()) w.mul_(stay_pruned);
  ::torch::Tensor mask = ::torch::ones({oc, ic}, ::torch::kFloat32);
  const int64_t step = columns_per_step(pattern, ic, options.block_columns);
  for (int64_t begin = 0; begin < ic; begin += step) {
    const int64_t end = std::min(ic, begin + step), n = end - begin;
    ::torch::Tensor block = w.slice(1, begin, end).clone();
    const ::torch::Tensor u_block = u.slice(0, begin, end).slice(1, begin, end);
    const ::torch::Tensor d = u_block.diagonal();
    // OBS saliency: the output error of pruning each weight alone, given the columns before it.
    ::torch::Tensor scores = (block / d).square();
    if (stay_pruned.defined()) scores.mul_(stay_pruned.slice(1, begin, end));
    scores = scores.to(::torch::kFloat32).contiguous();
    const Mask keep_mask = local_mask(pattern, MatrixView<const float>(scores.data_ptr<float>(), oc, n), ratio, reduce);
    ::torch::Tensor keep = ::torch::empty({oc, n}, ::torch::kFloat64);
    std::copy(keep_mask.data.begin(), keep_mask.data.end(), keep.data_ptr<double>());
    ::torch::Tensor errors = ::torch::zeros({oc, n}, ::torch::kFloat64);
    for (int64_t j = 0; j < n; ++j) {
      const ::torch::Tensor column = block.select(1, j);
      const ::torch::Tensor error = (column - column * keep.select(1, j)) / d[j];
      block.slice(1, j, n).sub_(error.unsqueeze(1) * u_block.select(0, j).slice(0, j, n).unsqueeze(0));
      errors.select(1, j).copy_(error);
    }
    w.slice(1, begin, end).copy_(block.mul_(keep));
    if (end < ic) w.slice(1, end, ic).sub_(errors.mm(u.slice(0, begin, end).slice(1, end, ic)));
    mask.slice(1, begin, end).copy_(keep);
  }
  weight.detach().copy_(w.to(::torch::kFloat32));
  return mask;
}

}  // namespace spruce::torch
