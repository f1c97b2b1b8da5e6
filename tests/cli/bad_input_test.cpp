// Hostile input to the real `spruce` binary, one class of failure per test. Every case must end
// with the expected exit status, exactly one line on stderr, no signal, no hang (a deadline kills
// it), and no change to any file in the test's folder.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "bad_input.hpp"
#include "spruce/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

using spruce::test::BadInput;
using spruce::test::joined;
using spruce::test::Outcome;
using spruce::test::run;

// A valid file whose one tensor has a name of `length` characters.
std::string file_with_name_of(size_t length) {
  spruce::SafetensorsFile f;
  std::vector<float> w(16, 0.5f);
  f.tensors.push_back(spruce::Tensor::from_f32(std::string(length, 'a'), {4, 4}, w.data()));
  return spruce::serialize_safetensors(f);
}

std::string nested(int depth) { return std::string(size_t(depth), '(') + "a" + std::string(size_t(depth), ')'); }

}  // namespace

// std::regex recursed on long names and deep patterns; RE2 neither recurses nor backtracks.
TEST_F(BadInput, NamePatternsNeverExhaustTheStack) {
  write("long.safetensors", file_with_name_of(60000));
  const Outcome ok = run({"prune", path("long.safetensors"), "-o", path("long-out.safetensors"), "--pattern", "4x1",
                          "--sparsity", "0.5", "--include", "(a|b)*a", "--exclude", "x.*y"});
  EXPECT_EQ(ok.status, 0) << ok.err;
  EXPECT_EQ(ok.signal, 0);
  fs::remove(path("long-out.safetensors"));
  const Outcome deep = run({"prune", ckpt_, "-o", path("deep-out.safetensors"), "--pattern", "4x1", "--sparsity", "0.5",
                            "--include", nested(1000) + "|fc"});
  EXPECT_EQ(deep.status, 0) << deep.err;
  fs::remove(path("deep-out.safetensors"));
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", "0.5", "--include", nested(30000)}), 2,
                 "longer than 4096");
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", "0.5", "--exclude", "(a"}), 2, "--exclude");
  write("deep.yaml", "target_sparsity: 0.5\npattern: 4x1\nop_names: [\"" + nested(30000) + "\"]\n");
  expect_refused(prune_to_old({"--recipe", path("deep.yaml")}), 2, "op_names");
}

TEST_F(BadInput, ThreadCountsHaveBounds) {
  for (const char* n : {"100000", "0", "-1", "", "2x"})
    expect_refused({"bench", "--shape", "8x64x64", "--threads", n}, 2, "--threads");
#ifdef SPRUCE_WITH_TORCH
  expect_refused({"eval", "--threads", "100000"}, 2, "--threads");
  expect_refused({"train", "--threads", "100000"}, 2, "--threads");
  expect_refused({"convert", "--checkpoint", dir_.string(), "--out", path("x.safetensors"), "--threads", "0"}, 2,
                 "--threads");
  expect_refused({"bench-model", "dlrm", "--threads", "513"}, 2, "--threads");
#endif
}

TEST_F(BadInput, InputsMustBeRegularFiles) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  fs::create_directory(path("folder"));
  expect_refused({"inspect", path("fifo")}, 1, "FIFO");
  expect_refused({"inspect", path("folder")}, 1, "folder");
  expect_refused({"prune", path("fifo"), "-o", path("x.safetensors"), "--pattern", "4x1", "--sparsity", "0.5"}, 1,
                 "FIFO");
  expect_refused(prune_to_old({"--recipe", path("fifo")}), 2, "FIFO");
#ifdef SPRUCE_WITH_TORCH
  expect_refused({"eval", "--converted", path("fifo")}, 1, "FIFO");
  expect_refused({"train", "--init", path("fifo"), "--epochs", "1", "--train-limit", "64", "--test-limit", "64"}, 1,
                 "FIFO");
#endif
}

