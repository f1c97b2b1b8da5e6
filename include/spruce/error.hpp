// Errors that reach users: one line that names the problem and, where possible, the fix.
#pragma once
#include <stdexcept>
#include <string>

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

[[noreturn]] inline void usage_error(const std::string& message) { throw Error(ErrorKind::Usage, message); }
[[noreturn]] inline void data_error(const std::string& message) { throw Error(ErrorKind::Data, message); }

}  // namespace spruce
