// spruce: prune networks to structured sparsity and run them faster than dense on CPUs.
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/memory.hpp"

#include <unistd.h>

namespace spruce::cli {
namespace {
std::vector<std::pair<std::string, void (*)(CLI::App&)>>& registry() {
  static std::vector<std::pair<std::string, void (*)(CLI::App&)>> commands;
  return commands;
}
}  // namespace

Command::Command(const char* name, void (*add)(CLI::App& app)) { registry().emplace_back(name, add); }

namespace {

// Errors reach the terminal as one line: a library's message may carry a backtrace after its first
// line (LibTorch's do), and a message built from hostile input may be long. spruce's own messages
// are one line by design, so a control character in them came from a name, and is escaped.
std::string one_line(const char* what, bool own = false) {
  std::string s(what);
  s = own ? printable(s) : printable(s.substr(0, s.find('\n')));
  constexpr size_t kMax = 1000;
  if (s.size() > kMax) s = s.substr(0, kMax) + "... (cut)";
  return s;
}

// SPRUCE_MAX_ISA below amx on an AMX host caps every oneDNN in the process at AVX-512 VNNI, LibTorch's
// too: each reads DNNL_MAX_CPU_ISA at its first primitive, and LibTorch may run one before spruce's
// dense operator does (runtime/dense.cpp caps only its own, and only if it is first).
// Called once main has checked SPRUCE_MAX_ISA.
void cap_onednn_with_spruce() {
  if (const char* own = std::getenv("DNNL_MAX_CPU_ISA"); own && *own) return;
  if (detected_isa() == Isa::Amx && max_isa() < Isa::Amx) setenv("DNNL_MAX_CPU_ISA", "AVX512_CORE_VNNI", 1);
}

bool is_one_of(const char* command, std::initializer_list<const char*> names) {
  return std::any_of(names.begin(), names.end(), [&](const char* n) { return std::strcmp(command, n) == 0; });
}

// Idle worker threads that spin take the cores from the threads with work, and both libraries
// below read their setting when they load, so the commands that run or tune models set them before
// LibTorch loads: `spruce` as it hands over, `spruce-torch` started directly by executing itself
// again, once. A user's own setting is kept; if the re-execution fails, the run goes on as it is.
//  - libgomp spins an idle worker 300,000 times before it sleeps (OMP_WAIT_POLICY unset). Running
//    whole models on this project's 2-core VMs, that held batch-1 p99 at 100-140 ms against a p50
//    of 8 ms (all-MiniLM-L6-v2, every variant, LibTorch's own included); 10,000 spins kept wake-ups
//    fast and removed the stalls (docs/performance/minilm.md, "all-MiniLM-L6-v2").
//  - OpenBLAS (Debian's pthread build, LibTorch's FP32 BLAS) spins its workers 2^28 cycles, about
//    0.1 s, after every call. Converting a model times each layer's sparse and dense paths right
//    after LibTorch's FP32 calibration; with the workers spinning, the sparse path lost and half of
//    the INT8 sparse MiniLM encoders ran oneDNN in most layers at half the speed (Zen 4, 2 cores).
//    2^4 cycles: they sleep at once.
// Returns whether it set anything.
bool quiet_idle_threads(int argc, char** argv) {
  if (argc < 2) return false;
  bool changed = false;
  if (is_one_of(argv[1], {"embed", "bench-model"}) && !std::getenv("OMP_WAIT_POLICY") && !std::getenv("GOMP_SPINCOUNT"))
    changed |= setenv("GOMP_SPINCOUNT", "10000", 1) == 0;
  if (is_one_of(argv[1], {"embed", "bench-model", "eval", "convert"}) && !std::getenv("OPENBLAS_THREAD_TIMEOUT"))
    changed |= setenv("OPENBLAS_THREAD_TIMEOUT", "4", 1) == 0;
  return changed;
}

#ifdef SPRUCE_HANDS_OVER_TO
int command_argc = 0;  // main's, for the hand-over
char** command_argv = nullptr;
#endif

// CLI11's wording for two of its errors, in this tool's.
std::string plain_parse_error(const std::string& message, int argc, char** argv) {
  const std::string repeated = ": At Most 1 required but received ";
  if (const size_t at = message.find(repeated); at != std::string::npos)
    return message.substr(0, at) + " is given " + message.substr(at + repeated.size()) + " times; give it once";
  if (message == "A subcommand is required")
    return argc > 1 ? in_quotes(argv[1], 60) +
                          " is not an option of spruce itself; give a command first, e.g. spruce " + "train"
                    : "give a command, e.g. spruce train";
  return message;
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0]++;
    for (size_t j = 1; j <= b.size(); ++j)
      diagonal = std::exchange(row[j], std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])}));
  }
  return row[b.size()];
}

