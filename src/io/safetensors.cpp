#include "spruce/safetensors.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "spruce/error.hpp"

namespace spruce {
namespace {

struct DTypeInfo {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},           {DType::I8, "I8", 1},          {DType::I16, "I16", 2},
    {DType::U16, "U16", 2},   {DType::F16, "F16", 2},         {DType::BF16, "BF16", 2},      {DType::I32, "I32", 4},
    {DType::U32, "U32", 4},   {DType::F32, "F32", 4},         {DType::F64, "F64", 8},        {DType::I64, "I64", 8},
    {DType::U64, "U64", 8},   {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E5M2, "F8_E5M2", 1}};

const DTypeInfo& info(DType d) {
  for (const auto& i : kDTypes)
    if (i.dtype == d) return i;
  return kDTypes[0];
}

constexpr uint64_t kMaxHeader = 100ull << 20;  // as the reference implementation

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0x1f)
    bits = sign | 0x7f800000 | (mant << 13);
  else if (exp != 0)
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  else if (mant == 0)
    bits = sign;
  else {  // subnormal: normalize
    exp = 113;
    while (!(mant & 0x400)) mant <<= 1, --exp;
    bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
  }
  return std::bit_cast<float>(bits);
}

}  // namespace

DType parse_dtype(std::string_view name) {
  for (const auto& i : kDTypes)
    if (name == i.name) return i.dtype;
  data_error("unknown safetensors dtype '" + std::string(name) + "'");
}
std::string to_string(DType d) { return info(d).name; }
size_t dtype_size(DType d) { return info(d).size; }
bool is_floating(DType d) {
  return d == DType::F16 || d == DType::BF16 || d == DType::F32 || d == DType::F64 || d == DType::F8_E4M3 ||
         d == DType::F8_E5M2;
}
bool is_prunable(DType d) { return d == DType::F32 || d == DType::F16 || d == DType::BF16; }

int64_t Tensor::numel() const {
  int64_t n = 1;
  for (int64_t s : shape) n *= s;
  return n;
}

std::vector<float> Tensor::to_f32() const {
  const auto n = size_t(numel());
  std::vector<float> out(n);
  const uint8_t* p = bytes.data();
  for (size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::F32: std::memcpy(&out[i], p + 4 * i, 4); break;
      case DType::F64: {
        double d;
        std::memcpy(&d, p + 8 * i, 8);
        out[i] = float(d);
        break;
      }
      case DType::F16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = half_to_float(h);
        break;
      }
      case DType::BF16: {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        out[i] = std::bit_cast<float>(uint32_t(h) << 16);
        break;
      }
      default:
        data_error("tensor '" + name + "' has dtype " + to_string(dtype) + ", which spruce cannot read as floats");
    }
  }
  return out;
}

Tensor Tensor::from_f32(std::string name, std::vector<int64_t> shape, const float* values) {
  Tensor t;
  t.name = std::move(name);
  t.shape = std::move(shape);
  t.bytes.resize(size_t(t.numel()) * 4);
  if (!t.bytes.empty()) std::memcpy(t.bytes.data(), values, t.bytes.size());
  return t;
}

void Tensor::zero_where(const std::vector<uint8_t>& keep) {
  if (int64_t(keep.size()) != numel()) data_error("mask for tensor '" + name + "' has the wrong number of elements");
  const size_t es = dtype_size(dtype);
  for (size_t i = 0; i < keep.size(); ++i)
    if (!keep[i]) std::memset(bytes.data() + i * es, 0, es);
}

const Tensor* SafetensorsFile::find(const std::string& n) const {
  for (const auto& t : tensors)
    if (t.name == n) return &t;
  return nullptr;
}
Tensor* SafetensorsFile::find(const std::string& n) {
  return const_cast<Tensor*>(static_cast<const SafetensorsFile*>(this)->find(n));
}

namespace {

// The keys of a header's top-level object and of its __metadata__, in order, and the first field
// given twice inside a tensor's entry (nlohmann keeps the last; Python's safetensors refuses it).
struct KeyRecorder : nlohmann::json_sax<nlohmann::json> {
  std::vector<std::string> keys, metadata_keys, entry_fields;
  std::string repeated_field;  // "tensor 'w': the field 'dtype'", or empty
  int depth = 0;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override {
    if (++depth == 2) entry_fields.clear();
    return true;
  }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return ++depth, true; }
  bool end_array() override { return --depth, true; }
  bool key(string_t& k) override {
    if (depth == 1)
      keys.push_back(k);
    else if (depth == 2 && !keys.empty() && keys.back() == "__metadata__")
      metadata_keys.push_back(k);
    else if (depth == 2 && repeated_field.empty()) {
      if (std::find(entry_fields.begin(), entry_fields.end(), k) != entry_fields.end())
        repeated_field = "tensor " + in_quotes(keys.back()) + ": the field " + in_quotes(k);
      entry_fields.push_back(k);
    }
    return true;
  }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
};

}  // namespace

