// Subcommands register themselves: each cmd_*.cpp defines one `const Command` at namespace scope.
// The commands that need LibTorch keep their work apart from their flags: cmd_<name>.hpp holds
// the arguments, cmd_<name>.cpp the flags (in both programs), run_<name>.cpp the work (spruce-torch).
#pragma once
#include <CLI/CLI.hpp>

namespace spruce::cli {

// `add` creates the subcommand on `app` and sets its callback. A callback reports failure by
// throwing spruce::Error, which main() turns into a one-line message and the exit status.
struct Command {
  Command(const char* name, void (*add)(CLI::App& app));
};

// In `spruce`: runs a LibTorch command whose flags have parsed by executing `spruce-torch` beside it
// on the same command line (the run functions in hand_over.cpp call it). Throws spruce::Error
// where it cannot.
[[noreturn]] void hand_over_command_line();

}  // namespace spruce::cli