// CLI11 lists the arguments it did not expect in reverse: name them as typed, and for an unknown
// option, the option of the command that it most likely meant (one it begins, or one a typo away).
std::string extras_error(const CLI::App& app) {
  const std::vector<std::string> extras = app.remaining(true);
  if (extras.empty()) return "";
  const std::string& first = extras[0];
  if (first.size() > 1 && first[0] == '-' && first != "--") {
    const auto parsed = app.get_subcommands();
    const CLI::App& command = parsed.empty() ? app : *parsed[0];
    std::string meant;
    size_t closest = 3;  // a typo: at most 2 edits
    for (const CLI::Option* option : command.get_options())
      for (const std::string& name : option->get_lnames()) {
        const std::string flag = "--" + name;
        const size_t d = flag.rfind(first, 0) == 0 ? 0 : edit_distance(first, flag);
        if (d < closest) closest = d, meant = flag;
      }
    // A file whose name begins with '-' reads as an option (and the command then found its file
    // missing): say how to give it.
    const bool file_like = meant.empty() && first.find_first_of("./") != std::string::npos;
    return "unknown option " + in_quotes(first, 60) + (meant.empty() ? "" : "; did you mean " + meant + "?") +
           (file_like ? "; a file whose name begins with '-' goes after `--`, or as ./" + first : "");
  }
  std::string listed;
  for (const auto& extra : extras) listed += " " + in_quotes(extra, 60);
  return (extras.size() > 1 ? "unexpected arguments:" : "unexpected argument:") + listed;
}

// OMP_NUM_THREADS is every OpenMP region's thread count where no flag sets one: held to the flags'
// bound, so that 100000 is named rather than failing as "out of memory" in a thread pool. A list
// gives nested levels' counts; each must be one. (libgomp also warns about a bad value as it loads,
// before this runs.)
void check_omp_num_threads() {
  const char* value = std::getenv("OMP_NUM_THREADS");
  if (!value || !*value) return;
  const std::string all(value);
  for (size_t begin = 0; begin <= all.size();) {
    const size_t end = std::min(all.find(',', begin), all.size());
    const std::string count = all.substr(begin, end - begin);
    char* stop = nullptr;
    errno = 0;
    const long n = std::strtol(count.c_str(), &stop, 10);
    if (errno != 0 || stop == count.c_str() || *stop != '\0' || !std::isdigit(static_cast<unsigned char>(count[0])) ||
        n < 1 || n > kMaxThreads)
      usage_error("OMP_NUM_THREADS=" + in_quotes(value, 60) + " is not a thread count in 1.." +
                  std::to_string(kMaxThreads) + " (or a list of them); set it to one, or unset it and give --threads");
    begin = end + 1;
  }
}

// oneDNN ignores a DNNL_MAX_CPU_ISA it does not know, and a typo (avx512_core_vnn) then measured
// the uncapped host in silence.
void check_dnnl_max_cpu_isa() {
  const char* value = std::getenv("DNNL_MAX_CPU_ISA");
  if (value && *value && !is_onednn_isa(value))
    usage_error("DNNL_MAX_CPU_ISA=" + in_quotes(value, 60) + " is not an ISA oneDNN knows, and it would ignore it: " +
                "expected " + onednn_isa_list() + " (any case), or unset it");
}

// The command a mistyped one most likely meant: the same letters in another case, or a typo away.
std::string closest_command(const std::string& typed, const std::vector<std::string>& names) {
  std::string lower = typed, meant;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  size_t closest = 3;
  for (const std::string& name : names)
    if (const size_t d = edit_distance(lower, name); d < closest) closest = d, meant = name;
  return meant;
}

int report(const std::string& message, int status) {
  std::cerr << "spruce: error: " << message << '\n';
  return status;
}

}  // namespace

#ifdef SPRUCE_HANDS_OVER_TO
// The command line goes to the program that runs the LibTorch commands, in this program's folder,
// with the same arguments.
void hand_over_command_line() {
  char** argv = command_argv;
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  if (error) self = std::strchr(argv[0], '/') ? argv[0] : "";  // no /proc: the path it was started by
  const std::filesystem::path full = self.empty() ? "" : self.parent_path() / SPRUCE_HANDS_OVER_TO;
  if (full.empty() || !std::filesystem::exists(full, error)) {
    const std::string missing = full.empty() ? SPRUCE_HANDS_OVER_TO " beside spruce (no /proc/self/exe to find it by)"
                                             : in_quotes(full.string(), 200);
    data_error("cannot find " + missing + ", which runs the command " + in_quotes(argv[1], 60) +
               " and the other LibTorch commands; build or install spruce again (make builds both)");
  }
  quiet_idle_threads(command_argc, argv);
  std::cout.flush();
  execv(full.c_str(), argv);
  data_error("cannot start " + in_quotes(full.string(), 200) + " (" + std::strerror(errno) +
             "), which runs this command; build or install spruce again");
}
#endif

}  // namespace spruce::cli