TEST_F(BadInput, OutputsReplaceOnlyRegularFiles) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  fs::create_directory(path("folder"));
  for (const char* target : {"fifo", "folder"})
    expect_refused({"prune", ckpt_, "-o", path(target), "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                   "only replaces regular files");  // a bad -o is a usage error, found before the work
  // A device node, where the test may make one (root): never replaced by a regular file.
  if (mknod(path("null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0) {
    expect_refused({"prune", ckpt_, "-o", path("null"), "--pattern", "4x1", "--sparsity", "0.5"}, 2, "a device");
    EXPECT_TRUE(fs::is_character_file(path("null")));
  }
  expect_refused({"prune", ckpt_, "-o", "", "--pattern", "4x1", "--sparsity", "0.5"}, 2);
  // The harness's stdout is a pipe: /dev/stdout leads to it through a link that resolves to no path.
  expect_refused({"prune", ckpt_, "-o", "/dev/stdout", "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                 "it leads to a FIFO; spruce only replaces regular files");
  // Two links that lead to each other were called "a symlink to nothing".
  fs::create_symlink(path("loop-b"), path("loop-a"));
  fs::create_symlink(path("loop-a"), path("loop-b"));
  expect_refused({"prune", ckpt_, "-o", path("loop-a"), "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                 "it is a loop of symlinks");
}

// A safetensors file of `header` (JSON) and `data_bytes` bytes of data.
std::string raw_file(std::string header, size_t data_bytes) {
  header.append((8 - header.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  return out + header + std::string(data_bytes, '\0');
}

TEST_F(BadInput, SafetensorsIsStrict) {
  const std::string a = R"("a": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]})";
  write("dup.safetensors", raw_file("{" + a + ", " + a + "}", 64));
  write("dup-meta.safetensors", raw_file(R"({"__metadata__": {"k": "1", "k": "2"}, )" + a + "}", 64));
  write("trailing.safetensors", raw_file("{" + a + "}", 68));
  write("gap.safetensors", raw_file(R"({"a": {"dtype": "F32", "shape": [4, 4], "data_offsets": [4, 68]}})", 68));
  write("valid.safetensors", raw_file("{" + a + "}", 64));
  EXPECT_EQ(run({"inspect", path("valid.safetensors")}).status, 0);
  expect_refused({"inspect", path("dup.safetensors")}, 1, "the name 'a' is given twice");
  expect_refused({"inspect", path("dup-meta.safetensors")}, 1, "the __metadata__ key 'k' is given twice");
  expect_refused({"inspect", path("trailing.safetensors")}, 1, "4 bytes after the last tensor");
  expect_refused({"inspect", path("gap.safetensors")}, 1, "bytes 0 to 4 of the data section belong to no tensor");
  expect_refused({"prune", path("trailing.safetensors"), "-o", old_output_, "--pattern", "4x1", "--sparsity", "0.5"},
                 1);
  // Many tensors take linear time: 200,000 empty ones ran past a minute when the duplicate-name
  // check rescanned the header's object after each tensor.
  std::string many = "{";
  for (int i = 0; i < 200000; ++i)
    many += (i ? ", \"t" : "\"t") + std::to_string(i) + R"(": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]})";
  write("many.safetensors", raw_file(many + "}", 0));
  const Outcome listed = run({"inspect", path("many.safetensors")});
  EXPECT_FALSE(listed.hung) << "200,000 tensors";
  EXPECT_EQ(listed.status, 0) << listed.err.substr(0, 500);
  // And writing them: each name was searched for among those before it (37 s for this file).
  const std::vector<float> ones(16, 1.0f);
  write("many-and-a-weight.safetensors",
        raw_file(many + R"(, "w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}})", 0) +
            std::string(reinterpret_cast<const char*>(ones.data()), 64));
  const Outcome pruned =
      run({"prune", path("many-and-a-weight.safetensors"), "-o", old_output_, "--pattern", "4x1", "--sparsity", "0.5"});
  EXPECT_FALSE(pruned.hung) << "200,000 tensors written";
  EXPECT_EQ(pruned.status, 0) << pruned.err.substr(0, 500);
  write("many-dup.safetensors",
        raw_file(many + R"(, "t7": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})", 0));
  expect_refused({"inspect", path("many-dup.safetensors")}, 1, "the name 't7' is given twice");
#ifdef SPRUCE_WITH_TORCH
  // A converted-model file is a safetensors file: bytes appended to one are refused the same way.
  expect_refused({"eval", "--converted", path("trailing.safetensors")}, 1, "4 bytes after the last tensor");
#endif
}

TEST_F(BadInput, FlagsAreValidated) {
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", ""}), 2, "--sparsity");
  expect_refused(prune_to_old({"--pattern", "", "--sparsity", "0.5"}), 2, "--pattern");
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", "nan"}), 2, "--sparsity");
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", "1"}), 2, "--sparsity");
  // Numbers are plain decimals: strtod also took spaces, hex and "infinity".
  for (const char* odd : {" 0.5", "0.5 ", "0x1p-1", "infinity", "+-0.5", "0,5", "5e-1x"}) {
    expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", odd}), 2,
                   "--sparsity: '" + std::string(odd) + "' is not a number in [0, 1)");
    if (std::string(odd) != "0,5")  // bench reads a list: "0" and "5"
      expect_refused({"bench", "--shape", "8x64x64", "--sparsity", odd}, 2, "invalid --sparsity '" + std::string(odd));
  }
  for (const char* plain : {"+0.5", "5e-1", ".5"}) {
    const Outcome ok = run(prune_to_old({"--pattern", "4x1", "--sparsity", plain, "--dry-run"}));
    EXPECT_EQ(ok.status, 0) << plain << "\n" << ok.err;
  }
  expect_refused({"bench", "--shape", "8x64x64", "--pattern", ""}, 2, "pattern");
  expect_refused({"bench", "--shape", "8x64x64", "--pattern", "4x1,"}, 2, "pattern");
  expect_refused({"bench", "--shape", "8x64x64", "--sparsity", "0.5,"}, 2, "--sparsity");
  expect_refused({"make-checkpoint", "-o", path("x.safetensors"), "--seed", "-1"}, 2, "--seed");
  expect_refused({"make-checkpoint", "-o", path("x.safetensors"), "--seed", "99999999999999999999999"}, 2, "--seed");
  expect_refused({"no-such-command"}, 2, "unknown command 'no-such-command'");
  // An invalid SPRUCE_MAX_ISA is named as the culprit, and prune refuses it too (it ignored it).
  for (const auto& args : {prune_to_old({"--pattern", "4x1", "--sparsity", "0.5"}),
                           std::vector<std::string>{"bench", "--shape", "8x8x8"}}) {
    const Outcome isa = run(args, 60, "", {{"SPRUCE_MAX_ISA", "bogus"}});
    EXPECT_EQ(isa.status, 2) << joined(args) << "\n" << isa.err;
    EXPECT_EQ(isa.err,
              "spruce: error: SPRUCE_MAX_ISA: unknown ISA 'bogus': expected scalar, avx2, avx512, "
              "avx512_vnni or amx\n");
  }
  // oneDNN ignores a DNNL_MAX_CPU_ISA it does not know: a typo measured the uncapped host in silence.
  const Outcome dnnl = run({"bench", "--shape", "8x8x8"}, 60, "", {{"DNNL_MAX_CPU_ISA", "avx512_core_vnn"}});
  EXPECT_EQ(dnnl.status, 2) << dnnl.err;
  EXPECT_NE(dnnl.err.find("DNNL_MAX_CPU_ISA='avx512_core_vnn' is not an ISA oneDNN knows"), std::string::npos)
      << dnnl.err;
  // Case-blind, as oneDNN's DNNL_MAX_CPU_ISA is.
  const Outcome upper =
      run({"bench", "--shape", "8x64x64", "--threads", "1", "--reps", "3"}, 60, "", {{"SPRUCE_MAX_ISA", "Scalar"}});
  EXPECT_EQ(upper.status, 0) << upper.err;
  EXPECT_NE(upper.out.find("host: scalar (spruce scalar"), std::string::npos) << upper.out;
#ifdef SPRUCE_WITH_TORCH
  // A path that cannot be followed is named, in one line (it was LibTorch's "filesystem error").
  fs::create_directories(path("loops"));
  fs::create_symlink(path("loops/b"), path("loops/a"));
  fs::create_symlink(path("loops/a"), path("loops/b"));
  expect_refused({"train", "--data", path("loops/a")}, 2,
                 "cannot use '" + path("loops/a/train-images-idx3-ubyte.gz") + "': Too many levels of symbolic links");
  fs::remove_all(path("loops"));
#endif
  expect_refused({std::string(100000, 'x')}, 2, "unknown command");
  // A selection that prunes nothing is a mistake, not a copy of the input.
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", "0.5", "--include", "^nothing$"}), 2,
                 "not matched by --include");
  // Shapes too large for memory fail at once (one of 4e9 columns was killed by the OOM killer).
  expect_refused({"bench", "--shape", "1x1x4000000000"}, 2, "too large");
  expect_refused({"bench", "--shape", "9223372036854775807x1x1"}, 2, "too large");
  expect_refused({"bench", "--shape", "65536x65536x65536"}, 2, "M*K + K*N + M*N");
  // A pattern that does not fit the weight, or a sparsity that zeroes it, measured nothing (100% sparse).
  expect_refused({"bench", "--shape", "8x64x64", "--pattern", "64x64"}, 2,
                 "pattern 64x64 does not fit the 64x64 weight of --shape 8x64x64 (64x64 as a matrix: one block)");
  expect_refused({"bench", "--shape", "8x64x64", "--pattern", "1:128"}, 2, "fewer than a group of 128");
  expect_refused({"bench", "--shape", "1x1x1"}, 2, "does not fit the 1x1 weight");
  expect_refused({"bench", "--shape", "8x16x4", "--sparsity", "0.97"}, 2,
                 "--sparsity 0.97 zeroes all 16 blocks of the 4x16 weight of --shape 8x16x4 (pattern 4x1)");
  expect_refused({"bench", "--shape", "8x64x64", "--pattern", "4x1,2:4,4x1"}, 2, "--pattern 4x1 is given twice");
  expect_refused({"bench", "--shape", "8x64x64", "--sparsity", "0.9,0.90"}, 2, "--sparsity 0.90 is given twice");
  expect_refused({"bench", "--suite", ""}, 2, "--suite '': give one of bert-base");
  expect_refused({"bench", "--shape", "8x64x64", "--shape", "8x64x64"}, 2, "--shape 8x64x64 is given twice");
  expect_refused({"bench", "--shape", "8x64x64", "--pattern", "2:4", "--sparsity", "0.3"}, 2,
                 "N:M patterns such as 2:4 fix their own (50.0%)");
  expect_refused(prune_to_old({"--pattern", "2:4", "--scope", "global"}), 2, "--scope global changes nothing for 2:4");
  expect_refused({"prune", ckpt_, "-o", "-", "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                 "-o '-': this output is a file");
  expect_refused({"bench", "--shape", "8x64x64", "--json", "-"}, 2, "--json '-': this output is a file");
  // CLI11's wording, in this tool's.
  expect_refused({"inspect", ckpt_, "--pattern", "4x1", "--pattern", "2x1"}, 2, "--pattern is given 2 times");
  expect_refused({"--bogus"}, 2, "'--bogus' is not an option of spruce itself");
  // Unexpected arguments as typed (CLI11 listed them in reverse), and the option a typo meant.
  expect_refused(prune_to_old({"--pattern", "4x1", "--spars", "0.5"}), 2,
                 "unknown option '--spars'; did you mean --sparsity? (see `spruce prune --help`)");
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsty", "0.5"}), 2, "did you mean --sparsity?");
  expect_refused({"inspect", ckpt_, "one", "two"}, 2, "unexpected arguments: 'one' 'two'");
  // A file named with a leading '-' read as an option, and then "file is required".
  expect_refused({"inspect", "-dash.safetensors"}, 2,
                 "unknown option '-dash.safetensors'; a file whose name begins with '-' goes after `--`, or as "
                 "./-dash.safetensors (see `spruce inspect --help`)");
  expect_refused({"inspect", "-x"}, 2, "unknown option '-x' (see `spruce inspect --help`)");
  // A newline or escape in a name stays on the line, escaped, in a message that quotes it or not.
  expect_refused({"inspect", path("missing\nname\x1b.safetensors")}, 1, "missing\\nname\\x1b");
  write("bad\nname\x1b.safetensors", "x");
  expect_refused({"inspect", path("bad\nname\x1b.safetensors")}, 1, "bad\\nname\\x1b");
#ifdef SPRUCE_WITH_TORCH
  // Global scope caps each layer at 0.98: a higher target stopped there (0.99 trained to 98%).
  expect_refused({"train", "--pattern", "4x1", "--sparsity", "0.99"}, 2,
                 "max_sparsity_ratio_per_op 0.98 is below target_sparsity 0.99");
  expect_refused({"train", "--lr", "nan"}, 2, "--lr");
  expect_refused({"train", "--straight-through"}, 2, "--straight-through needs --pattern");
  expect_refused({"train", "--pattern", "4x1", "--sparsity", "0.9", "--straight-through-decay", "0.01"}, 2,
                 "acts only with --straight-through");
  expect_refused({"train", "--gradual-nm"}, 2, "--gradual-nm needs an N:M --pattern");
  expect_refused({"train", "--pattern", "4x1", "--sparsity", "0.9", "--gradual-nm"}, 2,
                 "--gradual-nm needs an N:M --pattern");
  expect_refused({"train", "--lr", "-1"}, 2, "--lr");
  // Flags that would change nothing are refused, saying why (they were silently ignored).
  write("r.yaml", "pattern: 4x1\ntarget_sparsity: 0.5\n");
  expect_refused({"train", "--recipe", path("r.yaml"), "--scope", "local"}, 2,
                 "--scope has no effect with --recipe; set pruning_scope in the recipe");
  expect_refused({"train", "--recipe", path("r.yaml"), "--criterion", "snip"}, 2, "set pruning_type in the recipe");
  expect_refused({"train", "--recipe", path("r.yaml"), "--group-lasso", "1000"}, 2, "--group-lasso has no effect");
  expect_refused({"train", "--criterion", "wanda"}, 2, "--criterion needs --pattern");
  expect_refused({"train", "--scope", "local"}, 2, "--scope needs --pattern");
  expect_refused({"train", "--group-lasso", "1000"}, 2, "--group-lasso needs --pattern");
  expect_refused({"train", "--distill-weight", "1"}, 2, "--distill-weight acts only with --teacher");
  expect_refused({"train", "--distill-temperature", "2"}, 2, "--distill-temperature acts only with --teacher");
  expect_refused({"eval", "--converted", ckpt_, ckpt_}, 2, "is given twice");
  // A temperature near 0 made every loss NaN; the message blamed the learning rate.
  expect_refused({"train", "--distill-temperature", "1e-45"}, 2, "--distill-temperature");
  expect_refused({"convert", "--checkpoint", path("x"), "--out", path("y"), "--variant", "fp32-sparse",
                  "--calibration-samples", "7"},
                 2, "--calibration-samples has no effect on --variant fp32-sparse");
  expect_refused({"convert", "--checkpoint", path("x"), "--out", path("y"), "--percentile", "99"}, 2,
                 "--percentile acts only with --calibration percentile");
  expect_refused({"eval", "--percentile", "99"}, 2, "--percentile acts only with --calibration percentile");
  // An empty folder became a path in / ('/checkpoint.pt': no such file), a data error (exit 1).
  expect_refused({"convert", "--checkpoint", "", "--out", path("y")}, 2, "--checkpoint: must not be empty");
  expect_refused({"train", "--data", ""}, 2, "--data: must not be empty");
  expect_refused({"eval", "--dense", ""}, 2, "--dense: must not be empty");
  expect_refused({"embed", "--model", ""}, 2, "--model: must not be empty");
  expect_refused({"bench-model", "minilm", "--sparse-model", ""}, 2, "--sparse-model: must not be empty");
  expect_refused({"train", "--seed", "-5"}, 2, "--seed");
  expect_refused({"train", "--epochs", "0"}, 2, "--epochs");
  expect_refused({"train", "--criterion", "xyz"}, 2, "unknown criterion 'xyz'");
  // One line, no header first, and no --save folder made for the run that never starts.
  expect_refused({"train", "--data", path("no-data"), "--save", path("new-save")}, 1, "Fashion-MNIST is missing");
  expect_refused({"bench-model", "dlrm", "--p99-ms", "-1"}, 2, "--p99-ms");
  expect_refused({"bench-model", "dlrm", "--server-probes", "0"}, 2, "--server-probes");
  expect_refused({"bench-model", "dlrm", "--min-duration", "0"}, 2, "--min-duration");
  expect_refused({"bench-model", "dlrm", "--batches", "0"}, 2, "--batches");
  // Checked before any training: refused at once, and nothing is written.
  expect_refused({"bench-model", "dlrm", "--work-dir", path("dlrm"), "--test-samples", "100", "--batches", "256"}, 2,
                 "cannot hold more clicks than the sample library");
  expect_refused({"bench-model", "dlrm", "--work-dir", path("dlrm"), "--test-samples", "100", "--batches", "64",
                  "--server-max-batch", "256"},
                 2, "--server-max-batch 256 is outside 1..--test-samples (100)");
  expect_refused({"eval", "--batch", "0"}, 2, "--batch");
#endif
}

// A pruning config that prunes nothing, by a typo or behind an earlier config, was ignored.
TEST_F(BadInput, EveryRecipeGroupMustPrune) {
  const std::string head = "pattern: 4x1\ntarget_sparsity: 0.5\npruning_configs:\n";
  write("typo.yaml", head + "  - op_names: [fc1]\n  - op_names: [fc_2_typo]\n    target_sparsity: 0.9\n");
  expect_refused(prune_to_old({"--recipe", path("typo.yaml")}), 2,
                 "pruning config 2 (op_names ['fc_2_typo']) selects none of the model's layers");
  write("shadow.yaml", head + "  - op_names: [fc]\n  - op_names: [fc2]\n    target_sparsity: 0.9\n");
  expect_refused(prune_to_old({"--recipe", path("shadow.yaml")}), 2,
                 "pruning config 2 (op_names ['fc2']) prunes no layer: pruning config 1 comes first");
  write("both.yaml", head + "  - op_names: [fc2]\n    target_sparsity: 0.9\n  - op_names: [fc]\n");
  const Outcome ok = run(prune_to_old({"--recipe", path("both.yaml")}));
  EXPECT_EQ(ok.status, 0) << ok.err;
}

#ifdef SPRUCE_WITH_TORCH
TEST_F(BadInput, InterruptedModelBenchLeavesNoHalfWrittenJson) {
  // Ctrl-C while LoadGen measures a (tiny) DLRM: no JSON, and no temporary file left behind.
  const Outcome o = run({"bench-model", "dlrm", "--work-dir", path("dlrm"), "--train-samples", "2048", "--test-samples",
                         "2048", "--finetune-epochs", "1", "--batches", "256", "--server-max-batch", "64",
                         "--min-duration", "60", "--json", path("bench.json")},
                        300, "Offline batch probe");
  EXPECT_FALSE(o.hung);
  EXPECT_TRUE(o.signal == SIGINT || o.status != 0) << o.err.substr(0, 2000);
  EXPECT_NE(o.err.find("Offline batch probe"), std::string::npos) << o.err.substr(0, 2000);
  EXPECT_FALSE(fs::exists(path("bench.json")));
  for (const auto& e : fs::recursive_directory_iterator(dir_)) EXPECT_NE(e.path().extension(), ".tmp") << e.path();
}

// The trained models are cached with the settings that made them: only a model whose settings
// changed is trained again.
TEST_F(BadInput, ModelBenchRetrainsOnlyWhatOtherSettingsMade) {
  auto bench = [&](const std::string& pattern) {
    return run({"bench-model", "dlrm", "--work-dir", path("dlrm"), "--train-samples", "2048", "--test-samples", "2048",
                "--finetune-epochs", "1", "--batches", "256", "--server-max-batch", "64", "--pattern", pattern},
               300, "Offline batch probe")
        .err;
  };
  auto count = [](const std::string& text, const std::string& part) {
    size_t n = 0;
    for (size_t at = text.find(part); at != std::string::npos; at = text.find(part, at + 1)) ++n;
    return n;
  };
  const std::string first = bench("4x16");
  EXPECT_EQ(count(first, "saved "), 3u) << first.substr(0, 3000);
  const std::string same = bench("4x16");
  EXPECT_EQ(count(same, "using the cached "), 3u) << same.substr(0, 3000);
  const std::string other = bench("4x1");
  EXPECT_EQ(count(other, "using the cached "), 2u) << other.substr(0, 3000);
  EXPECT_NE(other.find("sparse-finetuned.pt was trained with"), std::string::npos) << other.substr(0, 3000);
  EXPECT_NE(other.find("4x16 at 0.8500; training it again with"), std::string::npos) << other.substr(0, 3000);
}
#endif

#ifdef SPRUCE_WITH_TORCH
// spruce embed: each bad text names its line; no output file appears.
TEST_F(BadInput, EmbedNamesTheBadLine) {
  auto embed = [&](const std::string& input, std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"embed", "--input", path(input), "--output", path("out.jsonl")};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  write("blank.txt", "one\n  \nthree\n");
  expect_refused(embed("blank.txt"), 2, "line 2: empty");
  write("latin1.txt", "ok\ncaf\xe9\n");
  expect_refused(embed("latin1.txt"), 2, "line 2: invalid UTF-8 at byte 3");
  write("nul.txt", std::string("ok\n\xc0\x80\n", 6));  // an overlong NUL
  expect_refused(embed("nul.txt"), 2, "line 2: invalid UTF-8");
  write("bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": 3}\n");
  expect_refused(embed("bad.jsonl"), 2, "line 2: holds no text");
  write("broken.jsonl", "{\"text\": \"fine\"\n");
  expect_refused(embed("broken.jsonl"), 2, "line 1: not JSON");
  write("surrogate.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"\\ud800\"}\n");
  expect_refused(embed("surrogate.jsonl"), 2, "line 2: holds a \\u escape of half a UTF-16 surrogate pair");
  write("overflow.jsonl", "{\"text\": \"fine\"}\n{\"text\": 1e999}\n");
  expect_refused(embed("overflow.jsonl"), 2, "line 2: holds a number too large for a double");
  write("twice.jsonl", "{\"text\": \"fine\", \"meta\": {\"text\": 1}}\n{\"text\": \"a\", \"text\": \"b\"}\n");
  expect_refused(embed("twice.jsonl"), 2, "line 2: has the key \"text\" more than once");
  write("empty.txt", "");
  expect_refused(embed("empty.txt"), 2, "holds no text");
  write("fine.txt", "A sentence.\n");
  expect_refused(embed("fine.txt", {"--model", path("no-model")}), 2, "no config.json");
  fs::create_directories(path("no-vocab"));
  write("no-vocab/config.json", "{}");
  write("no-vocab/model.safetensors", "");
  expect_refused(embed("fine.txt", {"--model", path("no-vocab")}), 2, "no vocab.txt");
  expect_refused({"embed", "--input", path("fine.txt"), "--format", "npy"}, 2, "--output");
  expect_refused(embed("fine.txt", {"--format", "csv"}), 2, "use jsonl, npy or auto");
  // Room for [CLS] and [SEP] alone embedded every text alike.
  expect_refused(embed("fine.txt", {"--max-length", "2"}), 2, "--max-length: '2' is not an integer in [3, 512]");
}

// spruce distill and bench-model minilm refuse bad settings before any model loads or trains.
TEST_F(BadInput, TransformerCommandsRefuseBadSettings) {
  expect_refused({"distill", "--sparsity", "0.8"}, 2, "--sparsity needs --pattern");
  expect_refused({"distill", "--criterion", "xyz"}, 2, "xyz");
  expect_refused({"distill", "--scope", "layer"}, 2, "layer");
  expect_refused({"distill", "--max-layer-sparsity", "0.9"}, 2, "--max-layer-sparsity needs --pattern");
  expect_refused({"distill", "--straight-through"}, 2, "--straight-through needs --pattern");
  expect_refused({"distill", "--pattern", "2:4", "--straight-through-decay", "0.01"}, 2,
                 "acts only with --straight-through");
  expect_refused({"distill", "--pattern", "2:4", "--straight-through", "--straight-through-decay", "1"}, 2,
                 "--straight-through-decay");
  expect_refused({"distill", "--pattern", "2:4", "--straight-through", "--criterion", "sparsegpt"}, 2, "sparsegpt");
  expect_refused({"distill", "--pattern", "2:4", "--sparsity", "0.7"}, 2, "2:4");
  expect_refused({"distill", "--gradual-nm"}, 2, "--gradual-nm needs an N:M --pattern");
  expect_refused({"distill", "--neighbour-temperature", "0.1"}, 2, "acts only with --neighbour-weight");
  // 1e-45 made the loss NaN, and the NaN model was saved with exit 0.
  expect_refused({"distill", "--neighbour-weight", "1", "--neighbour-temperature", "1e-45"}, 2,
                 "--neighbour-temperature: '1e-45' is not a number in [0.001, 10]");
  expect_refused({"distill", "--checkpoint-every", "10"}, 2, "acts only with --checkpoint DIR");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0"}, 2, "--sparsity 0 prunes nothing");
  // Checked against the encoder's layers before anything loads, with no flag that distill lacks.
  const Outcome misfit = run({"distill", "--pattern", "384x384", "--sparsity", "0.5"});
  EXPECT_EQ(misfit.status, 2) << misfit.err;
  EXPECT_EQ(misfit.err,
            "spruce: error: pattern 384x384 does not fit the encoder's 384->384 Linear layers (384x384 as a matrix: "
            "one block), so pruning could only zero all of it or none of it; use a smaller pattern\n");
  expect_refused({"distill", "--stop-after", "0"}, 2, "--stop-after");
  expect_refused({"eval", "--calibration", "percentile", "--percentile", "50"}, 2, "(50, 100]");
  expect_refused({"convert", "--checkpoint", path("x"), "--out", path("y"), "--percentile", "50"}, 2, "(50, 100]");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.8", "--gradual-nm"}, 2, "only on N:M");
  expect_refused({"distill", "--pattern", "2:4", "--gradual-nm", "--criterion", "sparsegpt"}, 2, "sparsegpt");
  expect_refused({"distill", "--permute-channels"}, 2, "--permute-channels needs an N:M --pattern");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.8", "--permute-channels"}, 2,
                 "--permute-channels acts on N:M patterns such as 2:4, not 4x1");
  expect_refused({"distill", "--pattern", "3x3x3", "--sparsity", "0.5"}, 2, "3x3x3");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.5", "--fortunes", path("none")}, 2, "fortunes");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.5", "--criterion", "luck"}, 2, "luck");
  expect_refused({"distill", "--steps", "0"}, 2, "--steps");
  expect_refused({"distill", "--pattern", "2:4", "--steps", "1000000", "--batch", "1024"}, 2, "100 million");
  expect_refused({"distill", "--json", path("no/such/folder/d.json")}, 2, "folder does not exist");
  expect_refused({"distill", "--wordnet", path("none")}, 2, "install Debian's `wordnet-base`");
  expect_refused({"distill", "--wordnet", path("x"), "--wordnet-share", "1.5"}, 2, "--wordnet-share");
  expect_refused({"distill", "--wordnet-share", "0.3"}, 2, "--wordnet-share requires --wordnet");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.8", "--max-layer-sparsity", "0.9"}, 2,
                 "--max-layer-sparsity needs --scope global");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.8", "--scope", "everywhere"}, 2, "--scope");
  expect_refused({"distill", "--pattern", "2:4", "--scope", "global"}, 2, "--scope global changes nothing for 2:4");
  expect_refused(
      {"distill", "--pattern", "4x1", "--sparsity", "0.8", "--scope", "global", "--max-layer-sparsity", "0.5"}, 2,
      "below the target sparsity");
  expect_refused({"distill", "--pattern", "4x1", "--sparsity", "0.8", "--scope", "global", "--criterion", "sparsegpt"},
                 2, "use --scope local");
  expect_refused({"distill", "--pattern", "2:4", "--resume"}, 2, "--resume needs --checkpoint DIR");
  expect_refused({"distill", "--pattern", "2:4", "--stop-after", "5"}, 2, "--stop-after needs --checkpoint DIR");
  expect_refused({"distill", "--pattern", "2:4", "--checkpoint", path("no-run"), "--resume"}, 2,
                 "start without --resume");
  // Without --resume, a saved run would be replaced by a fresh start.
  fs::create_directories(path("saved"));
  write("saved/checkpoint.pt", "a run saved at step 2 of 4");
  expect_refused({"distill", "--pattern", "2:4", "--checkpoint", path("saved")}, 2,
                 "already holds a run ('" + path("saved/checkpoint.pt") + "'); continue it with --resume");
  // --save replaces its folder whole: the user's files, and anything the run reads or keeps there,
  // went with it (a folder of notes, the teacher, the fortunes, the resumable run, the JSON).
  fs::create_directories(path("notes/sub"));
  write("notes/notes.txt", "precious");
  write("notes/sub/a", "x");
  expect_refused({"distill", "--pattern", "2:4", "--save", path("notes")}, 2,
                 "--save '" + path("notes") + "' holds 'notes.txt' and 2 more, not a saved model's");
  EXPECT_TRUE(fs::exists(path("notes/notes.txt")));
  expect_refused({"distill", "--pattern", "2:4", "--save", path("kept"), "--checkpoint", path("kept/run")}, 2,
                 "--checkpoint '" + path("kept/run") + "' is inside the folder --save replaces whole");
  fs::create_directories(path("kept"));
  expect_refused({"distill", "--pattern", "2:4", "--save", path("kept"), "--json", path("kept/d.json")}, 2,
                 "--json '" + path("kept/d.json") + "' is inside the folder --save replaces whole");
  expect_refused({"distill", "--pattern", "2:4", "--save", "."}, 2, "--save '.' holds the current folder");
  expect_refused({"distill", "--pattern", "2:4", "--save", path("saved")}, 2, "holds 'checkpoint.pt'");
  // --json may not be another output of the same command, existing or not.
  fs::create_directories(path("fresh"));
  expect_refused({"distill", "--pattern", "2:4", "--checkpoint", path("fresh"), "--json", path("fresh/checkpoint.pt")},
                 2, "is checkpoint.pt, one of the files --checkpoint writes");
  expect_refused({"train", "--save", path("fresh-run"), "--json", path("fresh-run/model.safetensors")}, 2,
                 "--json '" + path("fresh-run/model.safetensors") +
                     "' is model.safetensors, one of the files --save "
                     "writes; name another file");
  expect_refused({"bench-model", "dlrm", "--work-dir", path("bm"), "--json", path("bm/sparse-finetuned.pt")}, 2,
                 "one of the files --work-dir writes");
  expect_refused({"bench-model", "dlrm", "--work-dir", path("bm"), "--json", path("bm/loadgen/x.json")}, 2,
                 "is inside LoadGen's log folder (--log-dir)");
  expect_refused({"bench-model", "minilm"}, 2, "--sparse-model");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("missing")}, 2, "no config.json");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--pattern", "4x1"}, 2,
                 "--pattern is for dlrm");
  expect_refused({"bench-model", "dlrm", "--sparse-model", path("x")}, 2, "--sparse-model is for minilm");
  expect_refused({"bench-model", "dlrm", "--bf16-attention"}, 2, "--bf16-attention is for minilm");
  expect_refused({"bench-model", "dlrm", "--attention", "int8"}, 2, "--attention is for minilm");
  expect_refused({"bench-model", "dlrm", "--tokens-per-pass", "512"}, 2, "--tokens-per-pass is for minilm");
  expect_refused({"bench-model", "dlrm", "--one-pass-at-a-time"}, 2, "--one-pass-at-a-time is for minilm");
  // 2:4 fixes its sparsity at 50%: an explicit --sparsity 0.85 ran 2:4 labelled 85%.
  expect_refused({"bench-model", "dlrm", "--pattern", "2:4", "--sparsity", "0.85"}, 2,
                 "fixes the sparsity at 50.0%; drop --sparsity");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--seed", "5"}, 2, "--seed is for dlrm");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--attention", "fp16"}, 2,
                 "--attention: fp16 not in {f32,bf16,int8}");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--attention", "int8", "--bf16-attention"}, 2,
                 "disagree: give one of them");
  expect_refused({"bench-model", "gpt"}, 2, "valid are dlrm and minilm");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--fallback", "sometimes"}, 2,
                 "--fallback: sometimes not in {auto,never,always}");
  expect_refused({"convert", "--checkpoint", path("x"), "--out", path("m.safetensors"), "--fallback", "no"}, 2,
                 "--fallback: no not in {auto,never,always}");
  expect_refused({"eval", "--fallback", "maybe"}, 2, "--fallback: maybe not in {auto,never,always}");
}

