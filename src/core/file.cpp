#include "spruce/file.hpp"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "spruce/error.hpp"

namespace spruce {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  return "not a regular file";
}

[[noreturn]] void cannot(const char* verb, const std::string& path, const std::string& why) {
  data_error(std::string("cannot ") + verb + " " + in_quotes(path) + ": " + why);
}

// Temporary files that signals must remove: fixed slots, so the handler only reads memory that
// was written before the slot was published.
constexpr int kSlots = 64;
struct Slot {
  std::atomic<int> state{0};  // 0 free, 1 being written, 2 holds a temporary file's path
  char path[PATH_MAX];
};
std::array<Slot, kSlots> slots;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction saved_actions[std::size(kSignals)], saved_xfsz;
bool installed[std::size(kSignals)], xfsz_ignored;
std::mutex install_mutex;
int open_outputs = 0;

void remove_temporaries(int sig) {
  for (auto& s : slots)
    if (s.state.load(std::memory_order_acquire) == 2) ::unlink(s.path);
  for (size_t i = 0; i < std::size(kSignals); ++i)
    if (kSignals[i] == sig) ::sigaction(sig, &saved_actions[i], nullptr);
  ::raise(sig);  // now with the disposition it had before: normally, the process ends
}

// Handlers are installed while any output is open, and only over the default disposition: a
// signal the process ignores (nohup) stays ignored. SIGXFSZ is ignored meanwhile, so a write past
// the file-size limit fails with EFBIG and is reported like any other failed write.
void retain_handlers() {
  std::lock_guard lock(install_mutex);
  if (open_outputs++ > 0) return;
  for (size_t i = 0; i < std::size(kSignals); ++i) {
    ::sigaction(kSignals[i], nullptr, &saved_actions[i]);
    installed[i] = saved_actions[i].sa_handler == SIG_DFL && !(saved_actions[i].sa_flags & SA_SIGINFO);
    if (!installed[i]) continue;
    struct sigaction a {};
    a.sa_handler = remove_temporaries;
    sigemptyset(&a.sa_mask);
    ::sigaction(kSignals[i], &a, nullptr);
  }
  ::sigaction(SIGXFSZ, nullptr, &saved_xfsz);
  xfsz_ignored = saved_xfsz.sa_handler == SIG_DFL && !(saved_xfsz.sa_flags & SA_SIGINFO);
  if (xfsz_ignored) ::signal(SIGXFSZ, SIG_IGN);
}

void release_handlers() {
  std::lock_guard lock(install_mutex);
  if (--open_outputs > 0) return;
  for (size_t i = 0; i < std::size(kSignals); ++i)
    if (installed[i]) ::sigaction(kSignals[i], &saved_actions[i], nullptr);
  if (xfsz_ignored) ::sigaction(SIGXFSZ, &saved_xfsz, nullptr);
}

int claim_slot(const std::string& path) {
  if (path.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    Slot& s = slots[size_t(i)];
    int expected = 0;
    if (!s.state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.state.store(2, std::memory_order_release);
    return i;
  }
  return -1;  // more than kSlots outputs at once: this one is still removed on failure, not on signals
}

}  // namespace

void require_regular_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) cannot("read", path, "no such file (check the path)");
    cannot("read", path, std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) cannot("read", path, std::string("it is ") + kind_of(st.st_mode) + ", not a file");
}

std::string read_file(const std::string& path) {
  require_regular_file(path);
  // Non-blocking, so that a file swapped for a FIFO since the check cannot hang the open.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) cannot("read", path, std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    cannot("read", path, "it is not a regular file");
  }
  std::string bytes;
  bytes.reserve(size_t(st.st_size));
  char chunk[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, chunk, sizeof chunk);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string why = std::strerror(errno);
      ::close(fd);
      cannot("read", path, why);
    }
    bytes.append(chunk, size_t(n));
  }
  ::close(fd);
  return bytes;
}