int main(int argc, char** argv) {
  using spruce::cli::one_line;
  using spruce::cli::plain_parse_error;
  using spruce::cli::report;
  // `spruce help [COMMAND]` is `spruce [COMMAND] --help`, as git and cargo read it.
  std::vector<char*> help_args;
  if (argc > 1 && std::strcmp(argv[1], "help") == 0) {
    if (argc > 3) return report("help takes one command at most, e.g. spruce help train", 2);
    help_args = {argv[0]};
    if (argc == 3) help_args.push_back(argv[2]);
    help_args.push_back(const_cast<char*>("--help"));
    help_args.push_back(nullptr);
    argc = int(help_args.size()) - 1, argv = help_args.data();
  }
#ifdef SPRUCE_HANDS_OVER_TO
  spruce::cli::command_argc = argc, spruce::cli::command_argv = argv;
#else
  if (spruce::cli::quiet_idle_threads(argc, argv)) execv("/proc/self/exe", argv);
#endif
  try {  // an invalid SPRUCE_MAX_ISA, OMP_NUM_THREADS or DNNL_MAX_CPU_ISA is refused by every command
    spruce::max_isa();
    spruce::cli::check_omp_num_threads();
    spruce::cli::check_dnnl_max_cpu_isa();
  } catch (const spruce::Error& e) {
    return report(one_line(e.what(), true), e.exit_code());
  }
  spruce::cli::cap_onednn_with_spruce();
  spruce::keep_freed_memory();  // LibTorch forwards re-faulted their big tensors on every call
  CLI::App app{"spruce: prune networks to structured sparsity, and run them faster than dense on CPUs"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "spruce 0.1.0");
  auto commands = spruce::cli::registry();
  std::sort(commands.begin(), commands.end());
  for (const auto& [name, add] : commands) add(app);
  if (argc > 1 && argv[1][0] != '-' &&
      !std::any_of(commands.begin(), commands.end(), [&](const auto& c) { return c.first == argv[1]; })) {
    std::string names;
    std::vector<std::string> list;
    for (const auto& c : commands) names += (names.empty() ? "" : ", ") + c.first, list.push_back(c.first);
    const std::string meant = spruce::cli::closest_command(argv[1], list);
    return report("unknown command " + spruce::in_quotes(argv[1], 60) +
                      (meant.empty() ? "" : " (did you mean " + meant + "?)") + "; the commands are " + names +
                      " (see `spruce --help`)",
                  2);
  }
  if (argc > 2 && std::strcmp(argv[1], "--version") == 0)  // CLI11 would print it and ignore the rest
    return report(
        "--version takes nothing after it, not " + spruce::in_quotes(argv[2], 60) + "; give `spruce --version` alone",
        2);
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help, --version
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string command = argc > 1 && argv[1][0] != '-' ? std::string(argv[1]) + " " : "";
    // Within a command, an unknown option explains a missing argument better than the missing
    // argument does.
    const bool extras = dynamic_cast<const CLI::ExtrasError*>(&e) ||
                        (dynamic_cast<const CLI::RequiredError*>(&e) && !app.get_subcommands().empty());
    std::string message = extras ? spruce::cli::extras_error(app) : "";
    if (message.empty()) message = plain_parse_error(one_line(e.what()), argc, argv);
    return report(message + " (see `spruce " + command + "--help`)", 2);
  } catch (const spruce::Error& e) {
    return report(one_line(e.what(), true), e.exit_code());
  } catch (const std::bad_alloc&) {
    return report("out of memory; try smaller inputs or batches", 1);
  } catch (const std::filesystem::filesystem_error& e) {  // a path that cannot be followed (a link loop)
    return report("cannot use " + spruce::in_quotes(e.path1().string()) + ": " + e.code().message(), 2);
  } catch (const std::exception& e) {
    // LibTorch's allocator reports in its own words: "[enforce fail at alloc_cpu.cpp:75] ... you
    // tried to allocate 15360000000 bytes".
    const std::string what = e.what();
    if (what.find("alloc_cpu.cpp") != std::string::npos || what.find("not enough memory") != std::string::npos) {
      const size_t at = what.find("allocate ");
      const std::string bytes = at == std::string::npos ? "" : what.substr(at + 9, what.find(' ', at + 9) - at - 9);
      return report(std::string("out of memory") + (bytes.empty() ? "" : " (" + bytes + " bytes asked for at once)") +
                        "; try smaller inputs or batches",
                    1);
    }
    return report(one_line(e.what()), 1);
  }
  // Output written to standard output (a table, JSON, embeddings) must have arrived: a full disk
  // or a closed descriptor is a failure, not exit 0 with nothing written.
  try {
    spruce::cli::require_standard_output();
  } catch (const spruce::Error& e) {
    return report(e.what(), e.exit_code());
  }
  return 0;
}