// An overlong text is truncated, as sentence-transformers does, and counted; it is no error.
TEST_F(BadInput, EmbedTruncatesAndCountsOverlongTexts) {
  std::string longer;
  for (int i = 0; i < 200; ++i) longer += "word ";
  write("texts.txt", "short text\n" + longer + "\n");
  const Outcome o = run({"embed", "--input", path("texts.txt"), "--output", path("out.npy"), "--format", "npy"});
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_NE(o.err.find("1 of 2 texts were longer than 128 tokens"), std::string::npos) << o.err;
  EXPECT_EQ(fs::file_size(path("out.npy")), 128u + 2 * 384 * sizeof(float));  // header, then [2][384] f32
}

// embed runs with short OpenMP and OpenBLAS spins (main.cpp re-executes it with GOMP_SPINCOUNT
// and OPENBLAS_THREAD_TIMEOUT set), unless the user chose how they wait.
TEST_F(BadInput, EmbedShortensIdleSpinningUnlessTheUserChose) {
  write("texts.txt", "one text\n");
  const std::vector<std::string> args{"embed", "--input", path("texts.txt"), "--output", path("out.jsonl")};
  const Outcome chosen = run(
      args, 60, "",
      {{"OMP_WAIT_POLICY", std::nullopt}, {"GOMP_SPINCOUNT", std::nullopt}, {"OPENBLAS_THREAD_TIMEOUT", std::nullopt}});
  EXPECT_EQ(chosen.status, 0) << chosen.err;
  EXPECT_NE(chosen.err.find("GOMP_SPINCOUNT=10000, OPENBLAS_THREAD_TIMEOUT=4"), std::string::npos) << chosen.err;
  const Outcome own =
      run(args, 60, "",
          {{"OMP_WAIT_POLICY", "passive"}, {"GOMP_SPINCOUNT", std::nullopt}, {"OPENBLAS_THREAD_TIMEOUT", "12"}});
  EXPECT_EQ(own.status, 0) << own.err;
  EXPECT_NE(own.err.find("OMP_WAIT_POLICY=passive, OPENBLAS_THREAD_TIMEOUT=12"), std::string::npos) << own.err;
}
#endif

