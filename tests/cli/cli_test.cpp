// Runs the real `spruce` binary on files it writes, and on malformed ones.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "run_spruce.hpp"
#include "spruce/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

using spruce::test::Result;
using spruce::test::run_shell;
using spruce::test::run_spruce;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    // A fresh folder per test and process: ctest runs this suite under several ISA caps at once.
    std::string tmpl = (fs::temp_directory_path() / "spruce_cli_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    ckpt_ = path("ckpt.safetensors");
    ASSERT_EQ(run_spruce("make-checkpoint --seed 7 -o " + ckpt_).status, 0);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write(const std::string& name, const std::string& bytes) const {
    std::ofstream(path(name), std::ios::binary) << bytes;
  }
  size_t files() const {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_)) n += e.is_regular_file();
    return n;
  }
  fs::path dir_;
  std::string ckpt_;
};

bool has(const Result& r, const std::string& part) { return r.out.find(part) != std::string::npos; }

}  // namespace

TEST_F(Cli, HelpOnEveryCommand) {
  for (const char* cmd : {"", "prune ", "inspect ", "make-checkpoint "}) {
    const Result r = run_spruce(std::string(cmd) + "--help");
    EXPECT_EQ(r.status, 0) << cmd << r.out;
    EXPECT_TRUE(has(r, "Usage")) << cmd;
  }
  EXPECT_EQ(run_spruce("").status, 2);
  // `spruce help [COMMAND]`, as git and cargo read it.
  EXPECT_EQ(run_spruce("help").out, run_spruce("--help").out);
  const Result prune = run_spruce("help prune");
  EXPECT_EQ(prune.status, 0);
  EXPECT_TRUE(has(prune, "--sparsity")) << prune.out;
  EXPECT_EQ(run_spruce("help prune inspect").status, 2);
}

TEST_F(Cli, VersionStandsAlone) {
  const Result v = run_spruce("--version");
  EXPECT_EQ(v.status, 0);
  EXPECT_EQ(v.out, "spruce 0.1.0\n");
  const Result extra = run_spruce("--version prune");
  EXPECT_EQ(extra.status, 2);
  EXPECT_TRUE(has(extra, "'prune'")) << extra.out;
}

TEST_F(Cli, PruneThenInspectAgree) {
  const std::string out = path("pruned.safetensors");
  const Result p = run_spruce("prune " + ckpt_ + " -o " + out + " --pattern 4x1 --sparsity 0.9");
  ASSERT_EQ(p.status, 0) << p.out;
  EXPECT_TRUE(has(p, "fc1.weight"));
  EXPECT_TRUE(has(p, "90.00%"));
  const Result i = run_spruce("inspect " + out + " --pattern 4x1 --json");
  ASSERT_EQ(i.status, 0) << i.out;
  const auto j = nlohmann::json::parse(i.out);
  EXPECT_NEAR(j["total_sparsity"].get<double>(), 0.9, 0.005);
  int weights = 0;
  for (const auto& t : j["tensors"]) {
    ASSERT_TRUE(t.contains("name") && t.contains("shape") && t.contains("dtype") && t.contains("sparsity") &&
                t.contains("pattern_ok"));
    if (t["pattern_ok"].is_boolean()) {
      ++weights;
      EXPECT_TRUE(t["pattern_ok"].get<bool>()) << t["name"];
    }
  }
  EXPECT_EQ(weights, 5);
  // The 4x1 zeros do not follow 1x4, and the table says so.
  const Result other = run_spruce("inspect " + out + " --pattern 1x4");
  EXPECT_EQ(other.status, 0);
  EXPECT_TRUE(has(other, "NO"));
}

TEST_F(Cli, NOfMTakesItsRatioFromThePattern) {
  const std::string out = path("nm.safetensors");
  const Result p = run_spruce("prune " + ckpt_ + " -o " + out + " --pattern 2:4");
  ASSERT_EQ(p.status, 0) << p.out;
  const auto j = nlohmann::json::parse(run_spruce("inspect " + out + " --pattern 2:4 --json").out);
  EXPECT_NEAR(j["total_sparsity"].get<double>(), 0.5, 1e-3);
  const Result bad = run_spruce("prune " + ckpt_ + " -o " + out + " --pattern 2:4 --sparsity 0.9");
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(has(bad, "fixes the sparsity at 50.0%")) << bad.out;
}

