// Files from users: inputs must be regular files, outputs are written whole or not at all.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace spruce {

// Throws spruce::Error (data) naming `path` unless it is a regular file (after symlinks): a
// folder, FIFO, socket or device is refused before anything opens it, so nothing blocks on it.
void require_regular_file(const std::string& path);

// The whole of a regular file. Throws spruce::Error (data) naming the path and the problem.
std::string read_file(const std::string& path);

// An output written as a temporary file in the target's folder, then renamed over the target.
// Readers never see a partial file. The target, if it exists, must be a regular file (or a
// symlink to one, which is replaced at its destination). While the output is open, SIGINT,
// SIGTERM, SIGHUP and SIGXFSZ remove the temporary file before the signal takes its course;
// destroying an uncommitted output removes it too.
class AtomicOutput {
 public:
  explicit AtomicOutput(const std::string& path);
  ~AtomicOutput();
  AtomicOutput(const AtomicOutput&) = delete;
  AtomicOutput& operator=(const AtomicOutput&) = delete;

  const std::string& temp_path() const { return temp_; }  // write here (open, or by name)
  int fd() const { return fd_; }                          // open for writing, or -1 once closed
  void write(std::string_view bytes);
  void commit();  // flush, close and rename over the target

 private:
  [[noreturn]] void fail(const std::string& what);
  void release();  // close, remove an uncommitted temporary file, drop the signal handlers; once
  std::string target_, temp_;
  int fd_ = -1;
  int slot_ = -1;
  bool released_ = false;
};

// Write `contents` to `path` through an AtomicOutput.
void write_file_atomic(const std::string& path, std::string_view contents);

// A folder written whole or not at all: `fill` writes the files into a new temporary folder beside
// `dir` (its path given), which then takes the place of `dir` in one step; an existing `dir` is
// removed after. If `fill` throws, or SIGINT, SIGTERM or SIGHUP comes first, the temporary folder
// is removed (and the exception goes on).
void write_folder_atomic(const std::string& dir, const std::function<void(const std::string& temp)>& fill);

// Files that replace their namesakes in the existing folder `dir` as a set: `fill` writes them into a
// temporary folder inside `dir` (its path given); once all are written, each is renamed into place.
// A failed write (a full disk) or a signal leaves `dir` as it was; other files in `dir` stay.
void replace_files_together(const std::string& dir, const std::function<void(const std::string& temp)>& fill);

// Holds an exclusive lock on the folder `dir` until the process ends (flock on the folder itself,
// so nothing is added to it): two commands writing one run folder at once mixed their files. A
// folder that another process holds is refused with a spruce::Error (usage) naming `flag`; asking
// again for a folder this process holds does nothing.
void lock_folder(const std::string& flag, const std::string& dir);

}  // namespace spruce