// A path that is not UTF-8 (a Latin-1 file name) is written to JSON with U+FFFD for its bad
// bytes; nlohmann's default threw "invalid UTF-8 byte" after the work.
TEST_F(BadInput, JsonOutputTakesPathsThatAreNotUtf8) {
  const std::string latin1 = path("caf\xe9.safetensors");
  fs::copy_file(ckpt_, latin1);
  const Outcome o = run({"inspect", latin1, "--json"});
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.err, "");
  EXPECT_NE(o.out.find("caf\xef\xbf\xbd.safetensors"), std::string::npos) << o.out.substr(0, 500);
}

TEST_F(BadInput, RecipesNameTheirFile) {
  write("list-key.yaml", "[a, b]: 0.5\npattern: 4x1\n");
  expect_refused(prune_to_old({"--recipe", path("list-key.yaml")}), 2, "list-key.yaml");
  write("huge.yaml", "target_sparsity: 0.5\npattern: " + std::string(8 << 20, 'x') + "\n");
  expect_refused(prune_to_old({"--recipe", path("huge.yaml")}), 2, "pattern");
  write("huge.yaml", "target_sparsity: 0.5\npattern: " + std::string(20 << 20, 'x') + "\n");  // not parsed
  expect_refused(prune_to_old({"--recipe", path("huge.yaml")}), 2, "is 20 MiB, and a recipe is a YAML file of at most");
  write("huge-key.yaml", std::string(1 << 20, 'k') + ": 1\n");
  expect_refused(prune_to_old({"--recipe", path("huge-key.yaml")}), 2, "huge-key.yaml");
  write("seq.yaml", "- 1\n- 2\n");
  expect_refused(prune_to_old({"--recipe", path("seq.yaml")}), 2, "seq.yaml");
  write("local.yaml", "pattern: 4x1\ntarget_sparsity: 0.8\npruning_scope: local\nmax_sparsity_ratio_per_op: 0.5\n");
  expect_refused(prune_to_old({"--recipe", path("local.yaml"), "--scope", "global"}), 2,
                 "local.yaml: max_sparsity_ratio_per_op 0.5 is below target_sparsity 0.8");
}

