// libFuzzer target: the safetensors reader (parse_safetensors).
//
// Any input must either be rejected with spruce::Error or parse into tensors whose bytes match
// their shape and dtype; a parsed file must serialize and parse back to the same tensors and
// metadata, and its floating tensors must convert to f32.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"

using namespace spruce;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  SafetensorsFile f;
  try {
    f = parse_safetensors(bytes, "fuzz.safetensors");
  } catch (const Error&) {
    return 0;
  }
  for (const Tensor& t : f.tensors) {
    FUZZ_CHECK(t.numel() >= 0);
    FUZZ_CHECK(t.bytes.size() == size_t(t.numel()) * dtype_size(t.dtype));
    if (t.dtype == DType::F32 || t.dtype == DType::F16 || t.dtype == DType::BF16 || t.dtype == DType::F64)
      FUZZ_CHECK(t.to_f32().size() == size_t(t.numel()));
  }
  const SafetensorsFile g = parse_safetensors(serialize_safetensors(f), "round trip");
  FUZZ_CHECK(g.metadata == f.metadata);
  FUZZ_CHECK(g.tensors.size() == f.tensors.size());
  for (const Tensor& t : f.tensors) {
    const Tensor* u = g.find(t.name);
    FUZZ_CHECK(u && u->dtype == t.dtype && u->shape == t.shape && u->bytes == t.bytes);
  }
  return 0;
}
