// The fixture of the hostile-input suites: runs the real `spruce` binary and checks that a case
// ends with the expected exit status, exactly one line on stderr, no signal, no hang (a deadline
// kills it), and no change to any file in the test's folder.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace spruce::test {

namespace fs = std::filesystem;

struct Outcome {
  int status = -1;    // exit status, or -1 when killed by a signal
  int signal = 0;     // the signal that ended it, if any
  bool hung = false;  // still running at the deadline, then killed
  std::string out, err;
};

// Runs the binary with `args` (no shell), stdin from /dev/null, for at most `seconds`. With
// `interrupt_on`, it gets SIGINT (as from Ctrl-C) once that text shows on its stderr. `env`:
// variables set (a value) or removed (none) in the child's environment.
using EnvChanges = std::vector<std::pair<std::string, std::optional<std::string>>>;
inline Outcome run(const std::vector<std::string>& args, double seconds = 60, const std::string& interrupt_on = "",
                   const EnvChanges& env = {}) {
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return {};
  const pid_t pid = fork();
  if (pid == 0) {
    const int null = open("/dev/null", O_RDONLY);
    dup2(null, 0);
    dup2(out_pipe[1], 1);
    dup2(err_pipe[1], 2);
    close(out_pipe[0]), close(err_pipe[0]), close(out_pipe[1]), close(err_pipe[1]);
    for (const auto& [name, value] : env) value ? setenv(name.c_str(), value->c_str(), 1) : unsetenv(name.c_str());
    std::vector<char*> argv{const_cast<char*>(SPRUCE_BINARY)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(SPRUCE_BINARY, argv.data());
    _exit(127);
  }
  close(out_pipe[1]), close(err_pipe[1]);
  Outcome o;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  int open_fds = 2;
  bool interrupted = interrupt_on.empty();
  while (open_fds > 0) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      o.hung = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(fds, 2, int(left.count())) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP))) continue;
      char buf[65536];
      const ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? o.out : o.err).append(buf, size_t(n));
        if (!interrupted && o.err.find(interrupt_on) != std::string::npos) {
          kill(pid, SIGINT);
          interrupted = true;
        }
      } else
        close(fds[i].fd), fds[i].fd = -1, --open_fds;
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) close(f.fd);
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st)) o.status = WEXITSTATUS(st);
  if (WIFSIGNALED(st)) o.signal = WTERMSIG(st);
  return o;
}

inline std::string joined(const std::vector<std::string>& args) {
  std::string s;
  for (const auto& a : args) {
    if (!s.empty()) s += ' ';
    s.append(a, 0, 80);
  }
  return s;
}

class BadInput : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "spruce_bad_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ckpt_ = path("ckpt.safetensors");
    ASSERT_EQ(run({"make-checkpoint", "--seed", "7", "-o", ckpt_}).status, 0);
    old_output_ = path("old.safetensors");
    fs::copy_file(ckpt_, old_output_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
  }
  // Every regular file's name, size and a hash of its bytes (so that a failure prints a short
  // line per file, not megabytes), and every other entry's name and kind.
  std::map<std::string, std::string> snapshot() const {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::directory_iterator(dir_)) {
      const std::string name = e.path().filename().string();
      std::error_code ec;  // a loop of links is "not a regular file", not an exception
      if (e.is_regular_file(ec)) {
        std::ifstream in(e.path(), std::ios::binary);
        std::stringstream ss;
        ss << in.rdbuf();
        const std::string bytes = ss.str();
        files[name] = std::to_string(bytes.size()) + " bytes, hash " + std::to_string(std::hash<std::string>{}(bytes));
      } else {
        files[name] = fs::is_directory(e.status(ec)) ? "(folder)" : "(not a regular file)";
      }
    }
    return files;
  }
  // Runs one hostile case and checks everything the class of failure must show.
  void expect_refused(const std::vector<std::string>& args, int status, const std::string& message = "") {
    const auto before = snapshot();
    const Outcome o = run(args);
    const std::string what = joined(args);
    EXPECT_FALSE(o.hung) << what << ": hung";
    EXPECT_EQ(o.signal, 0) << what << ": killed by signal " << o.signal;
    EXPECT_EQ(o.status, status) << what << "\n" << o.err.substr(0, 2000);
    EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << what << ": stderr is not one line:\n"
                                                               << o.err.substr(0, 2000);
    EXPECT_LT(o.err.size(), 1200u) << what << ": the error line is too long";
    EXPECT_TRUE(o.err.rfind("spruce: error: ", 0) == 0) << what << "\n" << o.err.substr(0, 500);
    if (!message.empty()) {
      EXPECT_NE(o.err.find(message), std::string::npos) << what << ": no '" << message << "' in\n"
                                                        << o.err.substr(0, 2000);
    }
    EXPECT_EQ(snapshot(), before) << what << ": files in the folder changed";
  }
  std::vector<std::string> prune_to_old(std::vector<std::string> extra) const {
    std::vector<std::string> args{"prune", ckpt_, "-o", old_output_};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }

  fs::path dir_;
  std::string ckpt_, old_output_;
};

}  // namespace spruce::test