// A block as large as a tensor could only zero all of it (local scope: conv1 went to 100% at a 50%
// target) or none of it (global scope: every tensor stayed at 0%), both with exit 0.
TEST_F(BadInput, PatternsMustFitTheirTensors) {
  expect_refused(prune_to_old({"--pattern", "32x32", "--sparsity", "0.5", "--scope", "local"}), 2,
                 "pattern 32x32 does not fit 'conv1.weight' (32x9 as a matrix: one block)");
  write("big.yaml", "pattern: 1048576x1048576\ntarget_sparsity: 0.5\npruning_scope: global\n");
  expect_refused(prune_to_old({"--recipe", path("big.yaml")}), 2, "pattern 1048576x1048576 does not fit");
  // An N:M group wider than a row: 16:32 on 9 input channels kept every weight, with exit 0.
  expect_refused(prune_to_old({"--pattern", "16:32"}), 2,
                 "pattern 16:32 does not fit 'conv1.weight' (32x9 as a matrix: rows of 9, fewer than a group of 32)");
  // Blocks that span a whole dimension but leave several blocks are fine, and so is a tensor left out.
  for (const std::vector<std::string>& fits : {std::vector<std::string>{"--pattern", "channelx1", "--sparsity", "0.5"},
                                               {"--pattern", "1xchannel", "--sparsity", "0.5"},
                                               {"--pattern", "32x32", "--sparsity", "0.5", "--exclude", "conv1"}}) {
    std::vector<std::string> args{"prune", ckpt_, "-o", path("fits.safetensors")};
    args.insert(args.end(), fits.begin(), fits.end());
    const Outcome o = run(args);
    EXPECT_EQ(o.status, 0) << joined(args) << "\n" << o.err;
  }
}