TEST_F(Cli, RecipeDryRunAndGlobalScope) {
  write("r.yaml", "target_sparsity: 0.8\npattern: 4x16\nop_names: [\"fc\"]\n");
  const Result dry =
      run_spruce("prune " + ckpt_ + " -o " + path("x.safetensors") + " --recipe " + path("r.yaml") + " --dry-run");
  ASSERT_EQ(dry.status, 0) << dry.out;
  EXPECT_TRUE(has(dry, "dry run"));
  EXPECT_TRUE(has(dry, "scope global"));
  EXPECT_FALSE(fs::exists(path("x.safetensors")));
  // A named pruning_type must be one a checkpoint can serve; magnitude is, and is the one used.
  write("snip.yaml",
        "target_sparsity: 0.8\npattern: 4x1\npruning_configs:\n  - op_names: [fc]\n"
        "  - op_names: [conv]\n    pruning_type: snip_momentum\n");
  const Result snip = run_spruce("prune " + ckpt_ + " -o " + path("x.safetensors") + " --recipe " + path("snip.yaml"));
  EXPECT_EQ(snip.status, 2);
  EXPECT_TRUE(has(snip, "pruning_type snip_momentum (pruning config 2) needs gradients")) << snip.out;
  EXPECT_TRUE(has(snip, "pruning_type: magnitude")) << snip.out;
  EXPECT_FALSE(fs::exists(path("x.safetensors")));
  write("magnitude.yaml", "target_sparsity: 0.8\npattern: 4x1\npruning_type: magnitude\n");
  EXPECT_EQ(run_spruce("prune " + ckpt_ + " --recipe " + path("magnitude.yaml") + " --dry-run").status, 0);
  write("bad.yaml", "target_sparsity: 0.8\nsparsity_pattern: 4x1\n");
  const Result bad = run_spruce("prune " + ckpt_ + " -o " + path("x.safetensors") + " --recipe " + path("bad.yaml"));
  EXPECT_EQ(bad.status, 2);
  EXPECT_TRUE(has(bad, "unknown key 'sparsity_pattern'")) << bad.out;
  EXPECT_TRUE(has(bad, "target_sparsity")) << bad.out;
}

TEST_F(Cli, UsageErrorsExitTwoWithOneLine) {
  const std::string o = " -o " + path("o.safetensors");
  for (const std::string& args :
       {"prune " + ckpt_ + o + " --pattern 4x0 --sparsity 0.5", "prune " + ckpt_ + o + " --pattern 4x1",
        "prune " + ckpt_ + " --pattern 4x1 --sparsity 0.5", "prune " + ckpt_ + o + " --pattern 4x1 --sparsity 1.5",
        "prune " + ckpt_ + o + " --pattern 4x1 --sparsity 0.5 --criterion snip",
        "prune " + ckpt_ + o + " --pattern 4x1 --sparsity 0.5 --scope layer",
        "prune " + ckpt_ + o + " --pattern 4x1 --sparsity 0.5 --include '('", "prune " + ckpt_ + o + " --sparsity 0.5",
        "prune " + ckpt_ + o + " --pattern 4x1 --sparsity 0.5 --bogus", "inspect " + ckpt_ + " --pattern abc"}) {
    const Result r = run_spruce(args);
    EXPECT_EQ(r.status, 2) << args << "\n" << r.out;
    EXPECT_TRUE(has(r, "error")) << args << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(path("o.safetensors")));
}

TEST_F(Cli, BadDataExitsOneAndWritesNothing) {
  const std::string good = spruce::serialize_safetensors(spruce::read_safetensors(ckpt_));
  write("truncated.safetensors", good.substr(0, good.size() / 2));
  write("garbage.safetensors", "this is not a safetensors file at all");
  write("empty.safetensors", "");
  const size_t before = files();
  for (const char* name :
       {"truncated.safetensors", "garbage.safetensors", "empty.safetensors", "missing.safetensors"}) {
    const Result p =
        run_spruce("prune " + path(name) + " -o " + path("out.safetensors") + " --pattern 4x1 --sparsity 0.5");
    EXPECT_EQ(p.status, 1) << name << "\n" << p.out;
    EXPECT_TRUE(has(p, name)) << p.out;
    EXPECT_EQ(std::count(p.out.begin(), p.out.end(), '\n'), 1) << p.out;
    const Result i = run_spruce(std::string("inspect ") + path(name));
    EXPECT_EQ(i.status, 1) << name << "\n" << i.out;
  }
  EXPECT_EQ(files(), before);  // no output and no temporary file
  const Result unwritable =
      run_spruce("prune " + ckpt_ + " -o " + path("no/such/dir.safetensors") + " --pattern 4x1 --sparsity 0.5");
  EXPECT_EQ(unwritable.status, 2) << unwritable.out;  // a bad -o is a usage error, found before the work
}

