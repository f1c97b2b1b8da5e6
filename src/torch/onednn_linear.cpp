#include "onednn_linear.hpp"

#include <torch/autograd.h>
#include <torch/nn/functional/linear.h>
#include <dnnl.hpp>

#include <stdexcept>
#include <string>

namespace spruce::torch {
namespace {

using ::torch::Tensor;
using ::torch::autograd::AutogradContext;
using ::torch::autograd::tensor_list;

// Row-major C[m][n] = op(A)·op(B) + beta·C, with op = transpose when the flag is 'T'.
void sgemm(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, const Tensor& a, const Tensor& b, float beta,
           Tensor& c) {
  const int64_t lda = trans_a == 'N' ? k : m, ldb = trans_b == 'N' ? n : k;
  const auto status = dnnl::sgemm(trans_a, trans_b, m, n, k, 1.0f, a.data_ptr<float>(), lda, b.data_ptr<float>(), ldb,
                                  beta, c.data_ptr<float>(), n);
  if (status != dnnl::status::success)
    throw std::runtime_error("oneDNN sgemm failed with status " + std::to_string(int(status)));
}

struct LinearFunction : public ::torch::autograd::Function<LinearFunction> {
  // x2 [m][k], weight [n][k], bias [n] or undefined.
  static Tensor forward(AutogradContext* ctx, const Tensor& x2, const Tensor& weight, const Tensor& bias) {
    ctx->save_for_backward({x2, weight});
    ctx->saved_data["has_bias"] = bias.defined();
    const int64_t m = x2.size(0), k = x2.size(1), n = weight.size(0);
    Tensor y = ::torch::empty({m, n}, x2.options());
    if (bias.defined()) y.copy_(bias.expand({m, n}));  // never contiguous(): at m = 1 that is bias itself
    sgemm('N', 'T', m, n, k, x2, weight, bias.defined() ? 1.0f : 0.0f, y);
    return y;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const Tensor &x2 = saved[0], &weight = saved[1];
    const Tensor gy = grad_outputs[0].contiguous();
    const int64_t m = x2.size(0), k = x2.size(1), n = weight.size(0);
    Tensor gx, gw, gb;
    if (ctx->needs_input_grad(0)) {
      gx = ::torch::empty({m, k}, x2.options());
      sgemm('N', 'N', m, k, n, gy, weight, 0.0f, gx);  // gy [m][n] · weight [n][k]
    }
    if (ctx->needs_input_grad(1)) {
      gw = ::torch::empty({n, k}, weight.options());
      sgemm('T', 'N', n, k, m, gy, x2, 0.0f, gw);  // gyᵀ [n][m] · x [m][k]
    }
    if (ctx->saved_data["has_bias"].toBool() && ctx->needs_input_grad(2)) gb = gy.sum(0);
    return {gx, gw, gb};
  }
};

}  // namespace

Tensor onednn_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const auto f32_cpu = [](const Tensor& t) {
    return !t.defined() || (t.scalar_type() == ::torch::kFloat32 && t.is_cpu());
  };
  if (!f32_cpu(x) || !f32_cpu(weight) || !f32_cpu(bias) || x.dim() < 1 || x.size(-1) != weight.size(1))
    return ::torch::nn::functional::linear(x, weight, bias);
  auto shape = x.sizes().vec();
  shape.back() = weight.size(0);
  const Tensor x2 = x.reshape({-1, x.size(-1)}).contiguous();
  return LinearFunction::apply(x2, weight.contiguous(), bias).view(shape);
}

}  // namespace spruce::torch
