#include "spruce/name_pattern.hpp"

#include <re2/re2.h>

#include "spruce/error.hpp"

namespace spruce {

NamePattern::NamePattern(std::string_view pattern, const std::string& what) : pattern_(pattern) {
  constexpr size_t kMaxLength = 4096;  // names are short; a longer pattern is a mistake or an attack
  if (pattern.size() > kMaxLength)
    usage_error(what + " " + in_quotes(pattern, 40) + " is longer than " + std::to_string(kMaxLength) + " characters");
  RE2::Options options;
  options.set_log_errors(false);
  options.set_max_mem(8 << 20);  // RE2's default; a larger program is refused, not built
  re_ = std::make_shared<const RE2>(re2::StringPiece(pattern.data(), pattern.size()), options);
  if (!re_->ok())
    usage_error(what + " " + in_quotes(pattern) + " is not a valid regular expression (" + re_->error() +
                "); RE2 syntax, e.g. 'fc[0-9]+\\.weight'");
}

bool NamePattern::found_in(std::string_view name) const {
  return RE2::PartialMatch(re2::StringPiece(name.data(), name.size()), *re_);
}

}  // namespace spruce
