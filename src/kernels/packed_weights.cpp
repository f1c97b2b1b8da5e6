// PackedWeights: dense pruned weights packed for a kernel (pack_formats.cpp), checked and unpacked
// (unpack_formats.cpp), and (de)serialized as named arrays for model files.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "spruce/error.hpp"
#include "weight_formats.hpp"

namespace spruce::kernels {
namespace {

template <typename T>
double zero_fraction(const Matrix<T>& w) {
  const auto zeros = std::count(w.data.begin(), w.data.end(), T(0));
  return w.data.empty() ? 0.0 : double(zeros) / double(w.data.size());
}

// The Impl for strips s of kernel k, with the derived state (wsum, sparsity, view) from dense W.
template <typename T>
PackedWeights adopt(const Kernel& k, StripWeights<T> s, const Matrix<T>& dense) {
  auto impl = std::make_shared<PackedWeights::Impl>();
  impl->kernel = &k;
  impl->sparsity = zero_fraction(dense);
  if constexpr (std::is_same_v<T, int8_t>) {
    impl->wsum.assign(size_t(dense.rows), 0);
    for (int64_t r = 0; r < dense.rows; ++r)
      for (int64_t c = 0; c < dense.cols; ++c) impl->wsum[size_t(r)] += dense(r, c);
    impl->s8 = std::move(s);
    impl->view = view(impl->s8);
  } else {
    impl->f32 = std::move(s);
    impl->view = view(impl->f32);
  }
  return PackedWeights(std::move(impl));
}

template <typename T>
PackedWeights pack(const Kernel& k, MatrixView<const T> w) {
  constexpr DType d = std::is_same_v<T, float> ? DType::F32 : DType::S8;
  if (k.op != Op::Spmm || k.dtype != d)
    usage_error(std::string("kernel '") + k.name + "' does not read " + (d == DType::S8 ? "INT8" : "FP32") +
                " GEMM weights");
  StripWeights<T> s = pack_strips(k, w);
  Matrix<T> dense(w.rows, w.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) dense(r, c) = w(r, c);
  return adopt(k, std::move(s), dense);
}

template <typename T, typename A>
std::vector<uint8_t> bytes_of(const std::vector<T, A>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

template <typename T>
std::vector<T> array_of(const PackedParts& p, const std::string& name, PackedParts::Type type, bool required) {
  const PackedParts::Array* a = p.find(name);
  if (!a) {
    if (required) corrupt("the array '" + name + "' is missing");
    return {};
  }
  if (a->type != type) corrupt("the array '" + name + "' has the wrong element type");
  if (a->bytes.size() % sizeof(T)) corrupt("the array '" + name + "' ends in a partial element");
  std::vector<T> v(a->bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), a->bytes.data(), a->bytes.size());
  return v;
}

int64_t attribute(const PackedParts& p, const std::string& name) {
  for (const auto& [key, value] : p.attributes)
    if (key == name) return value;
  corrupt("the attribute '" + name + "' is missing");
}

template <typename T>
PackedWeights from_parts(const Kernel& k, const PackedParts& p, int64_t rows, int64_t cols) {
  constexpr bool s8 = std::is_same_v<T, int8_t>;
  for (const auto& [key, value] : p.attributes)
    if (key != "strip_h" && key != "strip_kg") corrupt("unknown attribute '" + key + "'");
  for (const auto& a : p.arrays)
    if (a.name != "strip_ptr" && a.name != "strip_k" && a.name != "strip_w" && a.name != "strip_sel" &&
        a.name != "strip_perm" && a.name != "strip_wptr")
      corrupt("unknown array '" + a.name + "'");
  StripWeights<T> s;
  const int64_t h = attribute(p, "strip_h"), kg = attribute(p, "strip_kg");
  if (h != k.h || kg != k.kg)
    corrupt("tile " + std::to_string(h) + "x" + std::to_string(kg) + " where kernel '" + k.name + "' reads " +
            std::to_string(k.h) + "x" + std::to_string(k.kg));
  s.h = k.h;
  s.kg = k.kg;
  s.rows = rows;
  s.cols = cols;
  s.ptr = array_of<int64_t>(p, "strip_ptr", PackedParts::Type::I64, true);
  s.k = array_of<int32_t>(p, "strip_k", PackedParts::Type::I32, true);
  const std::vector<T> w = array_of<T>(p, "strip_w", s8 ? PackedParts::Type::I8 : PackedParts::Type::F32, true);
  s.w.assign(w.begin(), w.end());
  s.sel = array_of<uint8_t>(p, "strip_sel", PackedParts::Type::U8, false);
  s.perm = array_of<int32_t>(p, "strip_perm", PackedParts::Type::I32, false);
  if (!s.perm.empty() && k.weights != WeightFormat::RowLanes) corrupt("a lane permutation in a strip layout");
  s.wptr = array_of<int64_t>(p, "strip_wptr", PackedParts::Type::I64, false);
  const Matrix<T> dense = unpack_checked(s, k.weights);
  return adopt(k, std::move(s), dense);
}

template <typename T>
PackedParts parts_of(const Kernel& k, const StripWeights<T>& s) {
  PackedParts p;
  p.kernel = k.name;
  p.attributes = {{"strip_h", s.h}, {"strip_kg", s.kg}};
  p.arrays.push_back({"strip_ptr", PackedParts::Type::I64, bytes_of(s.ptr)});
  p.arrays.push_back({"strip_k", PackedParts::Type::I32, bytes_of(s.k)});
  p.arrays.push_back(
      {"strip_w", std::is_same_v<T, float> ? PackedParts::Type::F32 : PackedParts::Type::I8, bytes_of(s.w)});
  if (!s.sel.empty()) p.arrays.push_back({"strip_sel", PackedParts::Type::U8, s.sel});
  if (!s.perm.empty()) p.arrays.push_back({"strip_perm", PackedParts::Type::I32, bytes_of(s.perm)});
  if (!s.wptr.empty()) p.arrays.push_back({"strip_wptr", PackedParts::Type::I64, bytes_of(s.wptr)});
  return p;
}

template <typename T>
size_t bytes(const StripWeights<T>& s) {
  return s.ptr.size() * sizeof(int64_t) + s.k.size() * sizeof(int32_t) + s.w.size() * sizeof(T) + s.sel.size() +
         s.perm.size() * sizeof(int32_t) + s.wptr.size() * sizeof(int64_t);
}

}  // namespace

PackedWeights pack_weights(const Kernel& k, MatrixView<const float> w) { return pack(k, w); }
PackedWeights pack_weights(const Kernel& k, MatrixView<const int8_t> w) { return pack(k, w); }

}  // namespace spruce::kernels

