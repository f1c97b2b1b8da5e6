#include "launch.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <thread>
#include <vector>

#include "spruce/error.hpp"

namespace spruce::cli {
namespace {

// This process's own arguments, as the kernel has them.
std::vector<std::string> own_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  const std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<std::string> args;
  for (size_t start = 0; start < all.size();) {
    const size_t end = all.find('\0', start);
    args.push_back(all.substr(start, end - start));
    start = end == std::string::npos ? all.size() : end + 1;
  }
  return args;
}

// The arguments without `--name V` / `--name=V`.
std::vector<std::string> without_option(const std::vector<std::string>& args, const std::string& name) {
  std::vector<std::string> out;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name) {
      ++i;
      continue;
    }
    if (args[i].rfind(name + "=", 0) == 0) continue;
    out.push_back(args[i]);
  }
  return out;
}

int free_local_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (fd >= 0) close(fd);
    data_error("no free TCP port on 127.0.0.1 for the ranks to meet on; give one with --master-port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string describe(int status) {
  if (WIFSIGNALED(status)) return std::string("was killed by signal ") + strsignal(WTERMSIG(status));
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

// The last "spruce: error: " message in a rank's log, without that prefix; empty if there is none.
std::string last_error(const std::string& log) {
  static const std::string prefix = "spruce: error: ";
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) last = line.substr(prefix.size());
  return last;
}

}  // namespace

int launch_local_ranks(const LocalLaunch& launch) {
  auto args = without_option(without_option(own_arguments(), "--nproc"), "--threads");
  args.push_back("--threads");
  args.push_back(std::to_string(launch.threads_per_rank));
  const int port = launch.master_port > 0 ? launch.master_port : free_local_port();
  std::filesystem::create_directories(launch.log_dir);
  std::cerr << "spruce train: " << launch.nproc << " ranks on 127.0.0.1:" << port << ", " << launch.threads_per_rank
            << " thread(s) each; "
            << (launch.nproc == 2 ? "rank 1 logs" : "ranks 1-" + std::to_string(launch.nproc - 1) + " log") << " to "
            << launch.log_dir << "/rank<R>.log\n";

  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<pid_t> pids;
  for (int rank = 0; rank < launch.nproc; ++rank) {
    const std::string log = launch.log_dir + "/rank" + std::to_string(rank) + ".log";
    const pid_t pid = fork();
    if (pid < 0) {
      for (pid_t p : pids) kill(p, SIGTERM);
      data_error("cannot start rank " + std::to_string(rank) + ": fork failed (" + strerror(errno) + ")");
    }
    if (pid == 0) {
      setenv("WORLD_SIZE", std::to_string(launch.nproc).c_str(), 1);
      setenv("RANK", std::to_string(rank).c_str(), 1);
      setenv("MASTER_ADDR", "127.0.0.1", 1);
      setenv("MASTER_PORT", std::to_string(port).c_str(), 1);
      setenv(kLauncherHoldsLocks, "1", 1);
      if (rank > 0) {
        const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) dup2(fd, STDOUT_FILENO), dup2(fd, STDERR_FILENO), close(fd);
      }
      execv("/proc/self/exe", argv.data());
      _exit(127);
    }
    pids.push_back(pid);
  }

  // Wait for all; the first failure stops the rest (TERM, then KILL after a grace period).
  int failed_rank = -1, failed_status = 0, running = launch.nproc;
  auto deadline = std::chrono::steady_clock::time_point::max();
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, failed_rank >= 0 ? WNOHANG : 0);
    if (pid < 0) break;
    if (pid == 0) {
      if (std::chrono::steady_clock::now() > deadline)
        for (pid_t p : pids)
          if (p > 0) kill(p, SIGKILL);  // never kill(-1): that signals every process we may signal
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      continue;
    }
    --running;
    int rank = 0;
    while (rank < launch.nproc && pids[size_t(rank)] != pid) ++rank;
    pids[size_t(rank)] = -1;
    if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) || failed_rank >= 0) continue;
    failed_rank = rank;
    failed_status = status;
    for (pid_t p : pids)
      if (p > 0) kill(p, SIGTERM);
    deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  }
  if (failed_rank < 0) return 0;
  // A rank that exits 1 or 2 has printed its one-line error; 127 is a failed exec, which printed nothing.
  const bool said_why =
      WIFEXITED(failed_status) && WEXITSTATUS(failed_status) != 0 && WEXITSTATUS(failed_status) != 127;
  if (failed_rank == 0 && said_why) return WEXITSTATUS(failed_status);  // its one line is on this terminal
  // Other ranks write to their logs: quote the failed rank's error, so the reason is still one line.
  const std::string log = launch.log_dir + "/rank" + std::to_string(failed_rank) + ".log";
  const std::string why = said_why ? last_error(log) : "";
  std::cerr << "spruce: error: rank " << failed_rank << " "
            << (why.empty() ? describe(failed_status) + "; stopped the other ranks" : "failed: " + why)
            << (failed_rank > 0 ? " (its log: " + log + ")" : "") << '\n';
  return said_why ? WEXITSTATUS(failed_status) : 1;
}

}  // namespace spruce::cli
