// Each WeightFormat (kernel.hpp) packed from dense pruned weights, and unpacked with checks.
#pragma once

#include <string>

#include "kernel.hpp"

namespace spruce::kernels {

// W packed in kernel k's format (pack_formats.cpp). Throws spruce::Error (usage) when W does not
// fit it (a row with more than 4 nonzeros in an octet).
template <typename T>
StripWeights<T> pack_strips(const Kernel& k, MatrixView<const T> w);

// The dense matrix that packing s in format f holds (unpack_formats.cpp), every offset, index and
// padding checked first. Throws spruce::Error (data) on a corrupt packing.
template <typename T>
Matrix<T> unpack_checked(const StripWeights<T>& s, WeightFormat f);

// Throws spruce::Error (data): "packed weights are corrupt: " + what.
[[noreturn]] void corrupt(const std::string& what);

}  // namespace spruce::kernels