namespace spruce {

using kernels::DType;

const PackedParts::Array* PackedParts::find(const std::string& name) const {
  for (const Array& a : arrays)
    if (a.name == name) return &a;
  return nullptr;
}

PackedWeights::PackedWeights() : impl_(std::make_shared<Impl>()) {}
PackedWeights::PackedWeights(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
const PackedWeights::Impl& PackedWeights::impl() const { return *impl_; }

bool PackedWeights::empty() const { return impl_->kernel == nullptr; }
bool PackedWeights::int8() const { return impl_->kernel && impl_->kernel->dtype == DType::S8; }
int64_t PackedWeights::rows() const { return impl_->view.rows; }
int64_t PackedWeights::cols() const { return impl_->view.cols; }
std::string PackedWeights::kernel() const { return impl_->kernel ? impl_->kernel->name : ""; }
size_t PackedWeights::size_bytes() const { return int8() ? kernels::bytes(impl_->s8) : kernels::bytes(impl_->f32); }
double PackedWeights::sparsity() const { return impl_->sparsity; }

Matrix<float> PackedWeights::unpack_f32() const {
  if (empty() || int8()) usage_error("PackedWeights::unpack_f32: the weights are not FP32");
  return kernels::unpack_checked(impl_->f32, impl_->kernel->weights);
}

Matrix<int8_t> PackedWeights::unpack_s8() const {
  if (!int8()) usage_error("PackedWeights::unpack_s8: the weights are not INT8");
  return kernels::unpack_checked(impl_->s8, impl_->kernel->weights);
}

void PackedWeights::validate() const {
  if (empty()) return;
  if (int8())
    unpack_s8();
  else
    unpack_f32();
}

PackedParts PackedWeights::parts() const {
  if (empty()) usage_error("PackedWeights::parts: the weights are empty");
  return int8() ? kernels::parts_of(*impl_->kernel, impl_->s8) : kernels::parts_of(*impl_->kernel, impl_->f32);
}

PackedWeights PackedWeights::from_parts(const PackedParts& p, bool int8, int64_t rows, int64_t cols) {
  const kernels::Kernel* k = kernels::find(p.kernel);
  if (!k || k->op != kernels::Op::Spmm)
    data_error("packed weights are laid out for kernel '" + p.kernel +
               "', which this build of spruce does not have: convert the model again");
  if (k->dtype != (int8 ? DType::S8 : DType::F32))
    data_error("packed weights are " + std::string(int8 ? "INT8" : "FP32") + " but laid out for kernel '" + p.kernel +
               "'");
  const int64_t most = int64_t(1) << 31;
  if (rows < 1 || cols < 1 || rows > most || cols > most)
    data_error("packed weights have an impossible shape " + std::to_string(rows) + "x" + std::to_string(cols));
  return int8 ? kernels::from_parts<int8_t>(*k, p, rows, cols) : kernels::from_parts<float>(*k, p, rows, cols);
}

}  // namespace spruce
