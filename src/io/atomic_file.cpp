// Atomic writes: a temporary file in the target's folder, flushed, then renamed over the target.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "spruce/error.hpp"
#include "spruce/safetensors.hpp"

namespace spruce {

void write_file_atomic(const std::string& path, std::string_view contents) {
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> name(tmpl.begin(), tmpl.end());
  name.push_back('\0');
  int fd = ::mkstemp(name.data());
  if (fd < 0) data_error("cannot write '" + path + "': " + std::strerror(errno) + " (check that its folder exists and is writable)");
  auto fail = [&](const char* what) {
    const std::string why = std::strerror(errno);
    ::close(fd);
    ::unlink(name.data());
    data_error("cannot write '" + path + "': " + what + ": " + why);
  };
  size_t done = 0;
  while (done < contents.size()) {
    ssize_t n = ::write(fd, contents.data() + done, contents.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("write failed");
    }
    done += size_t(n);
  }
  if (::fchmod(fd, 0644) != 0) fail("chmod failed");
  if (::fsync(fd) != 0) fail("fsync failed");
  if (::close(fd) != 0) {
    ::unlink(name.data());
    data_error("cannot write '" + path + "': close failed: " + std::strerror(errno));
  }
  if (::rename(name.data(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    ::unlink(name.data());
    data_error("cannot write '" + path + "': rename failed: " + why);
  }
}

}  // namespace spruce
