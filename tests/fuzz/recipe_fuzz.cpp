// libFuzzer target: the YAML recipe parser (Recipe::parse).
//
// Any text must either be rejected with spruce::Error or give a recipe that survives
// to_yaml() -> parse() unchanged, and whose groups can be asked about layer names.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_check.hpp"
#include "spruce/error.hpp"
#include "spruce/recipe.hpp"

using namespace spruce;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  Recipe r;
  try {
    r = Recipe::parse(text, "fuzz.yaml");
  } catch (const Error&) {
    return 0;
  }
  FUZZ_CHECK(!r.groups.empty());
  for (const PruningGroup& g : r.groups) {
    FUZZ_CHECK(g.target() >= 0.0 && g.target() < 1.0);
    FUZZ_CHECK(g.schedule.start_step <= g.schedule.end_step);
    FUZZ_CHECK(g.schedule.frequency >= 1);
  }
  const Recipe again = Recipe::parse(r.to_yaml(), "round trip");
  FUZZ_CHECK(again.groups == r.groups);
  for (const char* name : {"fc1", "features.0.conv", "head", ""})
    for (const char* type : {"Linear", "Conv", ""}) r.group_for(name, type);
  return 0;
}
