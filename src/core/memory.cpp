#include "spruce/memory.hpp"

#include <fstream>
#include <string>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace spruce {

void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_MAX, 0);              // no block gets a mapping of its own
  mallopt(M_TRIM_THRESHOLD, 1 << 30);  // the heap's free top goes back only past 1 GiB
  mallopt(M_TOP_PAD, 256 << 20);       // grow the heap in big steps (address space, not pages)
#endif
}

uint64_t available_memory() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  uint64_t kib = 0;
  while (meminfo >> key >> kib) {
    if (key == "MemAvailable:") return kib * 1024;
    meminfo.ignore(256, '\n');  // the rest of the line: its unit
  }
  return 0;
}

}  // namespace spruce
