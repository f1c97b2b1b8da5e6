#include "spruce/torch/model_file.hpp"

#include <torch/torch.h>

#include <charconv>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "spruce/error.hpp"

namespace spruce::torch {
namespace {

using Json = nlohmann::ordered_json;
constexpr const char* kLayersKey = "spruce.layers";

[[noreturn]] void bad_file(const std::string& source, const std::string& what) { data_error(source + ": " + what); }

const std::pair<::torch::ScalarType, DType> kDTypes[] = {
    {::torch::kFloat, DType::F32},     {::torch::kDouble, DType::F64}, {::torch::kHalf, DType::F16},
    {::torch::kBFloat16, DType::BF16}, {::torch::kLong, DType::I64},   {::torch::kInt, DType::I32},
    {::torch::kShort, DType::I16},     {::torch::kChar, DType::I8},    {::torch::kByte, DType::U8},
    {::torch::kBool, DType::BOOL}};

DType file_dtype(::torch::ScalarType t, const std::string& name) {
  for (const auto& [s, d] : kDTypes)
    if (s == t) return d;
  usage_error("cannot save tensor '" + name + "' of type " + std::string(c10::toString(t)));
}

::torch::ScalarType torch_dtype(DType d) {
  for (const auto& [s, f] : kDTypes)
    if (f == d) return s;
  return ::torch::kFloat;  // unreachable for tensors that matched a model tensor's dtype
}

Tensor from_torch(const std::string& name, const ::torch::Tensor& x) {
  const auto c = x.detach().cpu().contiguous();
  Tensor t;
  t.name = name;
  t.dtype = file_dtype(c.scalar_type(), name);
  t.shape = c.sizes().vec();
  t.bytes.resize(size_t(c.numel()) * c.element_size());
  if (!t.bytes.empty()) std::memcpy(t.bytes.data(), c.data_ptr(), t.bytes.size());
  return t;
}

template <typename T>
Tensor from_array(const std::string& name, DType d, const std::vector<T>& v) {
  Tensor t;
  t.name = name;
  t.dtype = d;
  t.shape = {int64_t(v.size() * sizeof(T) / dtype_size(d))};
  t.bytes.resize(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  return t;
}

// A 1-D array of the packed weights; `required` false: absent means empty.
template <typename T>
std::vector<T> to_array(const SafetensorsFile& f, const std::string& source, const std::string& name, DType d,
                        bool required, std::set<std::string>& used) {
  const Tensor* t = f.find(name);
  if (!t) {
    if (required) bad_file(source, "tensor '" + name + "' is missing");
    return {};
  }
  used.insert(name);
  if (t->dtype != d) bad_file(source, "tensor '" + name + "' is " + to_string(t->dtype) + ", expected " + to_string(d));
  if (t->shape.size() != 1) bad_file(source, "tensor '" + name + "' must be one-dimensional");
  if (t->bytes.size() % sizeof(T)) bad_file(source, "tensor '" + name + "' has a partial element");
  std::vector<T> v(t->bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), t->bytes.data(), t->bytes.size());
  return v;
}

std::string variant_of(const SparseLinear& op) {
  if (!op.is_int8()) return to_string(Variant::F32Sparse);
  return to_string(op.options().fallback == Fallback::Always ? Variant::Int8Dense : Variant::Int8Sparse);
}

DType file_dtype(PackedParts::Type t) {
  switch (t) {
    case PackedParts::Type::I64: return DType::I64;
    case PackedParts::Type::I32: return DType::I32;
    case PackedParts::Type::I8: return DType::I8;
    case PackedParts::Type::U8: return DType::U8;
    case PackedParts::Type::F32: return DType::F32;
  }
  return DType::U8;
}

// A per-bucket choice ("tuned", "route") as {"<bucket>": yes or no}.
Json bucket_choices(const std::map<int64_t, bool>& choices, const char* yes, const char* no) {
  Json j = Json::object();
  for (const auto& [bucket, choice] : choices) j[std::to_string(bucket)] = choice ? yes : no;
  return j;
}

// The inverse, with every key a bucket >= 1 and every value `yes` or `no`.
std::map<int64_t, bool> bucket_choices(const Json& j, const char* key, const char* yes, const char* no,
                                       const std::string& source, const std::string& layer) {
  if (!j.is_object()) bad_file(source, "layer " + in_quotes(layer) + ": '" + key + "' is not an object");
  std::map<int64_t, bool> choices;
  for (const auto& item : j.items()) {
    int64_t bucket = 0;
    const auto [end, ec] = std::from_chars(item.key().data(), item.key().data() + item.key().size(), bucket);
    if (ec != std::errc() || end != item.key().data() + item.key().size() || bucket < 1 || !item.value().is_string() ||
        (item.value() != yes && item.value() != no)) {
      const std::string a = yes, b = no;  // named in alphabetical order
      const std::string& first = std::min(a, b);
      const std::string& second = std::max(a, b);
      bad_file(source, "layer " + in_quotes(layer) + ": '" + key + "' must map batch-size buckets (>= 1) to \"" +
                           first + "\" or \"" + second + "\"");
    }
    choices[bucket] = item.value() == yes;
  }
  return choices;
}

Json record_of(const std::string& name, const SparseLinear& op, const PackedLinear& p, const PackedParts& parts) {
  const QuantParams& q = op.quant();
  Json packed = {{"kernel", parts.kernel}};
  for (const auto& [key, value] : parts.attributes) packed[key] = value;
  Json r = {{"name", name},
            {"variant", variant_of(op)},
            {"out_features", p.out_features},
            {"in_features", p.in_features},
            {"pattern", p.pattern.str()},
            {"activation", activation_name(op.options().activation)},
            {"fallback", fallback_name(op.options().fallback)},
            {"packed", packed},
            {"tuned", bucket_choices(p.dense_for_m, "dense", "sparse")}};
  // AMX kernels only: which route each tuned bucket takes
  if (!p.vnni_for_m.empty()) r["route"] = bucket_choices(p.vnni_for_m, "vnni", "amx");
  if (p.int8)
    r.update({{"x_scale", q.x.scale},
              {"x_zero_point", q.x.zero_point},
              {"output", q.out == OutType::U8 ? "u8" : "f32"},
              {"y_scale", q.y_scale},
              {"y_zero_point", q.y_zero_point}});
  return r;
}

Json geometry_json(const ConvGeometry& g) {
  return {{"in_channels", g.in_channels},
          {"kernel", {g.kernel_h, g.kernel_w}},
          {"stride", {g.stride_h, g.stride_w}},
          {"padding", {g.pad_h, g.pad_w}}};
}

// A field of a layer record, of the JSON type T needs. Numbers must fit T exactly: an integer
// out of T's range, a fraction where an integer belongs, or a non-finite float is refused, never
// narrowed.
template <typename T>
T field(const Json& r, const char* key, const std::string& source, const std::string& layer) {
  const auto it = r.find(key);
  if (it == r.end()) bad_file(source, "layer " + in_quotes(layer) + " has no '" + key + "'");
  auto wrong = [&](const std::string& why) {
    bad_file(source, "layer " + in_quotes(layer) + ": '" + key + "' " + why);
  };
  if constexpr (std::is_integral_v<T>) {
    if (!it->is_number_integer()) wrong("is not an integer");
    const bool fits =
        it->is_number_unsigned()
            ? it->template get<uint64_t>() <= uint64_t(std::numeric_limits<T>::max())
            : it->template get<int64_t>() >= int64_t(std::numeric_limits<T>::min()) &&
                  (std::is_unsigned_v<T> || it->template get<int64_t>() <= int64_t(std::numeric_limits<T>::max()));
    if (!fits) wrong(it->dump() + " is out of range");
    return it->template get<T>();
  } else if constexpr (std::is_floating_point_v<T>) {
    if (!it->is_number()) wrong("is not a number");
    const double v = it->template get<double>();
    if (!std::isfinite(v) || std::abs(v) > double(std::numeric_limits<T>::max()))
      wrong(it->dump() + " is not a finite " + (sizeof(T) == 4 ? "f32" : "f64"));
    return T(v);
  } else {
    try {
      return it->template get<T>();
    } catch (const nlohmann::json::exception&) {
      bad_file(source, "layer " + in_quotes(layer) + ": '" + key + "' has the wrong type");
    }
  }
}

// An integer field that must lie in [lo, hi].
template <typename T>
T field_in(const Json& r, const char* key, T lo, T hi, const std::string& source, const std::string& layer) {
  const T v = field<T>(r, key, source, layer);
  if (v < lo || v > hi)
    bad_file(source, "layer " + in_quotes(layer) + ": '" + key + "' is " + std::to_string(v) + ", outside [" +
                         std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

// Quantization scales must be finite and positive, and so must every product and reciprocal the
// kernels form from them: an absurd scale is an error here, not a model that scores 0%.
void check_scales(const QuantParams& q, const std::string& source, const std::string& layer) {
  auto bad_scale = [&](const std::string& what, double v) {
    std::ostringstream shown;  // %g-like: 1e-45 shows as itself, not as 0.000000
    shown << v;
    bad_file(source, "layer " + in_quotes(layer) + ": " + what + " " + shown.str() +
                         " is not a usable scale (finite, > 0, and finite times x_scale)");
  };
  auto usable = [](float v) { return std::isfinite(v) && v > 0.0f && std::isnormal(v); };
  if (!usable(q.x.scale)) bad_scale("x_scale", q.x.scale);
  for (float w : q.w_scales)
    if (!usable(w) || !usable(w * q.x.scale)) bad_scale("a w_scale", w);
  if (q.out != OutType::F32 && (!usable(q.y_scale) || !usable(1.0f / q.y_scale))) bad_scale("y_scale", q.y_scale);
}

// Layer records are small: under 20 fields, a "tuned" map of one entry per batch bucket (13), no
// nesting past three levels. Anything larger is a damaged or crafted file.
void require_record_sized(const nlohmann::json& j, const std::string& source, int depth = 0) {
  constexpr size_t kMostFields = 64;
  if (depth > 4) bad_file(source, "'" + std::string(kLayersKey) + "' is nested deeper than layer records are");
  if (j.is_object() && j.size() > kMostFields)
    bad_file(source, "'" + std::string(kLayersKey) + "' holds an object of " + std::to_string(j.size()) +
                         " fields; a layer record has at most " + std::to_string(kMostFields));
  if (j.is_structured())
    for (const auto& v : j) require_record_sized(v, source, depth + 1);
}

// Non-finite values would reach every output of the layer.
constexpr const char* kFiniteUse = "a converted layer's bias and FP32 weights must be finite";

struct Slot {
  LayerHost* host;
  size_t index;
};

// `has_bias`: the model's layer has one, so the file must hold it (a missing one ran without).
std::shared_ptr<SparseLinear> load_layer(const SafetensorsFile& f, const std::string& source, const Json& r,
                                         const std::string& name, const ::torch::Tensor& weight, bool has_bias,
                                         int threads, std::set<std::string>& used) {
  PackedLinear p;
  const std::string variant = field<std::string>(r, "variant", source, name);
  p.int8 = variant != to_string(Variant::F32Sparse);
  parse_variant(variant);
  p.out_features = field<int64_t>(r, "out_features", source, name);
  p.in_features = field<int64_t>(r, "in_features", source, name);
  if (p.out_features != weight.size(0) || p.in_features != weight.size(1))
    bad_file(source, "layer '" + name + "' is " + std::to_string(p.in_features) + "->" +
                         std::to_string(p.out_features) + " in the file but " + std::to_string(weight.size(1)) + "->" +
                         std::to_string(weight.size(0)) + " in the model: build the model it was converted from");
  p.pattern = Pattern::parse(field<std::string>(r, "pattern", source, name));
  const std::string t = name + ".packed.";
  // The packed weights: the record's "packed" object (kernel and integer attributes) and every
  // tensor under "<layer>.packed." but the bias and scales; PackedWeights checks the rest.
  const Json packed = field<Json>(r, "packed", source, name);
  if (!packed.is_object()) bad_file(source, "layer " + in_quotes(name) + ": 'packed' is not an object");
  PackedParts parts;
  parts.kernel = field<std::string>(packed, "kernel", source, name);
  for (const auto& item : packed.items())
    if (item.key() != "kernel")
      parts.attributes.emplace_back(item.key(), field<int64_t>(packed, item.key().c_str(), source, name));
  for (const Tensor& tensor : f.tensors) {
    if (!tensor.name.starts_with(t) || tensor.name == t + "bias" || tensor.name == t + "w_scales") continue;
    const std::string array = tensor.name.substr(t.size());
    PackedParts::Type type;
    if (tensor.dtype == DType::I64)
      type = PackedParts::Type::I64;
    else if (tensor.dtype == DType::I32)
      type = PackedParts::Type::I32;
    else if (tensor.dtype == DType::I8)
      type = PackedParts::Type::I8;
    else if (tensor.dtype == DType::U8)
      type = PackedParts::Type::U8;
    else if (tensor.dtype == DType::F32)
      type = PackedParts::Type::F32;
    else
      bad_file(source,
               "tensor " + in_quotes(tensor.name) + " is " + to_string(tensor.dtype) + ", not a packed-weight type");
    parts.arrays.push_back({array, type, to_array<uint8_t>(f, source, tensor.name, tensor.dtype, true, used)});
    if (type == PackedParts::Type::F32) require_finite(source, tensor, tensor.to_f32(), kFiniteUse);
  }
  try {
    p.weights = PackedWeights::from_parts(parts, p.int8, p.out_features, p.in_features);
  } catch (const Error& e) {
    bad_file(source, "layer " + in_quotes(name) + ": " + e.what());
  }
  p.dense_for_m = bucket_choices(field<Json>(r, "tuned", source, name), "tuned", "dense", "sparse", source, name);
  if (r.contains("route"))  // optional: absent in files from hosts without AMX and before it
    p.vnni_for_m = bucket_choices(r["route"], "route", "vnni", "amx", source, name);
  p.bias = to_array<float>(f, source, t + "bias", DType::F32, has_bias, used);
  if (const Tensor* bias = f.find(t + "bias")) require_finite(source, *bias, p.bias, kFiniteUse);
  if (p.int8) {
    p.quant.w_scales = to_array<float>(f, source, t + "w_scales", DType::F32, true, used);
    p.quant.x.scale = field<float>(r, "x_scale", source, name);
    p.quant.x.zero_point = field_in<int32_t>(r, "x_zero_point", 0, 255, source, name);
    const std::string out = field<std::string>(r, "output", source, name);
    if (out != "u8" && out != "f32")
      bad_file(source, "layer '" + name + "': output must be u8 or f32, not '" + out + "'");
    if (out == "u8") {
      p.quant.out = OutType::U8;
      p.quant.y_scale = field<float>(r, "y_scale", source, name);
      p.quant.y_zero_point = field_in<int32_t>(r, "y_zero_point", 0, 255, source, name);
    }
    check_scales(p.quant, source, name);
  }
  SparseLinearOptions o;
  o.threads = threads;
  o.activation = parse_activation(field<std::string>(r, "activation", source, name).c_str());
  o.fallback = parse_fallback(field<std::string>(r, "fallback", source, name));
  auto op = std::make_shared<SparseLinear>(p, o);
  if (variant_of(*op) != variant)  // int8-dense is the INT8 layer that always falls back
    bad_file(source, "layer " + in_quotes(name) + ": variant '" + variant + "' does not go with fallback '" +
                         fallback_name(o.fallback) + "'; convert the model again");
  return op;
}

// A layer that hands u8 codes to the next one quantizes them with its y_scale and y_zero_point,
// and the next reads them with its x_scale and x_zero_point: the two must be the same, and a
// layer whose output no INT8 layer reads must give f32 (an edited file ran with wrong codes).
void check_requantized_outputs(::torch::nn::Module& model, const std::string& source) {
  for (const auto& h : find_layer_hosts(model))
    for (size_t i = 0; i < h.host->size(); ++i) {
      const SparseLinearLayer* layer = converted_gemm(*h.host->layer(i));
      if (!layer || layer->op().quant().out != OutType::U8) continue;
      const QuantParams& q = layer->op().quant();
      const bool last = i + 1 == h.host->size();
      const ::torch::nn::Module* next = !last && h.host->feeds_next(i) ? h.host->layer(i + 1).get()
                                        : last && h.host->feeds_host() ? h.host->feeds_host()->layer(0).get()
                                                                       : nullptr;
      const SparseLinearLayer* reader = next ? converted_gemm(*next) : nullptr;
      const std::string name = in_quotes(h.layer_path(i));
      if (!reader || !reader->op().is_int8())
        bad_file(source, "layer " + name + " gives u8 codes, but no INT8 layer reads them; convert the model again");
      const QuantParams& r = reader->op().quant();
      if (r.x.scale != q.y_scale || r.x.zero_point != q.y_zero_point)
        bad_file(source, "layer " + name + " gives u8 codes with y_scale " + std::to_string(q.y_scale) +
                             " and y_zero_point " + std::to_string(q.y_zero_point) +
                             ", and the next layer reads them with x_scale " + std::to_string(r.x.scale) +
                             " and x_zero_point " + std::to_string(r.x.zero_point) +
                             "; they must match: convert the model again");
    }
}

}  // namespace

void save_converted_model(const std::string& path, ::torch::nn::Module& model,
                          const std::map<std::string, std::string>& metadata) {
  SafetensorsFile f;
  for (const auto& [key, value] : metadata) {
    if (key.starts_with("spruce.")) usage_error("metadata key '" + key + "' is reserved for spruce");
    f.metadata[key] = value;
  }
  Json layers = Json::array();
  for (const auto& h : find_layer_hosts(model))
    for (size_t i = 0; i < h.host->size(); ++i) {
      const auto* layer = converted_gemm(*h.host->layer(i));
      if (!layer) continue;
      const std::string name = h.layer_path(i), t = name + ".packed.";
      const PackedLinear p = layer->op().packed();
      const PackedParts parts = p.weights.parts();
      Json record = record_of(name, layer->op(), p, parts);
      if (const auto* conv = dynamic_cast<const SparseConvLayer*>(h.host->layer(i).get()))
        record["conv"] = geometry_json(conv->geometry());
      layers.push_back(record);
      for (const auto& a : parts.arrays) f.tensors.push_back(from_array(t + a.name, file_dtype(a.type), a.bytes));
      if (!p.bias.empty()) f.tensors.push_back(from_array(t + "bias", DType::F32, p.bias));
      if (p.int8) f.tensors.push_back(from_array(t + "w_scales", DType::F32, p.quant.w_scales));
    }
  if (layers.empty())
    usage_error("the model has no converted layers: convert() it first, or save a checkpoint instead");
  for (const auto& item : model.named_parameters(true)) f.tensors.push_back(from_torch(item.key(), item.value()));
  for (const auto& item : model.named_buffers(true)) f.tensors.push_back(from_torch(item.key(), item.value()));
  f.metadata[kConvertedModelKey] = kModelFileFormat;
  f.metadata[kLayersKey] = layers.dump();
  write_safetensors(path, f);
}

std::map<std::string, std::string> converted_model_metadata(const SafetensorsFile& f, const std::string& source) {
  const auto it = f.metadata.find(kConvertedModelKey);
  if (it == f.metadata.end())
    bad_file(source, "not a spruce converted-model file (no '" + std::string(kConvertedModelKey) +
                         "' metadata): make one with `spruce convert`");
  if (it->second != kModelFileFormat)
    bad_file(source, "model file format '" + it->second + "' is not " + kModelFileFormat + ": convert the model again");
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : f.metadata)
    if (!key.starts_with("spruce.")) out[key] = value;
  return out;
}

LoadedModel load_converted_model(const SafetensorsFile& f, const std::string& source, ::torch::nn::Module& model,
                                 int threads) {
  LoadedModel out;
  out.metadata = converted_model_metadata(f, source);
  const auto text = f.metadata.find(kLayersKey);
  if (text == f.metadata.end()) bad_file(source, "no '" + std::string(kLayersKey) + "' metadata");
  // Parsed unordered (each insert into an ordered object searches it), and checked small, first.
  const nlohmann::json parsed = nlohmann::json::parse(text->second, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) bad_file(source, "'" + std::string(kLayersKey) + "' is not valid JSON");
  require_record_sized(parsed, source);
  const Json layers = parsed;
  if (!layers.is_array() || layers.empty())
    bad_file(source, "'" + std::string(kLayersKey) + "' is not a list of layers");

  std::map<std::string, Slot> slots;
  for (const auto& h : find_layer_hosts(model))
    for (size_t i = 0; i < h.host->size(); ++i) slots[h.layer_path(i)] = {h.host, i};
  std::set<std::string> used;
  ::torch::NoGradGuard no_grad;
  for (const Json& r : layers) {
    if (!r.is_object()) bad_file(source, "a layer record is not an object");
    const std::string name = field<std::string>(r, "name", source, "?");
    const auto slot = slots.find(name);
    if (slot == slots.end())
      bad_file(source, "layer '" + name + "' is not a layer of this model: build the model it was converted from");
    LayerHost& host = *slot->second.host;
    const size_t index = slot->second.index;
    const auto weight = host.gemm_weight(index);
    if (!weight.defined()) bad_file(source, "layer '" + name + "' is listed twice, or the model was converted already");
    const auto* conv = host.conv(index);
    // Compared unordered: the file's keys come back sorted (parsed unordered, above).
    if (bool(conv) != r.contains("conv") ||
        (conv && nlohmann::json(r["conv"]) != nlohmann::json(geometry_json(ConvGeometry::of(*conv)))))
      bad_file(source, "layer '" + name +
                           "' has another kind or conv geometry in the model: build the model it was converted from");
    std::shared_ptr<SparseLinear> op;
    try {
      const auto* linear = host.linear(index);
      const bool has_bias = linear ? linear->bias.defined() : conv && conv->bias.defined();
      op = load_layer(f, source, r, name, weight, has_bias, threads, used);
    } catch (const Error& e) {
      const std::string what = e.what();
      if (what.starts_with(source)) throw;
      bad_file(source, "layer '" + name + "': " + what);
    }
    out.repacked += op->repacked() ? 1 : 0;
    out.layers.push_back(describe_layer(name, field<std::string>(r, "variant", source, name), *op));
    auto gemm = std::make_shared<SparseLinearLayer>(op);
    try {  // checked here first, to name the layer by its path in the model
      require_fused_activation(name, op->options().activation, host.activation_after(index));
      if (conv)
        host.replace_layer(index, std::make_shared<SparseConvLayer>(gemm, ConvGeometry::of(*conv)));
      else
        host.replace_layer(index, gemm);
    } catch (const Error& e) {
      bad_file(source, e.what());
    }
  }

  check_requantized_outputs(model, source);

  auto copy_in = [&](const std::string& name, ::torch::Tensor& x) {
    const Tensor* t = f.find(name);
    if (!t) bad_file(source, "tensor '" + name + "' of the model is missing: build the model it was converted from");
    used.insert(name);
    if (t->dtype != file_dtype(x.scalar_type(), name) || t->shape != x.sizes().vec())
      bad_file(source, "tensor '" + name + "' does not match the model's in type or shape");
    auto from = ::torch::from_blob(const_cast<uint8_t*>(t->bytes.data()), t->shape,
                                   ::torch::TensorOptions().dtype(torch_dtype(t->dtype)));
    x.copy_(from);
  };
  for (auto& item : model.named_parameters(true)) copy_in(item.key(), item.value());
  for (auto& item : model.named_buffers(true)) copy_in(item.key(), item.value());
  for (const auto& t : f.tensors)
    if (!used.count(t.name))
      bad_file(source, "tensor '" + t.name + "' is not part of this model: build the model it was converted from");
  return out;
}

LoadedModel load_converted_model(const std::string& path, ::torch::nn::Module& model, int threads) {
  return load_converted_model(read_safetensors(path), path, model, threads);
}

}  // namespace spruce::torch
