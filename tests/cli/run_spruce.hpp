// Runs the `spruce` binary under test (SPRUCE_BINARY) through the shell and collects its output.
#pragma once
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace spruce::test {

struct Result {
  int status = -1;  // exit code; 128 + signal when killed
  std::string out;  // stdout and stderr together
};

// A shell command line, stderr folded into stdout.
inline Result run_shell(const std::string& command_line) {
  Result r;
  FILE* p = popen((command_line + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

inline Result run_spruce(const std::string& args) { return run_shell(std::string(SPRUCE_BINARY) + " " + args); }

}  // namespace spruce::test
