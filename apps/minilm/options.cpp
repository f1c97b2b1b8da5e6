#include "minilm/options.hpp"

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "spruce/cpu.hpp"
#include "spruce/error.hpp"

namespace minilm {

namespace {
const std::string& bundled_model_dir() {  // a function's static: safe from static initialization order
  static const std::string dir = std::string(SPRUCE_SOURCE_DIR) + "/third_party/all-MiniLM-L6-v2";
  return dir;
}
}  // namespace

std::string default_model_dir() {
  if (const char* dir = std::getenv("SPRUCE_MINILM_DIR"); dir && *dir) return dir;
  return bundled_model_dir();
}

void require_model_folder(const std::string& dir) {
  for (const char* file : {"config.json", "model.safetensors", "vocab.txt"})
    if (!std::filesystem::is_regular_file(std::filesystem::path(dir) / file))
      spruce::usage_error(spruce::in_quotes(dir) + model_dir_origin(dir) +
                          " is not a sentence-transformers model folder (no " + file +
                          "); give one, or run scripts/install-deps.sh, which fetches all-MiniLM-L6-v2");
}

TextFormat parse_text_format(const std::string& name, const std::string& path) {
  if (name == "text") return TextFormat::Lines;
  if (name == "jsonl") return TextFormat::Jsonl;
  if (name == "auto") return path.ends_with(".jsonl") ? TextFormat::Jsonl : TextFormat::Lines;
  spruce::usage_error("unknown input format " + spruce::in_quotes(name) + "; use text, jsonl or auto");
}

EmbeddingFormat parse_embedding_format(const std::string& name) {
  if (name == "jsonl") return EmbeddingFormat::Jsonl;
  if (name == "npy") return EmbeddingFormat::Npy;
  spruce::usage_error("unknown output format " + spruce::in_quotes(name) + "; use jsonl, npy or auto");
}

std::string model_label(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::equivalent(dir, bundled_model_dir(), ec)) return "all-MiniLM-L6-v2";
  const fs::path path = fs::path(dir).lexically_normal();
  const std::string name = (path.has_filename() ? path : path.parent_path()).filename().string();
  return name.empty() ? dir : name;
}

std::string model_dir_origin(const std::string& dir) {
  const char* set = std::getenv("SPRUCE_MINILM_DIR");
  return set && *set && dir == set ? " (from SPRUCE_MINILM_DIR)" : "";
}

void check_draw_size(const DistillOptions& o) {
  if (double(o.steps) * double(o.batch) > 1e8)
    spruce::usage_error("--steps x --batch is " + std::to_string(o.steps * o.batch) +
                        " texts, more than the 100 million a run can draw; take fewer steps or a smaller batch");
}

std::string checkpoint_path(const std::string& dir) { return (std::filesystem::path(dir) / "checkpoint.pt").string(); }

int64_t tokens_per_pass_for_l2(int64_t l2_bytes) {
  const int64_t sequences = std::clamp<int64_t>(l2_bytes / (kPassBytesPerToken * kMaxLength), 1, 8);
  return sequences * kMaxLength;
}

int64_t default_tokens_per_pass() { return tokens_per_pass_for_l2(spruce::l2_cache_bytes()); }

}  // namespace minilm
