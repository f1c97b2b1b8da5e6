#include "flags.hpp"

#include <strings.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <utility>

#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"

namespace spruce::cli {
namespace {

template <typename T>
bool parse_whole(const std::string& text, T& v) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, v);
  return !text.empty() && ec == std::errc() && ptr == end;
}

template <typename T>
CLI::Validator integer(T lo, T hi, const char* type) {
  const std::string range = "an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        T v{};
        if (!parse_whole(text, v) || v < lo || v > hi) return "'" + text.substr(0, 40) + "' is not " + range;
        return {};
      },
      type);
}

// The path that `path` will have, with links and dots resolved as far as they exist.
std::filesystem::path resolved(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(std::filesystem::absolute(path, ec), ec);
  return ec ? std::filesystem::path() : p;
}

}  // namespace

bool parse_real(const std::string& text, double& value) {
  // strtod also took " 0.5", "0x1p-1" and "infinity"; from_chars takes no spaces or hex in this mode.
  const char* begin = text.data();
  const char* end = begin + text.size();
  const bool plus = begin != end && *begin == '+';  // from_chars refuses one, and users may write it
  if (plus) ++begin;
  if (begin == end || (plus && *begin == '-')) return false;
  double v = 0;
  const auto [ptr, ec] = std::from_chars(begin, end, v, std::chars_format::general);
  if (ec != std::errc() || ptr != end || !std::isfinite(v)) return false;
  value = v;
  return true;
}

CLI::Validator int_in(int64_t lo, int64_t hi) { return integer<int64_t>(lo, hi, "INT"); }
CLI::Validator uint_in(uint64_t lo, uint64_t hi) { return integer<uint64_t>(lo, hi, "UINT"); }

CLI::Validator real_in(double lo, double hi, bool lo_open, bool hi_open) {
  auto show = [](double v) {
    std::string s = std::to_string(v);
    s.erase(s.find_last_not_of('0') + 1);
    if (s.back() == '.') s.pop_back();
    return s;
  };
  const std::string range = std::string("a number in ") + (lo_open ? "(" : "[") + show(lo) + ", " +
                            (std::isinf(hi) ? "inf" : show(hi)) + (hi_open ? ")" : "]");
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        const bool ok = parse_real(text, v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
        return ok ? std::string() : "'" + text.substr(0, 40) + "' is not " + range;
      },
      "REAL");
}

CLI::Validator fraction() { return real_in(0.0, 1.0, false, true); }

CLI::Validator thread_count() { return int_in(1, kMaxThreads); }

CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& text) { return text.empty() ? std::string("must not be empty") : std::string(); }, "TEXT");
}

void check_output_file(const std::string& flag, const std::string& path) {
  if (path.empty()) return;
  if (path == "-")  // a file named '-' where the user meant standard output
    usage_error(flag + " '-': this output is a file; name one (--output - is standard output for embed only)");
  // -o /dev/stderr with stderr sent to a log file would replace the log with the output, and
  // /dev/stdin the texts or weights it reads.
  std::error_code ec;
  for (const auto& [fd, stream] : {std::pair{0, "input"}, std::pair{1, "output"}, std::pair{2, "error"}})
    if (std::filesystem::equivalent(path, "/proc/self/fd/" + std::to_string(fd), ec))
      usage_error(flag + " " + in_quotes(path) + " is this command's standard " + stream +
                  ", which the output would replace; name another file");
  try {
    AtomicOutput probe(path);  // never committed: its temporary file is removed
  } catch (const Error& e) {
    usage_error(flag + ": " + e.what());
  }
}

void check_output_file(const std::string& flag, const std::string& path, const std::string& writes) {
  // Extensions of the formats spruce and its neighbours read, and what each says the file is.
  static const std::pair<const char*, const char*> kNamed[] = {{".safetensors", "safetensors"},
                                                               {".json", "JSON"},
                                                               {".jsonl", "JSONL"},
                                                               {".npy", "NPY"},
                                                               {".npz", "NPZ"},
                                                               {".yaml", "YAML"},
                                                               {".yml", "YAML"},
                                                               {".pt", "a LibTorch archive"},
                                                               {".pth", "a LibTorch archive"},
                                                               {".onnx", "ONNX"},
                                                               {".csv", "CSV"},
                                                               {".txt", "text"},
                                                               {".png", "PNG"},
                                                               {".svg", "SVG"},
                                                               {".gz", "gzip"}};
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  for (const auto& [named, format] : kNamed) {
    if (ext != named || format == writes) continue;
    // A JSON report may go to a text or JSONL file; a model may not.
    if (writes == "JSON" && (ext == ".txt" || ext == ".jsonl")) break;
    const std::string suffix = writes == "JSON" ? ".json" : "." + writes;
    usage_error(flag + " " + in_quotes(path) + " is named as " + format + ", and this writes " + writes + "; name a " +
                suffix + " file");
  }
  check_output_file(flag, path);
}