TEST_F(Cli, OverwritingTheInputInPlaceIsSafe) {
  const std::string copy = path("inplace.safetensors");
  fs::copy_file(ckpt_, copy);
  ASSERT_EQ(run_spruce("prune " + copy + " -o " + copy + " --pattern 1x1 --sparsity 0.5").status, 0);
  const auto j = nlohmann::json::parse(run_spruce("inspect " + copy + " --json").out);
  EXPECT_NEAR(j["total_sparsity"].get<double>(), 0.5, 1e-3);
}

#ifdef SPRUCE_WITH_TORCH
// A --save folder describes the run that last wrote it: a dense run leaves no pruned run's recipe
// behind for --resume to pick up.
TEST_F(Cli, ADenseRunRemovesAStaleRecipeFromItsFolder) {
  const std::string tiny =
      " --epochs 1 --train-limit 64 --test-limit 64 --batch-size 64 --no-progress --save " + path("run");
  ASSERT_EQ(run_spruce("train --pattern 4x1 --sparsity 0.5" + tiny).status, 0);
  ASSERT_TRUE(fs::exists(path("run/recipe.yaml")));
  ASSERT_TRUE(fs::exists(path("run/masks.safetensors")));
  // The saved run is replaced only when asked.
  const Result refused = run_spruce("train" + tiny);
  EXPECT_EQ(refused.status, 2) << refused.out;
  EXPECT_TRUE(has(refused, "already holds a run (checkpoint.pt)")) << refused.out;
  ASSERT_TRUE(fs::exists(path("run/recipe.yaml")));
  const Result dense = run_spruce("train --overwrite" + tiny);
  ASSERT_EQ(dense.status, 0) << dense.out;
  EXPECT_FALSE(fs::exists(path("run/recipe.yaml")));
  EXPECT_FALSE(fs::exists(path("run/masks.safetensors")));
  const Result resumed = run_spruce("train --resume " + path("run") +
                                    " --epochs 2 --train-limit 64 --test-limit 64 --batch-size 64 --no-progress");
  EXPECT_EQ(resumed.status, 0) << resumed.out;
  EXPECT_TRUE(has(resumed, "| dense ")) << resumed.out;
}
#endif

#ifdef SPRUCE_WITH_TORCH
// `spruce` answers prune, inspect, bench and make-checkpoint without loading LibTorch, and hands the
// other commands to spruce-torch beside it.
TEST_F(Cli, OnlySpruceTorchLoadsLibTorch) {
  const std::string full = (fs::path(SPRUCE_BINARY).parent_path() / "spruce-torch").string();
  // What each would load, from the dynamic loader itself (ldd's own method): it runs nothing.
  const std::string own = run_shell("LD_TRACE_LOADED_OBJECTS=1 " SPRUCE_BINARY).out,
                    all = run_shell("LD_TRACE_LOADED_OBJECTS=1 " + full).out;
  EXPECT_NE(own.find("libdnnl"), std::string::npos) << own;
  EXPECT_EQ(own.find("libtorch"), std::string::npos) << own;
  EXPECT_NE(all.find("libtorch_cpu"), std::string::npos) << all;
  const Result help = run_spruce("--help");  // spruce parses every command's flags, so it lists them all
  EXPECT_EQ(help.status, 0);
  for (const char* command : {"prune", "train", "eval", "distill", "embed"})
    EXPECT_TRUE(has(help, command)) << help.out;
  const Result refused = run_spruce("train --epochs 0");
  EXPECT_EQ(refused.status, 2);
  EXPECT_TRUE(has(refused, "--epochs")) << refused.out;
}

