#include "dense.hpp"

#include <omp.h>
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <dnnl.hpp>
#include <memory>
#include <tuple>

#include "spruce/cpu.hpp"
#include "spruce/error.hpp"

namespace spruce::runtime {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {
// SPRUCE_MAX_ISA below amx caps oneDNN at AVX-512 VNNI (unless DNNL_MAX_CPU_ISA says otherwise),
// so that one AMX host also measures as a VNNI-only host. Never lower: without VNNI, oneDNN's
// INT8 saturates its 16-bit intermediate sums and the dense baseline would no longer be exact.
// oneDNN takes the cap only before its first primitive; if something else made one first, its
// ISA stays as it is (DenseMatmul::max_isa() says).
void cap_onednn() {
  const char* own = std::getenv("DNNL_MAX_CPU_ISA");
  if ((own && *own) || detected_isa() != Isa::Amx || max_isa() == Isa::Amx) return;
  try {
    dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core_vnni);
  } catch (const dnnl::error&) {
  }
}
dnnl::engine& engine() {
  static dnnl::engine e = [] {
    cap_onednn();
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return e;
}
dnnl::stream& stream() {
  static dnnl::stream s(engine());
  return s;
}
// oneDNN 2.6's library-managed scratchpad gave wrong rows, now and then, when a primitive ran on a
// thread other than the one that created it; so each calling thread brings its own, kept for reuse.
void* thread_scratchpad(size_t bytes) {
  thread_local std::unique_ptr<uint8_t[]> buffer;
  thread_local size_t capacity = 0;
  if (bytes + 64 > capacity) {
    capacity = bytes + 64;
    buffer.reset(new uint8_t[capacity]);
  }
  return reinterpret_cast<void*>((reinterpret_cast<uintptr_t>(buffer.get()) + 63) & ~uintptr_t(63));
}
dt out_type(OutType o) { return o == OutType::U8 ? dt::u8 : o == OutType::S8 ? dt::s8 : dt::f32; }
}  // namespace

struct DenseMatmul::Plan {
  dnnl::matmul prim;
  memory weights, bias;
  memory::desc src, dst, scratchpad;
  std::string impl;
};

DenseMatmul::DenseMatmul(const PackedWeights& w, const float* bias, Activation act, const QuantParams* q)
    : w_(w), int8_(w.int8()), oc_(w.rows()), ic_(w.cols()), act_(act) {
  init(bias, q);
}

DenseMatmul::DenseMatmul(bool int8, const void* w, int64_t oc, int64_t ic, const float* bias, Activation act,
                         const QuantParams* q)
    : int8_(int8), oc_(oc), ic_(ic), act_(act) {
  if (int8) {
    w_s8_ = Matrix<int8_t>(oc, ic);
    std::copy_n(static_cast<const int8_t*>(w), oc * ic, w_s8_.data.begin());
  } else {
    w_f32_ = Matrix<float>(oc, ic);
    std::copy_n(static_cast<const float*>(w), oc * ic, w_f32_.data.begin());
  }
  init(bias, q);
}

void DenseMatmul::init(const float* bias, const QuantParams* q) {
  const int64_t oc = oc_;
  const bool int8 = int8_;
  if (int8) {
    if (!q) usage_error("DenseMatmul: INT8 needs quantization parameters");
    q_ = *q;
    for (int64_t n = 0; n < oc; ++n) scales_.push_back(q_.x.scale * q_.w_scales[size_t(n)]);
  }
  if (bias) bias_.assign(bias, bias + oc);
  // oneDNN 2.x adds an INT8 matmul's bias to the accumulator before the output scales, so the
  // f32 bias that spruce adds after dequantizing goes in divided by each channel's scale.
  if (int8 && bias)
    for (int64_t n = 0; n < oc; ++n) bias_[size_t(n)] /= scales_[size_t(n)];
}

DenseMatmul::~DenseMatmul() = default;

const DenseMatmul::Plan& DenseMatmul::plan(int64_t m, int64_t ldx, int64_t ldy) const {
  const std::lock_guard lock(mutex_);
  auto key = std::make_tuple(m, ldx, ldy, omp_in_parallel() ? 1 : omp_get_max_threads());
  auto it = plans_.find(key);
  if (it != plans_.end()) return *it->second;
  auto p = std::make_unique<Plan>();
  const dt wt = int8_ ? dt::s8 : dt::f32;
  p->src = memory::desc({m, ic_}, int8_ ? dt::u8 : dt::f32, memory::dims{ldx, 1});
  p->dst = memory::desc({m, oc_}, int8_ ? out_type(q_.out) : dt::f32, memory::dims{ldy, 1});
  memory::desc wany({ic_, oc_}, wt, tag::any);
  memory::desc bdesc({1, oc_}, dt::f32, tag::ab);
  dnnl::primitive_attr attr;
  dnnl::post_ops ops;
  const dnnl::algorithm alg =
      act_ == Activation::ReLU ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_gelu_erf;
  const bool requant = int8_ && q_.out != OutType::F32;
  const float post_scale = requant ? 1.0f / q_.y_scale : 1.0f;
  if (act_ != Activation::None)
    ops.append_eltwise(post_scale, alg, 0.0f, 0.0f);
  else if (requant)
    ops.append_eltwise(post_scale, dnnl::algorithm::eltwise_linear, 1.0f, 0.0f);
  attr.set_post_ops(ops);
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (int8_) {
    attr.set_output_scales(1 << 1, scales_);
    if (q_.x.zero_point) attr.set_zero_points(DNNL_ARG_SRC, 0, {q_.x.zero_point});
    if (requant && q_.y_zero_point) attr.set_zero_points(DNNL_ARG_DST, 0, {q_.y_zero_point});
  }
  auto desc =
      bias_.empty() ? dnnl::matmul::desc(p->src, wany, p->dst) : dnnl::matmul::desc(p->src, wany, bdesc, p->dst);
  dnnl::matmul::primitive_desc pd(desc, attr, engine());
  p->prim = dnnl::matmul(pd);
  p->impl = pd.impl_info_str();
  p->scratchpad = pd.scratchpad_desc();
  // User weights W[oc][ic] are the {ic, oc} matrix in layout "ba"; reorder into oneDNN's choice,
  // once per distinct layout: plans for other m that want the same layout share it.
  for (const auto& [desc, mem] : reordered_)
    if (desc == pd.weights_desc()) p->weights = mem;
  if (!p->weights) {
    Matrix<float> wf;
    Matrix<int8_t> ws;
    if (w_.empty())
      ws = w_s8_, wf = w_f32_;
    else if (int8_)
      ws = w_.unpack_s8();
    else
      wf = w_.unpack_f32();
    memory user(memory::desc({ic_, oc_}, wt, tag::ba), engine(),
                int8_ ? static_cast<void*>(ws.data.data()) : static_cast<void*>(wf.data.data()));
    p->weights = memory(pd.weights_desc(), engine());
    dnnl::reorder(user, p->weights).execute(stream(), user, p->weights);
    reordered_.emplace_back(pd.weights_desc(), p->weights);
  }
  if (!bias_.empty()) p->bias = memory(bdesc, engine(), const_cast<float*>(bias_.data()));
  stream().wait();
  return *plans_.emplace(key, std::move(p)).first->second;
}

void DenseMatmul::run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) const {
  const Plan& p = plan(m, ldx, ldy);
  memory src(p.src, engine(), const_cast<void*>(x)), dst(p.dst, engine(), y);
  std::unordered_map<int, memory> args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, p.weights}, {DNNL_ARG_DST, dst}};
  if (!bias_.empty()) args.emplace(DNNL_ARG_BIAS, p.bias);
  args.emplace(DNNL_ARG_SCRATCHPAD, memory(p.scratchpad, engine(), thread_scratchpad(p.scratchpad.get_size())));
  dnnl::stream s(engine());  // a stream per call: several threads may run at once
  p.prim.execute(s, args);
  s.wait();
}

std::string DenseMatmul::impl(int64_t m) const { return plan(m, ic_, oc_).impl; }

std::string DenseMatmul::max_isa() {
  engine();  // applies the cap first
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::sse41: return "sse41";
    default: return "other";
  }
}

bool DenseMatmul::int8_exact() {
  engine();
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx2_vnni: return true;
    default: return false;
  }
}

size_t DenseMatmul::weight_bytes() const {
  const std::lock_guard lock(mutex_);
  size_t bytes = 0;
  for (const auto& [desc, mem] : reordered_) bytes += desc.get_size();
  return bytes;
}

}  // namespace spruce::runtime
