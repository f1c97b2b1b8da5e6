// Regular expressions over layer and tensor names, from users and files. Matching is RE2's:
// linear in the name's length and free of recursion, so no name or pattern can exhaust the stack.
#pragma once
#include <memory>
#include <string>
#include <string_view>

namespace re2 {
class RE2;
}

namespace spruce {

class NamePattern {
 public:
  // Throws spruce::Error (usage) naming `what` (e.g. "--include") when `pattern` is not a valid
  // RE2 expression, nests too deeply, or is too large to compile.
  NamePattern(std::string_view pattern, const std::string& what);
  // Whether the pattern matches anywhere in `name` (std::regex_search's meaning).
  bool found_in(std::string_view name) const;
  const std::string& str() const { return pattern_; }

 private:
  std::string pattern_;
  std::shared_ptr<const re2::RE2> re_;
};

}  // namespace spruce