// A legal name at NAME_MAX still gets its temporary file, which is short.
TEST_F(BadInput, LongOutputNamesAreWritten) {
  const std::string name = std::string(255 - std::string(".safetensors").size(), 'n') + ".safetensors";
  const Outcome o = run({"prune", ckpt_, "-o", path(name), "--pattern", "4x1", "--sparsity", "0.5"});
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_TRUE(fs::is_regular_file(path(name)));
  // One byte more is refused before the work (the rename used to fail after it).
  expect_refused({"prune", ckpt_, "-o", path("n" + name), "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                 "its file name is 256 bytes, and this file system allows 255; name a shorter file");
#ifdef SPRUCE_WITH_TORCH
  expect_refused({"train", "--epochs", "1", "--train-limit", "64", "--test-limit", "64", "--json",
                  path(std::string(300, 'j') + ".json")},
                 2, "--json: cannot write");
#endif
}

#ifdef SPRUCE_WITH_TORCH
// Outputs are checked before the work that ends in them: a typo in --json or --output used to
// cost a whole distillation or benchmark, refused only when the result was written.
TEST_F(BadInput, OutputsAreCheckedBeforeTheWork) {
  fs::create_directory(path("folder"));
  write("file", "not a folder");
  write("fine.txt", "A sentence.\n");
  const std::string missing = path("no/such/folder/out.json");
  expect_refused({"embed", "--input", path("fine.txt"), "--output", missing}, 2, "--output");
  expect_refused({"embed", "--input", path("fine.txt"), "--output", path("folder")}, 2, "only replaces regular files");
  // The output is the input, by name or through a link (prune -o IN, by contrast, prunes in place).
  expect_refused({"embed", "--input", path("fine.txt"), "--output", path("fine.txt")}, 2, "--input, the texts");
  fs::create_symlink(path("fine.txt"), path("link.txt"));
  expect_refused({"embed", "--input", path("fine.txt"), "--output", path("link.txt")}, 2,
                 "which the output would replace");
  expect_refused({"distill", "--json", path("folder")}, 2, "--json");
  expect_refused({"distill", "--checkpoint", path("file")}, 2, "is a file, not a folder");
  expect_refused({"distill", "--checkpoint", path("file"), "--resume"}, 2, "is a file, not a folder");
  expect_refused({"distill", "--save", path("file")}, 2, "is a file, not a folder");
  expect_refused({"distill", "--checkpoint", ""}, 2, "--checkpoint");
  expect_refused({"distill", "--model", dir_.string(), "--save", (dir_ / ".").string()}, 2, "the teacher's folder");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--json", missing}, 2, "--json");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("x"), "--json", path("folder")}, 2, "--json");
  expect_refused({"bench-model", "dlrm", "--json", missing}, 2, "--json");
  expect_refused({"bench-model", "dlrm", "--work-dir", ""}, 2, "--work-dir");
  expect_refused({"bench-model", "dlrm", "--work-dir", path("file")}, 2, "is a file, not a folder");
  expect_refused({"bench-model", "dlrm", "--work-dir", path("folder"), "--log-dir", path("file")}, 2, "--log-dir");
  expect_refused({"train", "--epochs", "1", "--json", missing}, 2, "--json");
  expect_refused({"train", "--epochs", "1", "--save", path("file")}, 2, "is a file, not a folder");
  expect_refused({"train", "--nproc", "2", "--json", path("folder")}, 2, "--json");  // before the ranks start
  expect_refused({"eval", "--json", path("folder")}, 2, "--json");
  expect_refused({"convert", "--checkpoint", dir_.string(), "--out", missing}, 2, "--out");
  write("checkpoint.pt", "a training checkpoint");
  expect_refused({"convert", "--checkpoint", dir_.string(), "--out", path("checkpoint.pt")}, 2, "training run");
  expect_refused({"bench-model", "minilm", "--variants", "fp32-dense,fp32-dense"}, 2, "given twice");
}

// A model written under another format's name (x.npy, recipe.yaml), or a report over a model's
// name, is refused before the work; names spruce does not know are the user's to choose.
TEST_F(BadInput, OutputsAreNamedForWhatTheyHold) {
  expect_refused(
      {"prune", ckpt_, "-o", path("pruned.npy"), "--pattern", "4x1", "--sparsity", "0.5"}, 2,
      "-o '" + path("pruned.npy") + "' is named as NPY, and this writes safetensors; name a .safetensors file");
  expect_refused({"prune", ckpt_, "-o", path("recipe.YAML"), "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                 "is named as YAML");
  expect_refused({"convert", "--checkpoint", dir_.string(), "--out", path("model.pt")}, 2,
                 "is named as a LibTorch archive, and this writes safetensors");
  expect_refused({"bench", "--json", path("model.safetensors")}, 2,
                 "is named as safetensors, and this writes JSON; name a .json file");
  expect_refused({"eval", "--json", path("out.npy")}, 2, "is named as NPY, and this writes JSON");
  expect_refused({"distill", "--json", path("student.safetensors")}, 2, "is named as safetensors");
  expect_refused({"train", "--epochs", "1", "--json", path("x.onnx")}, 2, "is named as ONNX");
  EXPECT_EQ(run({"prune", ckpt_, "-o", path("pruned.weights"), "--pattern", "4x1", "--sparsity", "0.5"}).status, 0);
  EXPECT_EQ(run({"prune", ckpt_, "-o", path("pruned"), "--pattern", "4x1", "--sparsity", "0.5"}).status, 0);
}

// eval and convert refuse a run's folder without a checkpoint as reading it would, before LibTorch.
TEST_F(BadInput, RunFoldersWithoutACheckpointAreRefused) {
  fs::create_directories(path("empty-run"));
  const std::string want = "cannot read '" + path("empty-run/checkpoint.pt") + "': no such file (check the path)";
  expect_refused({"convert", "--checkpoint", path("empty-run"), "--out", path("m.safetensors")}, 1, want);
  expect_refused({"eval", "--sparse", path("empty-run")}, 1, want);
  expect_refused({"eval", "--dense", path("empty-run")}, 1, want);
}

// No output may replace a file the command reads: a model folder's files, a training run's, an
// --init or --converted file. A new file inside those folders is fine.
TEST_F(BadInput, OutputsNeverReplaceTheirInputs) {
  fs::create_directories(path("run"));
  for (const char* file :
       {"checkpoint.pt", "recipe.yaml", "model.safetensors", "masks.safetensors", "vocab.txt", "config.json"})
    write(std::string("run/") + file, "what the command reads");
  write("texts.txt", "a text\n");
  const std::string run = path("run");
  expect_refused({"convert", "--checkpoint", run, "--out", path("run/recipe.yaml")}, 2, "a file of the training run");
  expect_refused({"convert", "--checkpoint", run, "--out", path("run/model.safetensors")}, 2, "training run");
  fs::create_symlink(path("run/masks.safetensors"), path("masks-link"));
  expect_refused({"convert", "--checkpoint", run, "--out", path("masks-link")}, 2, "training run");
  expect_refused({"embed", "--model", run, "--input", path("texts.txt"), "--output", path("run/vocab.txt")}, 2,
                 "the model (--model)");
  expect_refused({"distill", "--model", run, "--json", path("run/config.json")}, 2, "the teacher model");
  expect_refused({"eval", "--converted", ckpt_, "--json", ckpt_}, 2, "a --converted model");
  expect_refused({"eval", "--sparse", run, "--json", path("run/checkpoint.pt")}, 2, "the pruned run (--sparse)");
  expect_refused({"train", "--epochs", "1", "--init", ckpt_, "--json", ckpt_}, 2, "--init, the starting weights");
  expect_refused({"train", "--epochs", "1", "--teacher", run, "--save", run}, 2, "the teacher's run");
  expect_refused({"train", "--epochs", "1", "--teacher", run, "--json", path("run/checkpoint.pt")}, 2,
                 "the teacher's run");
  expect_refused({"bench", "--shape", "8x8x8", "--json", path("run")}, 2, "--json");
}

// A copy of a safetensors file with one value of its first F32 weight replaced by NaN.
void poison_first_weight(const std::string& from, const std::string& to) {
  std::ifstream in(from, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  spruce::SafetensorsFile f = spruce::parse_safetensors(bytes.str(), from);
  for (auto& t : f.tensors)
    if (t.shape.size() == 2 && t.dtype == spruce::DType::F32) {
      std::vector<float> v = t.to_f32();
      v[v.size() / 2] = std::numeric_limits<float>::quiet_NaN();
      t = spruce::Tensor::from_f32(t.name, t.shape, v.data());
      break;
    }
  std::ofstream(to, std::ios::binary) << spruce::serialize_safetensors(f);
}

TEST_F(BadInput, WeightsMustBeFinite) {
  poison_first_weight(ckpt_, path("nan.safetensors"));
  expect_refused({"prune", path("nan.safetensors"), "-o", old_output_, "--pattern", "4x1", "--sparsity", "0.5"}, 1,
                 "holds NaN");
  // inspect shows the table (the NaN's tensor among the rest), then fails on it: a checkpoint that
  // passed inspect used to be NaN everywhere it ran.
  expect_refused({"inspect", path("nan.safetensors")}, 1, "1 tensor(s) hold NaN or Inf: ");
  const Outcome shown = run({"inspect", "--json", path("nan.safetensors")});
  EXPECT_NE(shown.out.find("\"non_finite\": 1"), std::string::npos) << shown.out;
  EXPECT_EQ(run({"inspect", ckpt_}).status, 0);
#ifdef SPRUCE_WITH_TORCH
  // One step of 64 examples: the run ends before snip_momentum's first update, which must still be taken.
  const auto tiny = [](std::vector<std::string> args, const char* epochs = "1") {
    for (const char* a :
         {"--epochs", epochs, "--train-limit", "64", "--test-limit", "64", "--batch-size", "64", "--no-progress"})
      args.push_back(a);
    return args;
  };
  const Outcome trained = run(tiny({"train", "--pattern", "4x1", "--sparsity", "0.5", "--save", path("run")}), 120);
  ASSERT_EQ(trained.status, 0) << trained.err;
  EXPECT_NE(trained.out.find("| 50.00%"), std::string::npos) << "a one-step run pruned nothing:\n" << trained.out;
  // Resuming to as many epochs as it has finished trains nothing: refused, not reported as a run.
  expect_refused(tiny({"train", "--resume", path("run")}), 2, "has finished 1 epoch already; give --epochs above 1");
  expect_refused(tiny({"train", "--resume", path("run"), "--save", path("run"), "--stop-after", "1"}, "3"), 2,
                 "--stop-after 1: " + path("run") + "/checkpoint.pt has finished 1 epoch already; give a later epoch");
  // The run's own pruning flags may be repeated on --resume (the refusal that follows is the epochs');
  // others are refused, naming what the run does.
  expect_refused(tiny({"train", "--resume", path("run"), "--pattern", "4x1", "--sparsity", "0.5"}), 2,
                 "has finished 1 epoch already");
  expect_refused(tiny({"train", "--resume", path("run"), "--pattern", "4x1", "--sparsity", "0.6"}), 2,
                 "which prunes 4x1 to 50.00%; drop --pattern and --sparsity");
  expect_refused(tiny({"train", "--resume", path("run"), "--sparsity", "0.5"}), 2,
                 "(--sparsity alone names no pattern)");
  expect_refused(
      tiny({"train", "--resume", path("run"), "--pattern", "4x1", "--sparsity", "0.5", "--straight-through"}), 2,
      "--straight-through differs from the run --resume continues");
  fs::copy(path("run"), path("run-ste"));
  std::string scope;
  {
    std::ifstream in(path("run/recipe.yaml"));
    std::stringstream yaml;
    yaml << in.rdbuf();
    std::string text = yaml.str();
    text.replace(text.find("straight_through: false"), 23, "straight_through: true");
    write("run-ste/recipe.yaml", text);
    scope = text.find("pruning_scope: local") != std::string::npos ? "local" : "global";
  }
  expect_refused(tiny({"train", "--resume", path("run-ste"), "--pattern", "4x1", "--sparsity", "0.5",
                       "--straight-through", "--scope", scope}),
                 2, "has finished 1 epoch already");

  poison_first_weight(path("run/model.safetensors"), path("nan-mlp.safetensors"));
  expect_refused(tiny({"train", "--init", path("nan-mlp.safetensors")}), 1, "holds NaN");
  // With --nproc, by the launcher before any rank starts: one line, not a rank's and the launcher's.
  expect_refused(tiny({"train", "--init", path("nan-mlp.safetensors"), "--nproc", "2"}), 1, "holds NaN");

  // Op types that select no layer are named as the culprit (the message blamed op_names).
  write("conv-only.yaml", "pattern: 4x1\ntarget_sparsity: 0.5\npruning_op_types: [Conv]\n");
  expect_refused(tiny({"train", "--recipe", path("conv-only.yaml")}), 2,
                 "pruning_op_types select none of the layers its op_names select (");
  // Every file the run writes is checked before it trains: a folder in the way of one is refused.
  fs::create_directories(path("blocked/recipe.yaml/inside"));
  expect_refused(tiny({"train", "--save", path("blocked")}), 2, "recipe.yaml");

  // A pruned run's checkpoint without its recipe.yaml would have resumed dense.
  fs::create_directories(path("bare"));
  fs::copy_file(path("run/checkpoint.pt"), path("bare/checkpoint.pt"));
  expect_refused(tiny({"train", "--resume", path("bare")}, "2"), 1, "recipe");
#endif
}

// A fortunes folder of `count` texts: 300 hold out 37 (the split hashes each text), 20 hold out 1.
void write_fortunes(const fs::path& dir, int count) {
  fs::create_directories(dir);
  std::ofstream out(dir / "tiny");
  for (int i = 0; i < count; ++i) out << (i ? "%\n" : "") << "fortune number " << i << " says little\n";
}

TEST_F(BadInput, DistillRefusesThinCorporaBeforeLoading) {
  write_fortunes(dir_ / "few", 20);
  expect_refused({"distill", "--fortunes", path("few")}, 2, "the fidelity checks need 11 or more");
  write_fortunes(dir_ / "fortunes", 300);
  // A FIFO among WordNet's files used to block the read forever; empty files were taken silently.
  fs::create_directory(path("wordnet"));
  for (const char* part : {"data.noun", "data.verb", "data.adj", "data.adv"}) write(std::string("wordnet/") + part, "");
  expect_refused({"distill", "--fortunes", path("fortunes"), "--wordnet", path("wordnet")}, 2,
                 "no WordNet definitions");
  fs::remove(path("wordnet/data.noun"));
  ASSERT_EQ(mkfifo(path("wordnet/data.noun").c_str(), 0644), 0);
  expect_refused({"distill", "--fortunes", path("fortunes"), "--wordnet", path("wordnet")}, 1, "FIFO");
}

// A sentence-transformers folder of a 4-wide BERT of one layer: it loads, but is no copy of
// all-MiniLM-L6-v2.
void write_tiny_bert(const fs::path& dir) {
  fs::create_directories(dir);
  std::ofstream(dir / "vocab.txt") << "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n";
  std::ofstream(dir / "config.json") << R"({"model_type": "bert", "hidden_size": 4, "num_hidden_layers": 1,
      "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 512, "vocab_size": 6})";
  const std::string layer = "encoder.layer.0.";
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes{
      {"embeddings.word_embeddings.weight", {6, 4}},
      {"embeddings.position_embeddings.weight", {512, 4}},
      {"embeddings.token_type_embeddings.weight", {2, 4}},
      {"embeddings.LayerNorm.weight", {4}},
      {"embeddings.LayerNorm.bias", {4}},
      {layer + "attention.self.query.weight", {4, 4}},
      {layer + "attention.self.query.bias", {4}},
      {layer + "attention.self.key.weight", {4, 4}},
      {layer + "attention.self.key.bias", {4}},
      {layer + "attention.self.value.weight", {4, 4}},
      {layer + "attention.self.value.bias", {4}},
      {layer + "attention.output.dense.weight", {4, 4}},
      {layer + "attention.output.dense.bias", {4}},
      {layer + "attention.output.LayerNorm.weight", {4}},
      {layer + "attention.output.LayerNorm.bias", {4}},
      {layer + "intermediate.dense.weight", {8, 4}},
      {layer + "intermediate.dense.bias", {8}},
      {layer + "output.dense.weight", {4, 8}},
      {layer + "output.dense.bias", {4}},
      {layer + "output.LayerNorm.weight", {4}},
      {layer + "output.LayerNorm.bias", {4}},
      {"pooler.dense.weight", {4, 4}},
      {"pooler.dense.bias", {4}}};
  spruce::SafetensorsFile f;
  for (const auto& [name, shape] : shapes) {
    std::vector<float> w(size_t(shape[0] * (shape.size() > 1 ? shape[1] : 1)), 0.01f);
    f.tensors.push_back(spruce::Tensor::from_f32(name, shape, w.data()));
  }
  std::ofstream(dir / "model.safetensors", std::ios::binary) << spruce::serialize_safetensors(f);
}

// A model folder's config.json and vocab.txt are checked before anything is allocated or read.
TEST_F(BadInput, SentenceModelFoldersAreChecked) {
  write("fine.txt", "hello\n");
  auto model = [&](const std::string& name, const std::string& config_extra, const std::string& weights = "") {
    fs::create_directories(path(name));
    write(name + "/vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n");
    write(name + "/config.json",
          R"({"model_type": "bert", "hidden_size": 4, "num_hidden_layers": 1, "num_attention_heads": 1,
              "intermediate_size": 4, "max_position_embeddings": 512, "vocab_size": 6)" +
              config_extra + "}");
    write(name + "/model.safetensors", weights);
    return std::vector<std::string>{"embed", "--input", path("fine.txt"), "--model", path(name)};
  };
  // The allocator used to refuse these, in LibTorch's words and naming no file.
  expect_refused(model("positions", R"(, "max_position_embeddings": 1000000000000000)"), 1,
                 "max_position_embeddings is 1000000000000000, outside 2..1048576");
  expect_refused(model("types", R"(, "type_vocab_size": 1000000000000000)"), 1,
                 "type_vocab_size is 1000000000000000, outside 1..1048576");
  expect_refused(model("huge", R"(, "vocab_size": 10000000, "hidden_size": 65536)"), 1, "billion parameters");
  expect_refused(model("dropout", R"(, "hidden_dropout_prob": 5)"), 1, "hidden_dropout_prob");
  expect_refused(model("eps", R"(, "layer_norm_eps": -1)"), 1, "layer_norm_eps");
  expect_refused(model("fraction", R"(, "hidden_size": 4.5)"), 1, "hidden_size is 4.5, not a whole number");
  expect_refused(model("text", R"(, "num_hidden_layers": "1")"), 1, "num_hidden_layers is \"1\", not a whole number");
  // Token ids past the embedding table: "index out of range in self", naming no file.
  expect_refused(model("vocab", R"(, "vocab_size": 3)"), 1, "more than config.json's vocab_size 3");
  const std::string f16_weights = raw_file(R"({"embeddings.word_embeddings.weight": {"dtype": "F16", "shape": [6, 4],)"
                                           R"( "data_offsets": [0, 48]}, "filler": {"dtype": "F16", "shape": [2200],)"
                                           R"( "data_offsets": [48, 4448]}})",
                                           4448);
  expect_refused(model("f16", "", f16_weights), 1, "is F16; spruce reads F32 weights");
  // Sizes the weights cannot fill are refused before the model is built (16 GB for ten million words).
  expect_refused(model("wide", R"(, "vocab_size": 10000000)", f16_weights), 1,
                 "config.json's sizes need at least 40002152 weights, and " + path("wide") +
                     "/model.safetensors holds 2224; the two files belong to different models");
  // A LibTorch archive given where a safetensors file belongs.
  write("archive.safetensors", std::string("PK\x03\x04", 4) + std::string(100, '\x7f'));
  expect_refused({"inspect", path("archive.safetensors")}, 1, "it is a zip archive");
  // Another model than the dense one: LibTorch's "size of tensor a (4) must match", after converting.
  write_tiny_bert(dir_ / "tiny");
  write("hello.txt", "hello\n");
  const Outcome tiny = run({"embed", "--input", path("hello.txt"), "--model", path("tiny")});
  EXPECT_EQ(tiny.status, 0) << tiny.err;
  // sentence-transformers settings that spruce does not follow are refused, not ignored (a [CLS]-pooled,
  // cased or unnormalized model embedded as all-MiniLM-L6-v2 does).
  const std::tuple<const char*, const char*, const char*> settings[] = {
      {"1_Pooling/config.json", R"({"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false})",
       "1_Pooling/config.json: pooling_mode_cls_token is true; spruce embeds as all-MiniLM-L6-v2 does"},
      {"tokenizer_config.json", R"({"do_lower_case": false})", "tokenizer_config.json: do_lower_case is false"},
      {"modules.json",
       R"([{"type": "sentence_transformers.models.Transformer"}, {"type": "sentence_transformers.models.Pooling"}])",
       "modules.json: its modules are not Transformer, Pooling, Normalize"},
      {"tokenizer.json", R"({"model": {"vocab": {"[PAD]": 0, "[UNK]": 1}}})",
       "tokenizer.json: its vocabulary is not vocab.txt's"}};
  for (const auto& [file, text, message] : settings) {
    fs::remove_all(path("tiny-st"));
    fs::copy(path("tiny"), path("tiny-st"), fs::copy_options::recursive);
    fs::create_directories(path("tiny-st/1_Pooling"));
    write(std::string("tiny-st/") + file, text);
    expect_refused({"embed", "--input", path("hello.txt"), "--model", path("tiny-st")}, 1, message);
  }
  fs::remove_all(path("tiny-st"));
  // NaN weights are refused as prune and train --init refuse them (embed wrote null embeddings).
  fs::copy(path("tiny"), path("tiny-nan"));
  poison_first_weight(path("tiny/model.safetensors"), path("tiny-nan/model.safetensors"));
  expect_refused({"embed", "--input", path("hello.txt"), "--model", path("tiny-nan")}, 1,
                 "tensor 'embeddings.word_embeddings.weight' holds NaN at element 12");
  expect_refused(
      {"bench-model", "minilm", "--sparse-model", path("tiny"), "--variants", "fp32-sparse", "--batches", "1"}, 2,
      "embeds in 4 dimensions");
}

// Texts and outputs at embed's edges, on a tiny model (fast; the tokenizer is BERT's all the same).
TEST_F(BadInput, EmbedLineEndsAndEmptyTexts) {
  write_tiny_bert(dir_ / "tiny");
  auto embed = [&](const std::string& input, const std::string& output) {
    return std::vector<std::string>{"embed", "--model", path("tiny"), "--input", path(input), "--output", output};
  };
  // Texts that normalization empties were embedded as the empty text, where a blank line is refused.
  write("bom.txt", "hello\n\xef\xbb\xbf\n");
  expect_refused(embed("bom.txt", path("out.jsonl")), 2, "bom.txt', line 2: no text once control characters");
  write("zwsp.txt", "\xe2\x80\x8b\n");
  expect_refused(embed("zwsp.txt", path("out.jsonl")), 2, "line 1: no text once");
  write("nbsp.txt", "hello\n\xc2\xa0\xc2\xa0\n");
  expect_refused(embed("nbsp.txt", path("out.jsonl")), 2, "line 2: no text once");
  write("nul.jsonl", "{\"text\": \"\\u0000\"}\n");
  expect_refused(embed("nul.jsonl", path("out.jsonl")), 2, "line 1: no text once");
  // A lone CR ends a line, as in Python's universal newlines (the three texts were one).
  write("cr.txt", "one\rtwo\rhello\r");
  const Outcome cr = run(embed("cr.txt", path("cr.jsonl")));
  ASSERT_EQ(cr.status, 0) << cr.err;
  std::ifstream lines(path("cr.jsonl"));
  std::vector<std::string> texts;
  for (std::string line; std::getline(lines, line);) texts.push_back(line.substr(0, line.find(",")));
  EXPECT_EQ(texts, (std::vector<std::string>{R"({"text":"one")", R"({"text":"two")", R"({"text":"hello")"}));
  // --output - is standard output, as --input - is standard input (it wrote a file named '-').
  write("hello.txt", "hello\n");
  const Outcome dash = run(embed("hello.txt", "-"));
  EXPECT_EQ(dash.status, 0) << dash.err;
  EXPECT_EQ(dash.out.rfind(R"({"text":"hello","embedding":[)", 0), 0u) << dash.out.substr(0, 200);
  EXPECT_EQ(dash.err.find("written to"), std::string::npos) << dash.err;
}

// Replaces the one occurrence of `from`, and the text after it up to `until` (none: `from` alone),
// with `to` padded with spaces to the same length: a torch archive verifies no checksums, so it stays
// readable.
std::string patched(std::string bytes, const std::string& from, const std::string& until, const std::string& to) {
  const size_t at = bytes.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  EXPECT_EQ(bytes.find(from, at + 1), std::string::npos) << from;
  if (at == std::string::npos) return bytes;
  const size_t end = until.empty() ? at + from.size() : bytes.find(until, at + from.size());
  EXPECT_NE(end, std::string::npos) << until;
  std::string replacement = to;
  EXPECT_LE(replacement.size(), end - at) << from;
  replacement.resize(end - at, ' ');
  return bytes.replace(at, end - at, replacement);
}

// A damaged or tampered distillation checkpoint is refused with a message, never indexed past its
// end (a weight average of fewer tensors than the student's used to crash the resumed run).
TEST_F(BadInput, DistillResumeRefusesDamagedCheckpoints) {
  write_fortunes(dir_ / "fortunes", 300);
  const std::vector<std::string> base{
      "distill", "--fortunes", path("fortunes"), "--steps", "2", "--batch", "2", "--evaluations", "1",
      "--ema",   "0.5",        "--no-progress"};
  auto with = [&](std::vector<std::string> args, const std::vector<std::string>& extra) {
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  const Outcome first = run(with(base, {"--checkpoint", path("run"), "--stop-after", "1"}), 300);
  ASSERT_EQ(first.status, 0) << first.err;
  std::ifstream in(path("run/checkpoint.pt"), std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string good = ss.str();
  ASSERT_GT(good.size(), 1000u);
  auto resume = [&](const std::string& name, const std::string& bytes, int status, const std::string& message) {
    fs::create_directories(path(name));
    write(name + "/checkpoint.pt", bytes);
    const Outcome o = run(with(base, {"--checkpoint", path(name), "--resume"}), 300);
    EXPECT_FALSE(o.hung) << name;
    EXPECT_EQ(o.signal, 0) << name << ": killed by signal " << o.signal;
    EXPECT_EQ(o.status, status) << name << "\n" << o.err.substr(0, 2000);
    if (status == 0) return;
    const size_t last = o.err.rfind('\n', o.err.size() - 2);
    const std::string line = o.err.substr(last == std::string::npos ? 0 : last + 1);
    EXPECT_TRUE(line.rfind("spruce: error: ", 0) == 0) << name << "\n" << o.err.substr(0, 2000);
    EXPECT_NE(line.find(message), std::string::npos) << name << ": no '" << message << "' in\n" << line;
    std::istringstream lines(o.err.substr(0, last == std::string::npos ? 0 : last + 1));
    for (std::string l; std::getline(lines, l);) EXPECT_TRUE(l.rfind("distil: ", 0) == 0) << name << ": " << l;
    std::ifstream kept(path(name + "/checkpoint.pt"), std::ios::binary);
    std::stringstream now;
    now << kept.rdbuf();
    EXPECT_EQ(now.str(), bytes) << name << ": the checkpoint changed";
  };
  resume("empty", "", 1, "not a checkpoint");
  resume("truncated", good.substr(0, good.size() / 2), 1, "not a checkpoint");
  resume("average", patched(good, "\"averaged\":", ",", "\"averaged\":1"), 1, "a weight average of 1 tensors");
  resume("crop", patched(good, "\"crop_rng\":\"", " ", "\"crop_rng\":\"x"), 1, "a random generator's state");
  resume("window", patched(good, "\"window\":", ",", "\"window\":7"), 1, "window 7");
  // The archive's index and its pickled names disagree: LibTorch throws std::out_of_range.
  resume("renamed", patched(good, "loop.torch_rng", "", "loop.torch_rnG"), 1, "not a checkpoint");
  // A diverged loss is saved as null (JSON has no NaN): the run still resumes.
  resume("nan", patched(good, "\"seconds\":", "\"window\"", "\"seconds\":1,\"loss_sum\":null,\"cosine_sum\":null,"), 0,
         "");
}
#endif

#ifdef SPRUCE_WITH_TORCH
// The file-size limit of `ulimit -f`, for the processes started while it lives (they inherit it).
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    getrlimit(RLIMIT_FSIZE, &saved_);
    rlimit limited = saved_;
    limited.rlim_cur = bytes;
    setrlimit(RLIMIT_FSIZE, &limited);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &saved_); }

 private:
  rlimit saved_{};
};

// A LibTorch checkpoint that cannot be written (a full disk, a file-size limit) is one line and
// exit 1, keeps the earlier checkpoint and leaves no temporary file. LibTorch's writer used to
// throw from its destructor while the error unwound: SIGABRT and a 24-line backtrace.
TEST_F(BadInput, FailedCheckpointWritesKeepTheEarlierOne) {
  fs::create_directories(path("run"));
  write("run/checkpoint.pt", "an earlier run");
  Outcome o;
  {
    const FileSizeLimit limit(1 << 20);  // the MLP's checkpoint is about 22 MB
    o = run({"train", "--epochs", "1", "--train-limit", "64", "--test-limit", "64", "--batch-size", "64",
             "--no-progress", "--threads", "1", "--save", path("run"), "--overwrite"});
  }
  EXPECT_EQ(o.signal, 0) << o.err;
  EXPECT_EQ(o.status, 1) << o.err;
  // After the run's header and epoch line (training happened), the error is the last line, and one line.
  EXPECT_TRUE(o.err.ends_with("\nspruce: error: cannot write '" + path("run/checkpoint.pt") +
                              "': write failed: File too large; " + path("run") + " keeps its earlier files\n"))
      << o.err;
  EXPECT_EQ(o.err.find("frame #"), std::string::npos) << o.err;
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(path("run"))) left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"checkpoint.pt"});
  std::ifstream kept(path("run/checkpoint.pt"));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), "an earlier run");
}
#endif
