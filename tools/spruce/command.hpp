// Subcommands register themselves: each cmd_*.cpp defines one `const Command` at namespace scope.
#pragma once
#include <CLI/CLI.hpp>

namespace spruce::cli {

// `add` creates the subcommand on `app` and sets its callback. A callback reports failure by
// throwing spruce::Error, which main() turns into a one-line message and the exit status.
struct Command {
  Command(const char* name, void (*add)(CLI::App& app));
};

}  // namespace spruce::cli
