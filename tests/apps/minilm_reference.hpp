// The sentence-transformers reference for all-MiniLM-L6-v2 (tests/apps/data, made by
// tools/minilm_reference): texts, token ids and FP32 embeddings.
#pragma once
#include <torch/torch.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

struct Reference {
  std::vector<std::string> texts;
  std::vector<std::vector<int64_t>> ids;
  torch::Tensor embeddings;  // [N][384]
  int64_t max_length = 0;
};

const Reference& reference() {
  static const Reference r = [] {
    std::ifstream in(std::string(SPRUCE_SOURCE_DIR) + "/tests/apps/data/minilm_reference.json");
    const auto j = nlohmann::json::parse(in);
    Reference out;
    out.max_length = j.at("max_seq_length").get<int64_t>();
    std::vector<float> values;
    for (const auto& s : j.at("sentences")) {
      out.texts.push_back(s.at("text").get<std::string>());
      out.ids.push_back(s.at("input_ids").get<std::vector<int64_t>>());
      for (float v : s.at("embedding").get<std::vector<float>>()) values.push_back(v);
    }
    out.embeddings = torch::tensor(values).view({static_cast<int64_t>(out.texts.size()), -1});
    return out;
  }();
  return r;
}

}  // namespace
