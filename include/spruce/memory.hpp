// Process-wide memory policy for programs that run models.
#pragma once
#include <cstdint>

namespace spruce {

// Keeps the memory that freed tensors held for the next tensors, instead of handing it back to the
// kernel and faulting it in again page by page. glibc's malloc maps blocks above 128 KiB to 32 MiB
// fresh and returns them on free; an all-MiniLM-L6-v2 forward at batch 32 (25 MiB attention scores
// and FFN activations) then spent about 40% of its time in the kernel clearing pages. Here every
// block comes from the heap, which is trimmed only when 1 GiB lies free at its top. The process
// keeps its peak resident size. Call once, early, before threads start; a no-op off glibc.
void keep_freed_memory();

// The memory that new work can take without swapping (Linux's MemAvailable), in bytes; 0 where
// unknown.
uint64_t available_memory();

}  // namespace spruce
