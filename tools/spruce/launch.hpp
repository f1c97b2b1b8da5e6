// `spruce train --nproc N`: N local ranks of the same command line, under torchrun's variables.
#pragma once
#include <string>

namespace spruce::cli {

struct LocalLaunch {
  int nproc = 1;
  int master_port = 0;       // 0: a free port on 127.0.0.1
  int threads_per_rank = 1;  // replaces the command's --threads in every rank
  std::string log_dir;       // ranks 1..N-1 write rank<R>.log here; rank 0 keeps the terminal
};

// Set in every rank: the launcher holds the output folders' locks (lock_folder) for them.
inline constexpr char kLauncherHoldsLocks[] = "SPRUCE_LAUNCHER_HOLDS_LOCKS";

// Starts the ranks (this executable, with --nproc removed and RANK, WORLD_SIZE, MASTER_ADDR and
// MASTER_PORT set) and waits. When one rank fails, it names that rank in one line, stops the
// others, and returns non-zero; 0 when all succeed.
int launch_local_ranks(const LocalLaunch& launch);

}  // namespace spruce::cli