AtomicOutput::AtomicOutput(const std::string& path) : target_(path) {
  if (path.empty()) usage_error("an output path is empty");
  namespace fs = std::filesystem;
  mode_t mode = 0644;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISLNK(st.st_mode)) {
      char resolved[PATH_MAX];
      if (::realpath(path.c_str(), resolved) == nullptr || ::stat(resolved, &st) != 0) {
        // /dev/stdout on a pipe resolves to no path, yet leads somewhere: say where.
        if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
          cannot(
              "write", path,
              std::string("it leads to ") + kind_of(st.st_mode) + "; spruce only replaces regular files, so name one");
        cannot("write", path, "it is a symlink to nothing; remove it or name another output");
      }
      target_ = resolved;
    }
    if (!S_ISREG(st.st_mode))
      cannot("write", path, std::string("it is ") + kind_of(st.st_mode) + "; spruce only replaces regular files");
    mode = st.st_mode & 07777;
  }
  // A short name beside the target, so a target name at NAME_MAX still gets a temporary file. No
  // leading dot: LibTorch names a checkpoint's archive after its file, up to the first dot.
  const fs::path folder = fs::path(target_).parent_path();
  // The temporary file's short name would pass where the target's cannot: the rename would fail
  // after the work. Checked here, the up-front output checks refuse it before the work.
  const std::string name = fs::path(target_).filename().string();
  const long name_max = ::pathconf((folder.empty() ? fs::path(".") : folder).c_str(), _PC_NAME_MAX);
  if (name_max > 0 && name.size() > size_t(name_max))
    cannot("write", path,
           "its file name is " + std::to_string(name.size()) + " bytes, and this file system allows " +
               std::to_string(name_max) + "; name a shorter file");
  std::string tmpl = (folder.empty() ? fs::path(".") : folder).string() + "/spruce-tmp-XXXXXX";
  retain_handlers();
  fd_ = ::mkstemp(tmpl.data());
  if (fd_ < 0) {
    const std::string why = std::strerror(errno);
    release_handlers();
    std::error_code ec;
    const fs::path dir = folder.empty() ? fs::path(".") : folder;
    if (fs::is_directory(dir, ec))  // the folder is there, but takes no new file (/proc, read-only)
      cannot("write", path, "its folder " + in_quotes(dir.string()) + " takes no new file (" + why + ")");
    cannot("write", path, why + " (check that its folder exists and is writable)");
  }
  temp_ = tmpl;
  slot_ = claim_slot(temp_);
  if (::fchmod(fd_, mode) != 0) {  // a throwing constructor runs no destructor: release by hand
    const std::string why = std::strerror(errno);
    release();
    cannot("write", path, "chmod failed: " + why);
  }
}

AtomicOutput::~AtomicOutput() { release(); }

void AtomicOutput::release() {
  if (released_) return;
  released_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!temp_.empty()) ::unlink(temp_.c_str());
  if (slot_ >= 0) slots[size_t(slot_)].state.store(0, std::memory_order_release);
  release_handlers();
}

void AtomicOutput::fail(const std::string& what) {
  const std::string why = std::strerror(errno);
  cannot("write", target_, what + ": " + why);  // the destructor removes the temporary file
}

void AtomicOutput::write(std::string_view bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    done += size_t(n);
  }
}

void AtomicOutput::commit() {
  if (fd_ >= 0) {
    if (::fsync(fd_) != 0) fail("fsync failed");
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("close failed");
  }
  if (::rename(temp_.c_str(), target_.c_str()) != 0) fail("rename failed");
  temp_.clear();
}

void write_file_atomic(const std::string& path, std::string_view contents) {
  AtomicOutput out(path);
  out.write(contents);
  out.commit();
}

void write_folder_atomic(const std::string& path, const std::function<void(const std::string& temp)>& fill) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (fs::exists(status) && !fs::is_directory(status)) cannot("write", path, "it is not a folder; name a folder");
  // A link to a folder: the folder it leads to is replaced, and the link kept.
  const std::string dir = fs::is_symlink(fs::symlink_status(path, ec)) ? fs::canonical(path, ec).string() : path;
  const fs::path parent = fs::absolute(dir, ec).parent_path();
  std::string tmpl = (parent / "spruce-tmp-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) cannot("write", dir, std::strerror(errno));
  // mkdtemp makes it private (0700): it gets the mode of the folder it replaces, or a new folder's.
  const mode_t umask_bits = ::umask(0);
  ::umask(umask_bits);
  struct stat st {};
  ::chmod(tmpl.c_str(), ::stat(dir.c_str(), &st) == 0 ? st.st_mode & 07777 : 0777 & ~umask_bits);
  try {
    fill(tmpl);
  } catch (...) {
    fs::remove_all(tmpl, ec);
    throw;
  }
  // The new folder takes the old one's place in one step; the old one, now at the temporary
  // name, is removed after.
  const bool replace = fs::exists(dir, ec);
  bool moved = ::renameat2(AT_FDCWD, tmpl.c_str(), AT_FDCWD, dir.c_str(), replace ? RENAME_EXCHANGE : 0) == 0;
  int error = moved ? 0 : errno;
  std::string old = tmpl;
  if (!moved && replace && (error == EINVAL || error == ENOSYS || error == EOPNOTSUPP)) {
    old = tmpl + "-old";  // a file system without the exchange: two renames, the old folder moved aside first
    if (::rename(dir.c_str(), old.c_str()) != 0) {
      error = errno;
    } else if (::rename(tmpl.c_str(), dir.c_str()) != 0) {
      error = errno;
      ::rename(old.c_str(), dir.c_str());
    } else {
      moved = true;
    }
  }
  if (!moved) {
    fs::remove_all(tmpl, ec);
    cannot("write", dir, std::strerror(error));
  }
  fs::remove_all(old, ec);
}

}  // namespace spruce
