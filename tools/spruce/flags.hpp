// Validators for numeric flags. Each parses the flag's whole text as its type: no empty string
// (which CLI11 would read as 0), no negative number wrapped into an unsigned one, no overflow, no
// nan or inf. Then it checks the range, so every flag has one stated range and one message.
#pragma once
#include <CLI/CLI.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace spruce::cli {

// An integer of type T in [lo, hi].
CLI::Validator int_in(int64_t lo, int64_t hi);
CLI::Validator uint_in(uint64_t lo, uint64_t hi);  // for unsigned flags such as seeds
// A finite real in [lo, hi], or (lo, hi] / [lo, hi) when an end is open.
CLI::Validator real_in(double lo, double hi, bool lo_open = false, bool hi_open = false);

// A finite number in plain decimal notation ("0.5", "5e-1", "+.5"): no spaces, hex, inf or nan.
bool parse_real(const std::string& text, double& value);
// A fraction of zeros, [0, 1).
CLI::Validator fraction();
// 1..kMaxThreads.
CLI::Validator thread_count();
// A text that is not empty (names, patterns, paths).
CLI::Validator non_empty();

// Outputs are checked before the work that ends in them, so that a typo cannot cost a run. A file:
// its folder must exist and take a new file, and the path, if it exists, must be a regular file
// (a temporary file is made beside it and removed). Nothing for an empty path. Throws
// spruce::Error (usage) naming `flag`.
void check_output_file(const std::string& flag, const std::string& path);
// The same, for a file in the format `writes` ("safetensors" or "JSON"): a name whose extension
// says another format (x.npy, recipe.yaml, model.safetensors for JSON) is refused, so that a
// model is not written under a name that misleads, nor a report over a model's name.
void check_output_file(const std::string& flag, const std::string& path, const std::string& writes);
// A folder, created if missing (with its parents), that must take each of `files` (as
// check_output_file): a folder or FIFO in the way is refused before the work, not after it.
void make_output_folder(const std::string& flag, const std::string& dir, const std::vector<std::string>& files);
// Refuses an output `path` that is the input file `input` (through any name or link): the write
// would replace what the command reads. `input_is` says what the input is, e.g. "--input, the texts".
void check_not_input(const std::string& flag, const std::string& path, const std::string& input,
                     const std::string& input_is);
// Refuses an output `path` that the command reads from the input folder `folder` (through any name
// or link): one of `reads`, the files it takes from there; or, with `reads` empty, any file in it,
// new ones too (a folder read whole, such as the fortunes, would read the output next time).
// `folder_is` says what the folder is, e.g. "the model (--model)".
void check_not_inside(const std::string& flag, const std::string& path, const std::string& folder,
                      const std::string& folder_is, const std::vector<std::string>& reads = {});
// Refuses an output `path` that is one of `files` in `folder`, which another output of the same
// command (`folder_flag`) writes: neither need exist yet. (--json runj/model.safetensors with
// --save runj was replaced by the weights, or replaced them.)
void check_not_output(const std::string& flag, const std::string& path, const std::string& folder,
                      const std::string& folder_flag, const std::vector<std::string>& files);
// Whether `path` (a file or a folder, existing or not) is `folder` or lies inside it, through any links.
bool is_within(const std::string& path, const std::string& folder);
// Refuses a `path` (a file or a folder, existing or not) that is `folder` or lies inside it, where
// `folder_is` says why that is wrong, e.g. "the folder --save replaces whole".
void check_not_within(const std::string& flag, const std::string& path, const std::string& folder,
                      const std::string& folder_is);
// The first item of a list flag that repeats an earlier one (`same` compares two), if any: a case
// given twice was run twice, a file given twice read twice.
template <class T, class Same>
std::optional<size_t> first_repeat(const std::vector<T>& items, Same same) {
  for (size_t i = 0; i < items.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (same(items[i], items[j])) return i;
  return std::nullopt;
}
template <class T>
std::optional<size_t> first_repeat(const std::vector<T>& items) {
  return first_repeat(items, [](const T& a, const T& b) { return a == b; });
}
// Refuses a `spruce train --save` folder (not empty) without a checkpoint.pt that is a regular file
// (a data error, as reading it says), or whose run has not finished: its checkpoint.pt without the
// model.safetensors written at the end (a run stopped part-way, whose checkpoint is of an earlier
// epoch).
void check_finished_run(const std::string& flag, const std::string& dir);
// What the commands read from their input folders.
inline const std::vector<std::string> kFashionMnistFiles{"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                                                         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"};
inline const std::vector<std::string> kTrainRunFiles{"checkpoint.pt", "model.safetensors", "masks.safetensors",
                                                     "recipe.yaml"};
// The ISA names oneDNN 2.6 reads from DNNL_MAX_CPU_ISA (any case); it ignores others in silence.
inline constexpr const char* kOnednnIsas[] = {"sse41",
                                              "avx",
                                              "avx2",
                                              "avx2_vnni",
                                              "avx512_mic",
                                              "avx512_mic_4ops",
                                              "avx512_core",
                                              "avx512_core_vnni",
                                              "avx512_core_bf16",
                                              "avx512_core_amx",
                                              "all"};
bool is_onednn_isa(const std::string& name);
std::string onednn_isa_list();  // "sse41, avx, ... or all"

// A sentence-transformers model folder, as `spruce distill --save` writes one.
inline const std::vector<std::string> kSentenceModelFiles{
    "config.json",          "model.safetensors",         "vocab.txt",
    "tokenizer.json",       "tokenizer_config.json",     "special_tokens_map.json",
    "modules.json",         "sentence_bert_config.json", "config_sentence_transformers.json",
    "1_Pooling/config.json"};

// Flushes standard output and throws spruce::Error (data) where it could not be written (a full
// disk, a closed descriptor). Called before an output file replaces another, so that a run that
// fails does not replace it, and by main() at the end.
void require_standard_output();

// --fallback auto|never|always into `value`, for the commands that convert sparse layers.
void add_fallback_option(CLI::App* cmd, std::string& value);

}  // namespace spruce::cli