void require_finite(const std::string& source, const Tensor& t, const std::vector<float>& values,
                    const std::string& use) {
  const auto bad = std::find_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); });
  if (bad == values.end()) return;
  const auto count = std::count_if(bad, values.end(), [](float v) { return !std::isfinite(v); });
  data_error(source + ": tensor " + in_quotes(t.name) + " holds " + (std::isnan(*bad) ? "NaN" : "Inf") +
             " at element " + std::to_string(bad - values.begin()) + " (" + std::to_string(count) +
             " values are not finite); " + use + ". Was its training diverging?");
}

SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& source) {
  auto bad = [&](const std::string& why) -> void { data_error(source + ": not a valid safetensors file: " + why); };
  if (bytes.size() < 8) bad("it is " + std::to_string(bytes.size()) + " bytes, shorter than the 8-byte header length");
  if (bytes.substr(0, 4) == std::string_view("PK\x03\x04", 4))
    bad("it is a zip archive (a LibTorch checkpoint.pt?); give the model.safetensors beside it");
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | uint8_t(bytes[size_t(i)]);
  if (header_len > kMaxHeader) bad("header length " + std::to_string(header_len) + " exceeds the 100 MiB limit");
  if (header_len > bytes.size() - 8)
    bad("header length " + std::to_string(header_len) + " runs past the end of the file (" +
        std::to_string(bytes.size()) + " bytes); is it truncated?");
  const std::string_view header = bytes.substr(8, header_len);
  const std::string_view data = bytes.substr(8 + header_len);

  // The format's own rules, which nlohmann alone would let pass: a NUL ended its input early, and
  // a byte-order mark or spaces before the object were skipped.
  if (header.empty() || header.front() != '{') bad("header is not a JSON object: it does not begin with '{'");
  if (const size_t nul = header.find('\0'); nul != std::string_view::npos)
    bad("the header holds a NUL byte at " + std::to_string(nul) + "; only JSON and trailing spaces belong there");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(header);
  } catch (const nlohmann::json::exception& e) {
    bad(std::string("header is not valid JSON (") + e.what() + ")");
  }
  // nlohmann keeps the last of two equal keys; a second pass sees every key, so it refuses them.
  // (A parse callback would do it in one pass, but nlohmann then rescans the parent object at the
  // end of each child: quadratic in the tensors, 60 s for 200,000.)
  KeyRecorder recorder;
  nlohmann::json::sax_parse(header, &recorder);
  auto& keys = recorder.keys;
  auto& metadata_keys = recorder.metadata_keys;
  if (!j.is_object()) bad("header is not a JSON object");
  if (!recorder.repeated_field.empty()) bad(recorder.repeated_field + " is given twice");
  for (auto* list : {&keys, &metadata_keys}) {
    std::sort(list->begin(), list->end());
    if (const auto d = std::adjacent_find(list->begin(), list->end()); d != list->end())
      bad(std::string(list == &keys ? "the name " : "the __metadata__ key ") + in_quotes(*d) + " is given twice");
  }

  SafetensorsFile file;
  struct Span {
    uint64_t begin, end;
    size_t tensor;
  };
  std::vector<Span> spans;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const auto& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad("__metadata__ must map strings to strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad("__metadata__ value of '" + m.key() + "' is not a string");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + in_quotes(name);
    if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      bad(where + " must have dtype, shape and data_offsets");
    if (!v["dtype"].is_string()) bad(where + ": dtype is not a string");
    Tensor t;
    t.name = name;
    try {
      t.dtype = parse_dtype(v["dtype"].get<std::string>());
    } catch (const Error& e) {
      bad(where + ": " + e.what());
    }
    if (!v["shape"].is_array()) bad(where + ": shape is not a list");
    // extent: the product of the nonzero dims, bounded even when a zero dim makes numel 0, so
    // that every dim and every product of dims fits the int64_t the shape is kept in.
    uint64_t numel = 1, extent = 1;
    for (const auto& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad(where + ": shape holds a value that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      if (dim != 0 && extent > std::numeric_limits<uint64_t>::max() / dim / 8) bad(where + ": shape is too large");
      extent *= dim != 0 ? dim : 1;
      numel *= dim;
      t.shape.push_back(int64_t(dim));
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
      bad(where + ": data_offsets must be two non-negative integers [begin, end]");
    const uint64_t b = off[0].get<uint64_t>(), e = off[1].get<uint64_t>();
    if (b > e) bad(where + ": data_offsets begin " + std::to_string(b) + " is after end " + std::to_string(e));
    if (e > data.size())
      bad(where + ": data_offsets end " + std::to_string(e) + " is past the data section (" +
          std::to_string(data.size()) + " bytes); is the file truncated?");
    if (e - b != numel * dtype_size(t.dtype))
      bad(where + ": shape " + std::to_string(numel) + " x " + to_string(t.dtype) + " needs " +
          std::to_string(numel * dtype_size(t.dtype)) + " bytes but data_offsets span " + std::to_string(e - b));
    spans.push_back({b, e, file.tensors.size()});
    file.tensors.push_back(std::move(t));
  }
  std::sort(spans.begin(), spans.end(),
            [](const Span& a, const Span& b) { return a.begin < b.begin || (a.begin == b.begin && a.end < b.end); });
  uint64_t covered = 0;
  for (size_t i = 0; i < spans.size(); ++i) {
    const std::string& name = file.tensors[spans[i].tensor].name;
    if (spans[i].begin < covered)
      bad("tensors " + in_quotes(file.tensors[spans[i - 1].tensor].name) + " and " + in_quotes(name) + " overlap");
    if (spans[i].begin > covered)
      bad("bytes " + std::to_string(covered) + " to " + std::to_string(spans[i].begin) +
          " of the data section belong to no tensor (before " + in_quotes(name) + ")");
    covered = spans[i].end;
  }
  if (covered != data.size())
    bad(std::to_string(data.size() - covered) + " bytes after the last tensor belong to no tensor (appended data?)");
  std::vector<Tensor> ordered;
  ordered.reserve(spans.size());
  for (const auto& s : spans) {
    Tensor& t = file.tensors[s.tensor];
    t.bytes.assign(data.begin() + std::ptrdiff_t(s.begin), data.begin() + std::ptrdiff_t(s.end));
    ordered.push_back(std::move(t));
  }
  file.tensors = std::move(ordered);
  return file;
}

void refuse_converted_model(const SafetensorsFile& file, const std::string& source) {
  if (file.metadata.count(kConvertedModelKey))
    data_error(source +
               " is a converted model (from `spruce convert`), packed for inference; give the weights of "
               "a training run instead (its model.safetensors)");
}

SafetensorsFile read_safetensors(const std::string& path) { return parse_safetensors(read_file(path), path); }

std::string serialize_safetensors(const SafetensorsFile& file) {
  std::vector<std::string> names;
  for (const auto& t : file.tensors) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  if (const auto d = std::adjacent_find(names.begin(), names.end()); d != names.end())
    data_error("two tensors are named " + in_quotes(*d) + "; safetensors names must be unique");
  if (std::binary_search(names.begin(), names.end(), "__metadata__"))
    data_error("a tensor is named '__metadata__', which safetensors keeps for the metadata; rename it");
  // In the tensors' order, appended: the names are unique, and operator[] would search the object
  // for each one (quadratic: 200,000 tensors took 37 s).
  nlohmann::ordered_json j = nlohmann::ordered_json::object();
  auto& entries = j.get_ref<nlohmann::ordered_json::object_t&>();
  entries.reserve(file.tensors.size() + 1);
  if (!file.metadata.empty()) entries.push_back({"__metadata__", file.metadata});
  uint64_t offset = 0;
  for (const auto& t : file.tensors) {
    if (t.bytes.size() != size_t(t.numel()) * dtype_size(t.dtype))
      data_error("tensor '" + t.name + "': " + std::to_string(t.bytes.size()) +
                 " bytes do not fit its shape and dtype");
    entries.push_back(
        {t.name,
         {{"dtype", to_string(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes.size()}}}});
    offset += t.bytes.size();
  }
  // Metadata that is not UTF-8 (a Latin-1 path) gets U+FFFD for its bad bytes, rather than failing the write.
  std::string header = j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  header.append((8 - header.size() % 8) % 8, ' ');  // align the data section to 8 bytes
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((uint64_t(header.size()) >> (8 * i)) & 0xff);
  out += header;
  out.reserve(out.size() + offset);
  for (const auto& t : file.tensors) out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  return out;
}

void write_safetensors(const std::string& path, const SafetensorsFile& file) {
  write_file_atomic(path, serialize_safetensors(file));
}

}  // namespace spruce
