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

// `text` with its control characters written as escapes (\n, \t, \x1b, ...), so that a name from
// a file or a user stays on one line and cannot drive the terminal.
inline std::string printable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      out += c;
      continue;
    }
    const char* named = c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : nullptr;
    if (named) {
      out += named;
    } else {
      const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

// A value from a user or a file, for an error message: in single quotes, on one line, and cut
// to `max` characters, so a hostile 50 MB scalar or a name with newlines cannot flood the line.
inline std::string in_quotes(std::string_view value, size_t max = 120) {
  std::string out = "'";
  out += printable(value.substr(0, max));
  out += '\'';
  if (value.size() > max) out += " (cut; " + std::to_string(value.size()) + " characters)";
  return out;
}

[[noreturn]] inline void usage_error(const std::string& message) { throw Error(ErrorKind::Usage, message); }
[[noreturn]] inline void data_error(const std::string& message) { throw Error(ErrorKind::Data, message); }

}  // namespace spruce
