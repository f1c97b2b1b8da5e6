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

inline Result run_spruce(const std::string& args) {
  Result r;
  FILE* p = popen((std::string(SPRUCE_BINARY) + " " + args + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
  const int st = pclose(p);
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

}  // namespace spruce::test