// A `spruce` copied without spruce-torch runs its own commands, and names what is missing for the rest.
TEST_F(Cli, SpruceAloneNamesTheMissingProgram) {
  const std::string alone = path("spruce");
  fs::copy_file(SPRUCE_BINARY, alone);
  auto run_alone = [&](const std::string& args) { return run_shell(alone + " " + args); };
  const Result train = run_alone("train");
  EXPECT_EQ(train.status, 1);
  EXPECT_EQ(train.out, "spruce: error: cannot find '" + path("spruce-torch") +
                           "', which runs the command 'train' and the other LibTorch commands; build or install "
                           "spruce again (make builds both)\n");
  EXPECT_EQ(run_alone("inspect " + ckpt_).status, 0);
  const Result help = run_alone("--help");
  EXPECT_EQ(help.status, 0);
  EXPECT_TRUE(has(help, "prune") && has(help, "distill")) << help.out;
  // The LibTorch commands' flags are parsed before the hand-over: help and refusals need no spruce-torch.
  const Result train_help = run_alone("train --help");
  EXPECT_EQ(train_help.status, 0);
  EXPECT_TRUE(has(train_help, "--epochs")) << train_help.out;
  const Result refused = run_alone("eval --threads 0");
  EXPECT_EQ(refused.status, 2);
  EXPECT_TRUE(has(refused, "--threads")) << refused.out;
  // So are distill's, train's, embed's and bench-model's flags that conflict, and their paths:
  // refused in milliseconds.
  std::ofstream(path("texts.txt")) << "a text\n";
  for (const auto& [args, message] : std::vector<std::pair<std::string, std::string>>{
           {"distill --sparsity 0.8", "spruce: error: --sparsity needs --pattern\n"},
           {"distill --pattern 2:4 --resume",
            "spruce: error: --resume needs --checkpoint DIR, the folder the run "
            "is kept in\n"},
           {"train --overwrite", "spruce: error: --overwrite acts only with --save; add it, or drop it\n"},
           {"bench-model minilm --pattern 4x1",
            "spruce: error: --pattern is for dlrm; minilm measures the "
            "weights given by --sparse-model\n"},
           {"embed --format csv", "spruce: error: unknown output format 'csv'; use jsonl, npy or auto\n"},
           {"embed --format npy", "spruce: error: --format npy writes a binary file: give it with --output FILE\n"},
           {"embed --output " + path("texts.txt") + " --input " + path("texts.txt"),
            "spruce: error: --output '" + path("texts.txt") +
                "' is --input, the texts, which the output would replace; name another file\n"}}) {
    const Result r = run_alone(args);
    EXPECT_EQ(r.status, 2) << args;
    EXPECT_EQ(r.out, message) << args;
  }
  const Result no_recipe = run_alone("train --recipe " + path("none.yaml"));
  EXPECT_EQ(no_recipe.status, 2) << no_recipe.out;
  EXPECT_TRUE(has(no_recipe, "none.yaml") && !has(no_recipe, "spruce-torch")) << no_recipe.out;
  const Result no_input = run_alone("embed --input " + path("none.txt"));
  EXPECT_EQ(no_input.status, 1) << no_input.out;
  EXPECT_EQ(no_input.out, "spruce: error: cannot read '" + path("none.txt") + "': no such file (check the path)\n");
  const Result no_model = run_alone("embed --model " + path("nowhere"));
  EXPECT_EQ(no_model.status, 2) << no_model.out;
  EXPECT_TRUE(has(no_model, "is not a sentence-transformers model folder (no config.json)")) << no_model.out;
}
#endif

#ifdef SPRUCE_WITH_TORCH
namespace {
// The "embedding" arrays of a JSONL file that spruce embed wrote.
std::vector<std::vector<double>> embeddings_in(const std::string& file) {
  std::ifstream in(file);
  std::vector<std::vector<double>> out;
  for (std::string line; std::getline(in, line);)
    out.push_back(nlohmann::json::parse(line).at("embedding").get<std::vector<double>>());
  return out;
}
double cosine(const std::vector<double>& a, const std::vector<double>& b) {
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i) ab += a[i] * b[i], aa += a[i] * a[i], bb += b[i] * b[i];
  return ab / std::sqrt(aa * bb);
}
}  // namespace

// embed draws its progress line where standard error is a terminal (here, script's pseudo-terminal),
// clears it at the end, and draws nothing into a pipe or with --no-progress.
TEST_F(Cli, EmbedDrawsProgressOnlyOnATerminal) {
  std::string texts;
  for (int i = 0; i < 7; ++i) texts += "Sentence number " + std::to_string(i) + " is short.\n";
  write("texts.txt", texts);
  const std::string embed = std::string(SPRUCE_BINARY) + " embed --input " + path("texts.txt") + " --output " +
                            path("out.jsonl") + " --batch 2 --threads 1";
  const Result tty = run_shell("script -qec '" + embed + "' /dev/null");
  EXPECT_EQ(tty.status, 0) << tty.out;
  EXPECT_TRUE(has(tty, "embed: 2 / 7 texts (29%)")) << tty.out;
  EXPECT_TRUE(has(tty, "\r\033[K")) << "the line is not cleared: " << tty.out;
  const Result quiet = run_shell("script -qec '" + embed + " --no-progress' /dev/null");
  EXPECT_EQ(quiet.status, 0) << quiet.out;
  EXPECT_FALSE(has(quiet, " / 7 texts")) << quiet.out;
  const Result piped =
      run_spruce("embed --input " + path("texts.txt") + " --output " + path("out.jsonl") + " --batch 2 --threads 1");
  EXPECT_EQ(piped.status, 0) << piped.out;
  EXPECT_FALSE(has(piped, " / 7 texts")) << piped.out;
  EXPECT_TRUE(has(piped, "embed: 7 texts -> 384-d embeddings")) << piped.out;
}

