// The JSON the commands write. A text that is not UTF-8, most often a path (a Latin-1 file name),
// has its bad bytes replaced by U+FFFD: nlohmann's default is to throw, which failed a run after its
// work, naming nothing.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "spruce/file.hpp"

namespace spruce::cli {

template <typename Json>
std::string json_text(const Json& j) {
  return j.dump(2, ' ', false, Json::error_handler_t::replace) + "\n";
}

template <typename Json>
void write_json(const std::string& path, const Json& j) {
  write_file_atomic(path, json_text(j));
}

}  // namespace spruce::cli
