// FNV-1a (64-bit): a cheap, stable checksum of bytes, equal on every machine. Not cryptographic.
#pragma once
#include <cstddef>
#include <cstdint>

namespace spruce {

constexpr uint64_t kFnv1aBasis = 14695981039346656037ull;

// Continues `hash` over `size` bytes at `data`; start from kFnv1aBasis.
inline uint64_t fnv1a(const void* data, size_t size, uint64_t hash = kFnv1aBasis) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  return hash;
}

}  // namespace spruce
