// A converted model in one safetensors file, loaded back without repacking.
//
// The file holds each converted layer's packed weights exactly as its kernel reads them
// (SparseLinear::packed(): strip offsets, input channels, values, N:M selectors, bias, weight
// scales), every other parameter and buffer of the model by name, and in its metadata the format
// tag, one JSON record per converted layer (shape, pattern, kernel, quantization, activation,
// fallback) and whatever the caller adds (e.g. "model": "mlp"). It is written atomically.
//
// Loading takes the same model built unconverted (same constructor arguments): each listed layer
// replaces the model's Linear of that name, and every other tensor is copied in. Anything that
// does not match (a missing or extra tensor, a shape, a corrupt strip array, a truncated file)
// is a one-line spruce::Error that names it; the model is then not to be used.
#pragma once
#include <torch/nn/module.h>

#include <map>
#include <string>
#include <vector>

#include "spruce/safetensors.hpp"
#include "spruce/torch/convert.hpp"

namespace spruce::torch {

inline constexpr const char* kModelFileFormat = "spruce-converted-model/2";

// `model` must have been through convert(). `metadata` keys must not start with "spruce.".
void save_converted_model(const std::string& path, ::torch::nn::Module& model,
                          const std::map<std::string, std::string>& metadata = {});

struct LoadedModel {
  std::map<std::string, std::string> metadata;  // the caller's, as saved
  std::vector<ConvertedLayer> layers;
  int repacked = 0;  // layers whose kernel differs on this CPU, so they were packed again
};

// `threads`: the operators' thread count (0: OpenMP's default).
LoadedModel load_converted_model(const SafetensorsFile& file, const std::string& source, ::torch::nn::Module& model,
                                 int threads = 0);
LoadedModel load_converted_model(const std::string& path, ::torch::nn::Module& model, int threads = 0);

// The caller's metadata of a converted-model file (to learn which model to build before loading);
// throws if `file` is not one.
std::map<std::string, std::string> converted_model_metadata(const SafetensorsFile& file, const std::string& source);

}  // namespace spruce::torch
