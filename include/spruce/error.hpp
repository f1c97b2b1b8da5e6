// Errors that reach users: one line that names the problem and, where possible, the fix.
#pragma once
#include <stdexcept>
#include <string>
#include <string_view>

namespace spruce {

// Usage errors (bad flags, bad pattern strings, bad recipes) exit 2; bad data exits 1.
enum class ErrorKind { Usage, Data };

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }
  int exit_code() const noexcept { return kind_ == ErrorKind::Usage ? 2 : 1; }

 private:
  ErrorKind kind_;
};

// A value from a user or a file, for an error message: in single quotes, on one line, and cut
// to `max` characters, so a hostile 50 MB scalar or a name with newlines cannot flood the line.
inline std::string in_quotes(std::string_view value, size_t max = 120) {
  std::string out = "'";
  for (char c : value.substr(0, max)) out += (c == '\n' || c == '\r' || c == '\0') ? ' ' : c;
  out += '\'';
  if (value.size() > max) out += " (cut; " + std::to_string(value.size()) + " characters)";
  return out;
}

[[noreturn]] inline void usage_error(const std::string& message) { throw Error(ErrorKind::Usage, message); }
[[noreturn]] inline void data_error(const std::string& message) { throw Error(ErrorKind::Data, message); }

}  // namespace spruce
