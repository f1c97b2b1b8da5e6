#include "spruce/file.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <vector>

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
  bool folder = false;        // a temporary folder, removed with what it holds
  char path[PATH_MAX];
};
std::array<Slot, kSlots> slots;
constexpr int kSignals[] = {SIGINT, SIGTERM, SIGHUP};
struct sigaction saved_actions[std::size(kSignals)], saved_xfsz;
bool installed[std::size(kSignals)], xfsz_ignored;
std::mutex install_mutex;
int open_outputs = 0;

// A folder and what it holds, with async-signal-safe calls only (no opendir, no allocation). Its
// subfolders are followed a few levels deep: a saved model has one (1_Pooling).
void remove_folder_in_handler(int parent, const char* name, int depth) {
  const int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return;
  for (bool removed = true; removed;) {  // listing again, since removing entries may skip some
    removed = false;
    ::lseek(fd, 0, SEEK_SET);
    alignas(8) char buffer[4096];
    for (ssize_t n; (n = ::getdents64(fd, buffer, sizeof buffer)) > 0;)
      for (ssize_t at = 0; at < n;) {
        const auto* entry = reinterpret_cast<const struct dirent64*>(buffer + at);
        at += entry->d_reclen;
        const char* entry_name = entry->d_name;
        if (std::strcmp(entry_name, ".") == 0 || std::strcmp(entry_name, "..") == 0) continue;
        if (entry->d_type == DT_DIR) {
          if (depth > 0) remove_folder_in_handler(fd, entry_name, depth - 1);
        } else {
          removed |= ::unlinkat(fd, entry_name, 0) == 0;
        }
      }
  }
  ::close(fd);
  ::unlinkat(parent, name, AT_REMOVEDIR);
}

void remove_temporaries(int sig) {
  for (auto& s : slots)
    if (s.state.load(std::memory_order_acquire) == 2) {
      if (s.folder)
        remove_folder_in_handler(AT_FDCWD, s.path, 4);
      else
        ::unlink(s.path);
    }
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

int claim_slot(const std::string& path, bool folder = false) {
  if (path.size() >= PATH_MAX) return -1;
  for (int i = 0; i < kSlots; ++i) {
    Slot& s = slots[size_t(i)];
    int expected = 0;
    if (!s.state.compare_exchange_strong(expected, 1)) continue;
    s.folder = folder;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.state.store(2, std::memory_order_release);
    return i;
  }
  return -1;  // more than kSlots outputs at once: this one is still removed on failure, not on signals
}

// A temporary folder that SIGINT, SIGTERM and SIGHUP remove while it is held, and destruction unless
// it was moved away (kept() after the move). Its path is absolute: the handler cannot know the
// working folder of the moment.
class TemporaryFolder {
 public:
  TemporaryFolder(const std::filesystem::path& beside, const std::string& target) {
    std::string tmpl = (beside / "spruce-tmp-XXXXXX").string();
    retain_handlers();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      const std::string why = std::strerror(errno);
      release_handlers();
      cannot("write", target, why + " (making a temporary folder in " + in_quotes(beside.string()) + ")");
    }
    path_ = tmpl;
    slot_ = claim_slot(path_, true);
  }
  ~TemporaryFolder() {
    std::error_code ec;
    if (!kept_) std::filesystem::remove_all(path_, ec);
    if (slot_ >= 0) slots[size_t(slot_)].state.store(0, std::memory_order_release);
    release_handlers();
  }
  TemporaryFolder(const TemporaryFolder&) = delete;
  TemporaryFolder& operator=(const TemporaryFolder&) = delete;
  const std::string& path() const { return path_; }
  void kept() { kept_ = true; }
  // Runs fill(path()); an error it throws names `target` where it named the temporary folder.
  void fill(const std::function<void(const std::string& temp)>& fill, const std::string& target) const {
    try {
      fill(path_);
    } catch (const Error& e) {
      std::string message = e.what();
      for (size_t at = 0; (at = message.find(path_, at)) != std::string::npos; at += target.size())
        message.replace(at, path_.size(), target);
      throw Error(e.kind(), message);
    }
  }

 private:
  std::string path_;
  int slot_ = -1;
  bool kept_ = false;
};

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
        if (errno == ELOOP) cannot("write", path, "it is a loop of symlinks; remove it or name another output");
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
  TemporaryFolder temp(fs::absolute(dir, ec).parent_path(), dir);
  const std::string& tmpl = temp.path();
  // mkdtemp makes it private (0700): it gets the mode of the folder it replaces, or a new folder's.
  const mode_t umask_bits = ::umask(0);
  ::umask(umask_bits);
  struct stat st {};
  ::chmod(tmpl.c_str(), ::stat(dir.c_str(), &st) == 0 ? st.st_mode & 07777 : 0777 & ~umask_bits);
  temp.fill(fill, dir);  // if it throws, the temporary folder goes
  // The new folder takes the old one's place in one step; the old one, now at the temporary
  // name, goes with it.
  const bool replace = fs::exists(dir, ec);
  bool moved = ::renameat2(AT_FDCWD, tmpl.c_str(), AT_FDCWD, dir.c_str(), replace ? RENAME_EXCHANGE : 0) == 0;
  int error = moved ? 0 : errno;
  if (!moved && replace && (error == EINVAL || error == ENOSYS || error == EOPNOTSUPP)) {
    const std::string old = tmpl + "-old";  // no exchange here: two renames, the old folder moved aside first
    if (::rename(dir.c_str(), old.c_str()) != 0) {
      error = errno;
    } else if (::rename(tmpl.c_str(), dir.c_str()) != 0) {
      error = errno;
      ::rename(old.c_str(), dir.c_str());
    } else {
      moved = true;
      fs::remove_all(old, ec);
    }
  }
  if (!moved) cannot("write", dir, std::strerror(error));
  if (!replace) temp.kept();  // the new folder is `dir` now, and nothing is left at the temporary name
}

void replace_files_together(const std::string& dir, const std::function<void(const std::string& temp)>& fill) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) cannot("write", dir, "it is not a folder");
  TemporaryFolder temp(fs::absolute(dir, ec), dir);
  try {
    temp.fill(fill, dir);
  } catch (const Error& e) {
    throw Error(e.kind(), std::string(e.what()) + "; " + dir + " keeps its earlier files");
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(temp.path())) {
    const fs::path target = fs::path(dir) / entry.path().filename();
    if (!entry.is_regular_file() || fs::is_directory(target, ec))
      cannot("write", target.string(), "only files are replaced together, and this is a folder");
    files.push_back(entry.path());
  }
  // Renames within one file system take no space: they do not fail where the writes above could.
  for (const fs::path& file : files)
    if (::rename(file.c_str(), (fs::path(dir) / file.filename()).c_str()) != 0)
      cannot("write", (fs::path(dir) / file.filename()).string(), std::strerror(errno));
}

void lock_folder(const std::string& flag, const std::string& dir) {
  static std::mutex mutex;
  static std::vector<std::string> held;  // their descriptors stay open, and locked, until exit
  std::error_code ec;
  const std::string key = std::filesystem::canonical(dir, ec).string();
  std::lock_guard lock(mutex);
  if (ec || std::find(held.begin(), held.end(), key) != held.end()) return;
  const int fd = ::open(key.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // the writes that follow will say what is wrong with it
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd);
    if (error == EWOULDBLOCK)
      usage_error(flag + " " + in_quotes(dir) +
                  " is in use by another spruce command, which writes there too; wait for it, or name another folder");
    return;  // a file system without locks: go on as before
  }
  held.push_back(key);
}

}  // namespace spruce
