// What every fuzz target shares: a property check that aborts (so libFuzzer records the input as a
// crash), and the rule that the code under test may fail only with spruce::Error.
#pragma once
#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                               \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)

// Any other exception escapes LLVMFuzzerTestOneInput, reaches std::terminate and is a finding:
// callers (the CLI, the model loader) turn only spruce::Error into a one-line message.