// A pruned copy of the sentence model (spruce prune over its encoder's Linear weights), embedded by
// every --variant: the sparse INT8 embeddings stay within cosine 0.99 of the FP32 reference's, and
// the FP32 sparse kernels' within 0.9999.
TEST_F(Cli, EmbedRunsEveryVariant) {
  const fs::path model = fs::path(SPRUCE_SOURCE_DIR) / "third_party/all-MiniLM-L6-v2";
  fs::create_directories(path("pruned"));
  for (const char* file : {"config.json", "vocab.txt", "tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(model / file, path("pruned") + "/" + file);
  const Result pruned =
      run_spruce("prune " + (model / "model.safetensors").string() + " -o " + path("pruned/model.safetensors") +
                 " --pattern 4x1 --sparsity 0.5 --include '^encoder\\.layer\\.'");
  ASSERT_EQ(pruned.status, 0) << pruned.out;
  write("texts.txt",
        "A man is playing a guitar.\nThe stock market fell sharply today.\nA woman plays the violin.\n"
        "Cats sleep most of the day.\nThe economy is shrinking.\n");
  std::ofstream fortunes(path("fortunes"));
  for (int i = 0; i < 40; ++i) fortunes << (i ? "%\n" : "") << "fortune number " << i << " says little of note\n";
  fortunes.close();
  fs::create_directories(path("fortune-dir"));
  fs::rename(path("fortunes"), path("fortune-dir/tiny"));
  // Under an ISA cap the operator's tuning would time the reference kernels for minutes: the capped
  // runs keep the sparse kernel (--fallback never), which is what they are there to check.
  const bool capped = std::getenv("SPRUCE_MAX_ISA") != nullptr;
  auto embed = [&](const std::string& variant, const std::string& threads = "1") {
    const Result r = run_spruce("embed --model " + path("pruned") + " --input " + path("texts.txt") + " --output " +
                                path(variant + ".jsonl") + " --batch 2 --threads " + threads + " --variant " + variant +
                                (variant.starts_with("int8") ? " --fortunes " + path("fortune-dir") : "") +
                                (variant.ends_with("sparse") && capped ? " --fallback never" : ""));
    EXPECT_EQ(r.status, 0) << variant << ": " << r.out;
    if (variant != "fp32-dense") {
      EXPECT_TRUE(has(r, "36 Linear layers converted")) << r.out;
    }
    if (const size_t at = r.out.find("% zeros"); variant.ends_with("sparse")) {
      // The pruned half, and in INT8 the few weights that round to zero besides.
      EXPECT_NE(at, std::string::npos) << r.out;
      const double zeros = at == std::string::npos ? 0.0 : std::stod(r.out.substr(r.out.rfind(' ', at) + 1));
      EXPECT_GE(zeros, 50.0) << r.out;
      EXPECT_LT(zeros, 51.0) << r.out;
    }
    return embeddings_in(path(variant + ".jsonl"));
  };
  const auto reference = embed("fp32-dense");
  ASSERT_EQ(reference.size(), 5u);
  for (const auto& [variant, floor] : std::vector<std::pair<std::string, double>>{
           {"fp32-sparse", 0.9999}, {"int8-sparse", 0.99}, {"int8-dense", 0.99}}) {
    const auto got = embed(variant);
    ASSERT_EQ(got.size(), reference.size()) << variant;
    for (size_t i = 0; i < got.size(); ++i) EXPECT_GE(cosine(got[i], reference[i]), floor) << variant << ", text " << i;
  }
  // INT8 is the same from run to run, also where the calibration's passes could run side by side.
  const auto once = embed("int8-dense", "2");
  EXPECT_EQ(embed("int8-dense", "2"), once);
  // The INT8-only settings are refused where they change nothing.
  const Result refused = run_spruce("embed --input " + path("texts.txt") + " --attention int8");
  EXPECT_EQ(refused.status, 2);
  EXPECT_TRUE(has(refused, "--attention acts only with an INT8 --variant")) << refused.out;
  const Result no_fortunes =
      run_spruce("embed --input " + path("texts.txt") + " --variant int8-dense --fortunes " + path("nowhere"));
  EXPECT_EQ(no_fortunes.status, 2);
  EXPECT_TRUE(has(no_fortunes, "calibrates on fortunes")) << no_fortunes.out;
}
#endif
