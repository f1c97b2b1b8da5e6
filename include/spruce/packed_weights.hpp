// PackedWeights: a pruned weight matrix W[rows][cols] packed for one sparse kernel. It is the one
// packed format in spruce: exactly what the kernel reads, and what a converted-model file stores.
//
// The layout is the kernel's business (src/kernels) and opaque here. Callers can measure it,
// check it, turn it back into the dense matrix, and take it apart into named arrays for a file
// format and put it together again. Copies share the immutable arrays.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "spruce/matrix.hpp"

namespace spruce {

// PackedWeights as a file format stores it: the kernel's name, integer attributes and arrays.
struct PackedParts {
  enum class Type { I64, I32, I8, U8, F32 };
  struct Array {
    std::string name;
    Type type;
    std::vector<uint8_t> bytes;  // little-endian elements of `type`
  };
  std::string kernel;
  std::vector<std::pair<std::string, int64_t>> attributes;
  std::vector<Array> arrays;
  const Array* find(const std::string& name) const;  // null when absent
};

class PackedWeights {
 public:
  PackedWeights();  // empty: no kernel, 0 x 0

  bool empty() const;
  bool int8() const;  // s8 weights (else f32)
  int64_t rows() const;
  int64_t cols() const;
  std::string kernel() const;  // the registry kernel this layout is for ("" when empty)
  size_t size_bytes() const;   // what the packed arrays occupy
  double sparsity() const;     // fraction of zero weights in W

  // The dense W, exactly. Throws spruce::Error if the weights are of the other type.
  Matrix<float> unpack_f32() const;
  Matrix<int8_t> unpack_s8() const;

  // Every invariant the kernel relies on (bounds, sizes, order, zero padding). Throws
  // spruce::Error naming the first broken one. from_parts() has already checked it.
  void validate() const;

  PackedParts parts() const;
  // Checks everything (validate()) and that `kernel` exists in this build; rows x cols is the
  // shape the caller expects.
  static PackedWeights from_parts(const PackedParts& parts, bool int8, int64_t rows, int64_t cols);

  struct Impl;  // defined in src/kernels
  explicit PackedWeights(std::shared_ptr<const Impl> impl);
  const Impl& impl() const;

 private:
  std::shared_ptr<const Impl> impl_;
};

}  // namespace spruce
