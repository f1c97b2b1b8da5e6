// Private helpers: the core's 2-D view of a LibTorch weight or gradient, and masks as tensors.
#pragma once
#include <torch/types.h>

#include <vector>

#include "spruce/matrix.hpp"

namespace spruce::torch {

// A read-only 2-D view of a float CPU tensor: zero-copy for rank 2, a channels-last copy
// (spruce::to_matrix) for a conv weight.
class HeldMatrix {
 public:
  explicit HeldMatrix(const ::torch::Tensor& t);
  MatrixView<const float> view() const { return view_; }

 private:
  ::torch::Tensor keep_;
  MatrixF copy_;
  MatrixView<const float> view_;
};

// Runs `edit` on a writable 2-D view of `t` and writes the result back when a copy was needed.
template <typename Edit>
void edit_as_matrix(::torch::Tensor& t, Edit&& edit);

// A core mask (2-D view) as a float 0/1 tensor of the weight's shape, and back.
::torch::Tensor mask_to_tensor(const Mask& mask, const std::vector<int64_t>& shape);
Mask tensor_to_mask(const ::torch::Tensor& mask);

// Throws spruce::Error (usage) unless `t` is a contiguous float32 CPU tensor of rank 2 or 4.
void check_weight(const ::torch::Tensor& t, const std::string& name);

template <typename Edit>
void edit_as_matrix(::torch::Tensor& t, Edit&& edit) {
  if (!t.is_contiguous()) {  // e.g. a gradient a custom autograd function left strided
    ::torch::Tensor packed = t.contiguous();
    edit_as_matrix(packed, edit);
    t.copy_(packed);
    return;
  }
  const std::vector<int64_t> shape = t.sizes().vec();
  float* data = t.data_ptr<float>();
  if (t.dim() == 2) {
    edit(MatrixView<float>(data, shape[0], shape[1]));
    return;
  }
  MatrixF m = to_matrix(data, shape);
  edit(m.view());
  from_matrix(m, data, shape);
}

}  // namespace spruce::torch