void make_output_folder(const std::string& flag, const std::string& dir, const std::vector<std::string>& files) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    usage_error(flag + " " + in_quotes(dir) + " is a file, not a folder; name a folder");
  fs::create_directories(dir, ec);
  if (ec) usage_error(flag + ": cannot make the folder " + in_quotes(dir) + ": " + ec.message());
  for (const auto& file : files) check_output_file(flag, (fs::path(dir) / file).string());
}

void check_not_input(const std::string& flag, const std::string& path, const std::string& input,
                     const std::string& input_is) {
  std::error_code ec;  // false, not an error, where either is missing
  if (!path.empty() && !input.empty() && std::filesystem::equivalent(path, input, ec))
    usage_error(flag + " " + in_quotes(path) + " is " + input_is +
                ", which the output would replace; name another file");
}

void check_not_inside(const std::string& flag, const std::string& path, const std::string& folder,
                      const std::string& folder_is, const std::vector<std::string>& reads) {
  namespace fs = std::filesystem;
  if (path.empty() || folder.empty()) return;
  for (const std::string& name : reads)
    check_not_input(flag, path, (fs::path(folder) / name).string(), name + ", a file of " + folder_is);
  std::error_code ec;  // a missing folder: nothing to replace
  if (reads.empty() && fs::exists(folder, ec) && is_within(path, folder))
    usage_error(flag + " " + in_quotes(path) + " is inside " + folder_is +
                ", every file of which is read; name a file outside it");
}

void check_finished_run(const std::string& flag, const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (dir.empty()) return;
  if (fs::is_regular_file(dir, ec))  // read as DIR/checkpoint.pt: "Not a directory"
    usage_error(flag + " " + in_quotes(dir) + " is a file; it takes the --save folder of a spruce train run");
  require_regular_file((fs::path(dir) / "checkpoint.pt").string());  // as reading it would say
  if (fs::exists(fs::path(dir) / "model.safetensors", ec)) return;
  usage_error(flag + " " + in_quotes(dir) +
              " holds a run that has not finished (a checkpoint, no model.safetensors): continue it with "
              "spruce train --resume " +
              dir + " --save " + dir + " and its settings, or give a finished run");
}

void check_not_output(const std::string& flag, const std::string& path, const std::string& folder,
                      const std::string& folder_flag, const std::vector<std::string>& files) {
  if (path.empty() || folder.empty()) return;
  const auto target = resolved(path);
  for (const std::string& name : files)
    if (!target.empty() && target == resolved((std::filesystem::path(folder) / name).string()))
      usage_error(flag + " " + in_quotes(path) + " is " + name + ", one of the files " + folder_flag +
                  " writes; name another file");
}

bool is_within(const std::string& path, const std::string& folder) {
  if (path.empty() || folder.empty()) return false;
  const auto inner = resolved(path), outer = resolved(folder);
  return !inner.empty() && !outer.empty() &&
         std::mismatch(outer.begin(), outer.end(), inner.begin(), inner.end()).first == outer.end();
}

void check_not_within(const std::string& flag, const std::string& path, const std::string& folder,
                      const std::string& folder_is) {
  if (is_within(path, folder))
    usage_error(flag + " " + in_quotes(path) + (resolved(path) == resolved(folder) ? " is " : " is inside ") +
                folder_is + "; name a place outside it");
}

void require_standard_output() {
  errno = 0;
  std::cout.flush();
  if (!std::cout || std::fflush(stdout) != 0 || std::ferror(stdout))
    data_error(std::string("cannot write standard output: ") + (errno ? std::strerror(errno) : "write failed"));
}

void add_fallback_option(CLI::App* cmd, std::string& value) {
  cmd->add_option("--fallback", value,
                  "Sparse variants: when a layer runs oneDNN dense instead. auto: where it timed faster at "
                  "conversion, for these batch sizes; never: always the sparse kernel; always: always oneDNN")
      ->check(CLI::IsMember({"auto", "never", "always"}))
      ->capture_default_str();
}

bool is_onednn_isa(const std::string& name) {
  return std::any_of(std::begin(kOnednnIsas), std::end(kOnednnIsas),
                     [&](const char* isa) { return strcasecmp(isa, name.c_str()) == 0; });
}

std::string onednn_isa_list() {
  std::string out;
  for (size_t i = 0; i < std::size(kOnednnIsas); ++i)
    out += std::string(i == 0 ? "" : i + 1 == std::size(kOnednnIsas) ? " or " : ", ") + kOnednnIsas[i];
  return out;
}

}  // namespace spruce::cli
