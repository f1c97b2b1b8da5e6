#include "tensor_matrix.hpp"

#include "spruce/error.hpp"

namespace spruce::torch {

HeldMatrix::HeldMatrix(const ::torch::Tensor& t) : keep_(t.detach().contiguous()) {
  const std::vector<int64_t> shape = keep_.sizes().vec();
  const float* data = keep_.data_ptr<float>();
  if (keep_.dim() == 2) {
    view_ = MatrixView<const float>(data, shape[0], shape[1]);
  } else {
    copy_ = to_matrix(data, shape);
    view_ = copy_.view();
  }
}

::torch::Tensor mask_to_tensor(const Mask& mask, const std::vector<int64_t>& shape) {
  MatrixF values(mask.rows, mask.cols);
  for (size_t i = 0; i < mask.data.size(); ++i) values.data[i] = mask.data[i] ? 1.0f : 0.0f;
  ::torch::Tensor t = ::torch::empty(shape, ::torch::kFloat32);
  from_matrix(values, t.data_ptr<float>(), shape);
  return t;
}

Mask tensor_to_mask(const ::torch::Tensor& mask) {
  HeldMatrix m(mask.to(::torch::kFloat32));
  Mask out(m.view().rows, m.view().cols);
  for (int64_t r = 0; r < out.rows; ++r)
    for (int64_t c = 0; c < out.cols; ++c) out(r, c) = m.view()(r, c) != 0.0f;
  return out;
}

void check_weight(const ::torch::Tensor& t, const std::string& name) {
  if (!t.defined() || t.scalar_type() != ::torch::kFloat32 || !t.device().is_cpu() || !t.is_contiguous() ||
      (t.dim() != 2 && t.dim() != 4))
    usage_error("layer " + name +
                ": spruce prunes contiguous float32 CPU weights of rank 2 or 4; convert the model with "
                "model->to(torch::kFloat32) on the CPU first");
}

}  // namespace spruce::torch
