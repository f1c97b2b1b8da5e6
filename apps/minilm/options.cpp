#include "minilm/options.hpp"

#include <cstdlib>

namespace minilm {

std::string default_model_dir() {
  if (const char* dir = std::getenv("SPRUCE_MINILM_DIR"); dir && *dir) return dir;
  return std::string(SPRUCE_SOURCE_DIR) + "/third_party/all-MiniLM-L6-v2";
}

}  // namespace minilm
