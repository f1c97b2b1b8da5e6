// safetensors files: read with full validation, write atomically (temporary file, then rename).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "spruce/file.hpp"

namespace spruce {

enum class DType { BOOL, U8, I8, I16, U16, F16, BF16, I32, U32, F32, F64, I64, U64, F8_E4M3, F8_E5M2 };
DType parse_dtype(std::string_view name);  // throws spruce::Error (data) for unknown names
std::string to_string(DType d);
size_t dtype_size(DType d);
bool is_floating(DType d);
// Whether spruce prunes tensors of this dtype (F32, F16, BF16).
bool is_prunable(DType d);

struct Tensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;

  int64_t numel() const;
  // Values as f32 (F32, F16, BF16, F64 only); exact for all of them but F64.
  std::vector<float> to_f32() const;
  static Tensor from_f32(std::string name, std::vector<int64_t> shape, const float* values);
  // Zero the elements whose `keep` entry is 0, in place, leaving every other byte untouched.
  void zero_where(const std::vector<uint8_t>& keep);
};

struct SafetensorsFile {
  std::vector<Tensor> tensors;                  // in the order of their data offsets
  std::map<std::string, std::string> metadata;  // __metadata__

  const Tensor* find(const std::string& name) const;
  Tensor* find(const std::string& name);
};

// The metadata key that marks a file of `spruce convert` (its value: the format's version).
inline constexpr const char* kConvertedModelKey = "spruce.format";
// Refuses (spruce::Error, data) a converted model given where weights to train or prune belong:
// its layers are packed for inference, so none of the weights is there by its name.
void refuse_converted_model(const SafetensorsFile& file, const std::string& source);

// Strict, as the format requires: header length, JSON, unique tensor names, dtypes, shapes against
// byte sizes, and data offsets that cover the data section exactly (no gaps, overlaps or trailing
// bytes). Any failure throws spruce::Error (data) naming the file and the problem.
SafetensorsFile read_safetensors(const std::string& path);
SafetensorsFile parse_safetensors(std::string_view bytes, const std::string& source);
// Throws spruce::Error (data) naming `source`, the tensor and the first NaN or Inf among `values`
// (its values), saying why it is refused: `use`, e.g. "magnitude pruning needs finite weights".
void require_finite(const std::string& source, const Tensor& t, const std::vector<float>& values,
                    const std::string& use);
void write_safetensors(const std::string& path, const SafetensorsFile& file);
std::string serialize_safetensors(const SafetensorsFile& file);

}  // namespace spruce
