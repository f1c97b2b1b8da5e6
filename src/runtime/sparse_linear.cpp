#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "sparse_linear_impl.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/sparse_matrix.hpp"
#include "spruce/spmm.hpp"

namespace spruce {

using kernels::DType;


namespace {

// Fallback choices are made per bucket of m, not per m: 1-8 alone, then (2^(j-1), 2^j]. A server
// that sees every batch size from 1 to 256 then times the two paths 13 times, not 256 times.
int64_t decision_bucket(int64_t m) {
  if (m <= 8) return m;
  int64_t b = 16;
  while (b < m) b *= 2;
  return b;
}

}  // namespace

namespace runtime {

KernelChoice choose_kernel(DType dtype, const Pattern& p, int64_t oc, int64_t ic, const std::string& forced) {
  const BlockGrid g = block_grid(p, oc, ic);
  const int h = kernels::preferred_h(dtype, p.is_nm() ? 1 : int(std::min<int64_t>(g.block_rows, 64)));
  kernels::Problem prob{dtype, h, 0, ic, oc};
  prob.quads = dtype == DType::S8 && !p.is_nm() && g.block_cols % 4 == 0;
  // N:M with <= 4 of every aligned 8 (2:4, 1:4, 4:8) has its own INT8 kernel over 16-channel panels.
  kernels::Problem nm8 = prob;
  nm8.h = 16;
  nm8.nm8 = dtype == DType::S8 && p.is_nm() && 8 % p.m() == 0 && 2 * p.n() <= p.m();
  KernelChoice c;
  if (!forced.empty()) {
    c.kernel = kernels::find(forced.c_str());
    if (!c.kernel) usage_error("SparseLinear: no kernel named '" + forced + "'");
  } else if (nm8.nm8 && kernels::select(nm8).layout == kernels::Layout::Rows) {
    c.kernel = &kernels::select(nm8);
  } else {
    c.kernel = &kernels::select(prob);
  }
  c.problem = c.kernel->layout == kernels::Layout::Rows ? nm8 : prob;
  if (c.kernel->dtype != dtype || !c.kernel->accepts(c.problem) || c.kernel->isa > max_isa())
    usage_error(std::string("SparseLinear: kernel '") + c.kernel->name + "' cannot run this problem on this CPU");
  return c;
}

const kernels::Kernel* choose_small(const SparseLinear::Impl& s, kernels::Problem prob) {
  if (!s.opt.kernel.empty()) return nullptr;
  prob.m = 1;
  const kernels::Kernel& k1 = kernels::select(prob);
  return &k1 != s.kernel && k1.dtype == s.dtype ? &k1 : nullptr;
}

void init_from_dense(SparseLinear::Impl& s, const void* w, int64_t oc, int64_t ic, const Pattern& p,
                     const float* bias, const QuantParams* q) {
  const KernelChoice c = choose_kernel(s.dtype, p, oc, ic, s.opt.kernel);
  s.oc = oc;
  s.ic = ic;
  s.pattern = p;
  s.kernel = c.kernel;
  s.small = choose_small(s, c.problem);
  if (s.dtype == DType::F32) {
    const MatrixView<const float> wv(static_cast<const float*>(w), oc, ic);
    s.packed_bytes = SparseMatrix<float>::pack(wv, p).size_bytes();
    s.sparsity = sparsity(wv);
    s.wf = kernels::make_strips(wv, c.problem.h);
    s.view = kernels::view(s.wf);
  } else {
    const MatrixView<const int8_t> wv(static_cast<const int8_t*>(w), oc, ic);
    s.packed_bytes = SparseMatrix<int8_t>::pack(wv, p).size_bytes();  // throws when W breaks an N:M pattern
    s.sparsity = sparsity(wv);
    s.ws = c.kernel->layout == kernels::Layout::Rows
               ? kernels::make_nm8(wv)
               : kernels::make_strips(wv, c.problem.h, c.kernel->layout == kernels::Layout::Quads);
    s.view = kernels::view(s.ws);
  }
  finish_init(s, w, bias, q);
}

void finish_init(SparseLinear::Impl& s, const void* w, const float* bias, const QuantParams* q) {
  if (bias) s.bias.assign(bias, bias + s.oc);
  s.ep.act = s.opt.activation;
  s.ep.bias = bias ? s.bias.data() : nullptr;
  if (q) {
    s.q = *q;
    s.scale.resize(size_t(s.oc));
    s.comp.resize(size_t(s.oc));
    for (int64_t n = 0; n < s.oc; ++n) {
      s.scale[size_t(n)] = q->x_scale * q->w_scales[size_t(n)];
      s.comp[size_t(n)] = q->x_zero_point * s.ws.wsum[size_t(n)];
    }
    s.ep.scale = s.scale.data();
    s.ep.comp = s.comp.data();
    s.ep.out = q->out;
    s.ep.y_inv_scale = 1.0f / q->y_scale;
    s.ep.y_zero_point = float(q->y_zero_point);
  }
  if (s.opt.fallback != Fallback::Never)
    s.dense = std::make_unique<DenseMatmul>(s.dtype == DType::S8, w, s.oc, s.ic, bias, s.opt.activation,
                                            q ? &s.q : nullptr);
}

void check_shape(int64_t oc, int64_t ic, const void* w) {
  if (oc <= 0 || ic <= 0) usage_error("SparseLinear: weight shape must be positive, got " + std::to_string(oc) + "x" + std::to_string(ic));
  if (!w) usage_error("SparseLinear: weight pointer is null");
  if (oc > (int64_t(1) << 31) || ic > (int64_t(1) << 31)) usage_error("SparseLinear: weight dimension too large");
}

void check_quant(const QuantParams& q, int64_t oc) {
  if (int64_t(q.w_scales.size()) != oc)
    usage_error("SparseLinear: " + std::to_string(q.w_scales.size()) + " weight scales for " + std::to_string(oc) +
                " output channels");
  if (q.x_zero_point < 0 || q.x_zero_point > 255) usage_error("SparseLinear: u8 activation zero point must be 0..255");
  if (!(q.x_scale > 0.0f) || !(q.y_scale > 0.0f)) usage_error("SparseLinear: quantization scales must be positive");
  for (float ws : q.w_scales)
    if (!(ws > 0.0f) || !std::isfinite(ws)) usage_error("SparseLinear: weight scales must be positive and finite");
  if (q.out != OutType::F32 && (q.y_zero_point < (q.out == OutType::U8 ? 0 : -128) || q.y_zero_point > (q.out == OutType::U8 ? 255 : 127)))
    usage_error("SparseLinear: output zero point out of range for its type");
}

}  // namespace runtime

SparseLinear::SparseLinear(const float* w, int64_t oc, int64_t ic, const Pattern& p, const float* bias,
                           SparseLinearOptions opt)
    : impl_(std::make_unique<Impl>()) {
  runtime::check_shape(oc, ic, w);
  impl_->opt = std::move(opt);
  impl_->dtype = DType::F32;
  runtime::init_from_dense(*impl_, w, oc, ic, p, bias, nullptr);
}

SparseLinear::SparseLinear(const int8_t* w, int64_t oc, int64_t ic, const Pattern& p, const QuantParams& q,
                           const float* bias, SparseLinearOptions opt)
    : impl_(std::make_unique<Impl>()) {
  runtime::check_shape(oc, ic, w);
  runtime::check_quant(q, oc);
  impl_->opt = std::move(opt);
  impl_->dtype = DType::S8;
  runtime::init_from_dense(*impl_, w, oc, ic, p, bias, &q);
}

SparseLinear::~SparseLinear() = default;
SparseLinear::SparseLinear(SparseLinear&&) noexcept = default;
SparseLinear& SparseLinear::operator=(SparseLinear&&) noexcept = default;

void SparseLinear::Impl::run_sparse(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) {
  const kernels::Kernel* k = small && m <= 4 ? small : kernel;
  const int64_t ldxt = kernels::xt_ld(dtype, m, k->layout, ic);
  const size_t bytes = kernels::xt_bytes(dtype, m, ic, k->layout);
  if (xt.size() < bytes) xt.resize(bytes);
  const int T = nthreads();
  // Tiles: m blocks x strip ranges, ~8 tiles a thread. An m block's packed activations (k rows of
  // mb) should stay in L2 while every panel of the tile reads them: about 192 KiB, so 256 rows at
  // k = 768 (u8) and 64 at k = 3072. Multiples of 64 keep every kernel's m chunk whole.
  const int64_t es = dtype == DType::F32 ? 4 : 1;
  const int64_t mb = std::clamp<int64_t>((192 * 1024 / (ic * es)) / 64 * 64, 64, 256), nm = (m + mb - 1) / mb;
  const int64_t strips = view.rows == 0 ? 0 : (view.rows + view.h - 1) / view.h;
  const int64_t want = std::max<int64_t>(1, (8 * T + nm - 1) / nm);
  // Strip ranges are whole panels of 16 output channels, as the x86 kernels finish them.
  const int64_t panel = std::max(1, 16 / view.h);
  const int64_t per = kernels::round_up(std::max<int64_t>(1, (strips + want - 1) / want), panel);
  const int64_t ns = (strips + per - 1) / per;
  const int64_t kblocks = (ic + 63) / 64;
  kernels::SpmmArgs base;
  base.xt = xt.data();
  base.ldxt = ldxt;
  base.m_total = m;
  base.y = y;
  base.ldy = ldy;
  base.ep = &ep;
  const kernels::StripView& w = view;
  void* xtp = xt.data();
#pragma omp parallel num_threads(T)
  {
#pragma omp for schedule(static)
    for (int64_t b = 0; b < kblocks; ++b) k->pack(x, m, ldx, b * 64, std::min(ic, b * 64 + 64), xtp, ldxt);
#pragma omp for schedule(dynamic, 1) collapse(2)
    for (int64_t i = 0; i < nm; ++i)
      for (int64_t j = 0; j < ns; ++j) {
        kernels::SpmmArgs a = base;
        a.m0 = i * mb;
        a.m1 = std::min(m, a.m0 + mb);
        a.s0 = j * per;
        a.s1 = std::min(strips, a.s0 + per);
        k->run(w, a);
      }
  }
}

void SparseLinear::Impl::run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) {
  if (m < 0) usage_error("SparseLinear::run: m must be >= 0");
  if (m == 0) return;
  if (!x || !y) usage_error("SparseLinear::run: null input or output pointer");
  if (ldx == 0) ldx = ic;
  if (ldy == 0) ldy = oc;
  if (ldx < ic) usage_error("SparseLinear::run: ldx " + std::to_string(ldx) + " is below in_features " + std::to_string(ic));
  if (ldy < oc) usage_error("SparseLinear::run: ldy " + std::to_string(ldy) + " is below out_features " + std::to_string(oc));
  if (opt.fallback == Fallback::Never) return run_sparse(x, m, ldx, y, ldy);
  if (opt.fallback == Fallback::Always) return run_dense(x, m, ldx, y, ldy);
  auto it = use_dense.find(decision_bucket(m));
  if (it != use_dense.end()) return it->second ? run_dense(x, m, ldx, y, ldy) : run_sparse(x, m, ldx, y, ldy);
  // First call in this m's bucket: warm both, then time them alternately on this call's data (so drift
  // on a shared machine hits both alike) and compare medians. Sparse must win by 3% to be kept:
  // a near tie goes to dense, so noise cannot leave the operator slower than dense.
  using clock = std::chrono::steady_clock;
  auto time = [](auto&& f) {
    const auto t0 = clock::now();
    f();
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  run_dense(x, m, ldx, y, ldy);
  run_sparse(x, m, ldx, y, ldy);
  std::vector<double> td, ts;
  for (int r = 0; r < 7; ++r) {
    td.push_back(time([&] { run_dense(x, m, ldx, y, ldy); }));
    ts.push_back(time([&] { run_sparse(x, m, ldx, y, ldy); }));
  }
  std::nth_element(td.begin(), td.begin() + 3, td.end());
  std::nth_element(ts.begin(), ts.begin() + 3, ts.end());
  const bool dense_wins = !(ts[3] < 0.97 * td[3]);
  use_dense[decision_bucket(m)] = dense_wins;
  if (dense_wins) run_dense(x, m, ldx, y, ldy);  // leave the chosen path's result in y
}

void SparseLinear::run(const float* x, int64_t m, float* y, int64_t ldx, int64_t ldy) {
  if (impl_->dtype != DType::F32) usage_error("SparseLinear::run: this operator is INT8; pass u8 activations");
  impl_->run(x, m, ldx, y, ldy);
}

void SparseLinear::run(const uint8_t* x, int64_t m, void* y, int64_t ldx, int64_t ldy) {
  if (impl_->dtype != DType::S8) usage_error("SparseLinear::run: this operator is FP32; pass f32 activations");
  impl_->run(x, m, ldx, y, ldy);
}

std::string SparseLinear::impl(int64_t m) const {
  const Impl& s = *impl_;
  bool dense = s.opt.fallback == Fallback::Always;
  if (s.opt.fallback == Fallback::Auto) {
    auto it = s.use_dense.find(decision_bucket(m));
    dense = it != s.use_dense.end() && it->second;
  }
  if (dense) return "onednn:" + s.dense->impl(m);
  return s.small && m <= 4 ? s.small->name : s.kernel->name;
}

std::string SparseLinear::sparse_kernel() const { return impl_->kernel->name; }
int SparseLinear::threads() const { return impl_->nthreads(); }
void SparseLinear::set_threads(int t) { impl_->opt.threads = t <= 0 ? 0 : checked_threads(t, "SparseLinear threads"); }
bool SparseLinear::is_int8() const { return impl_->dtype == DType::S8; }
int64_t SparseLinear::in_features() const { return impl_->ic; }
int64_t SparseLinear::out_features() const { return impl_->oc; }
const Pattern& SparseLinear::pattern() const { return impl_->pattern; }
double SparseLinear::sparsity() const { return impl_->sparsity; }
size_t SparseLinear::packed_bytes() const { return impl_->packed_bytes; }
size_t SparseLinear::dense_bytes() const { return size_t(impl_->oc * impl_->ic) * (is_int8() ? 1 : 4); }

}  // namespace spruce
