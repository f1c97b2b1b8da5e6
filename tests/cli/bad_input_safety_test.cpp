// Hostile input, continued (the fixture is bad_input.hpp): outputs that would replace what a command
// reads, bounds on what the environment and standard input may ask for, failed writes to standard
// output, and settings that would do nothing or destroy a tensor.
#include <sys/file.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <vector>

#include "bad_input.hpp"
#include "spruce/idx.hpp"
#include "spruce/memory.hpp"

namespace fs = std::filesystem;

namespace {

using spruce::test::BadInput;
using spruce::test::Outcome;
using spruce::test::run;

// Runs `command` (with SPRUCE for the binary) under /bin/sh, for redirections the fixture's run()
// cannot make; returns its exit status and puts its stderr in `err`.
int shell(const std::string& command, const std::string& err_file, std::string& err) {
  const std::string line = "SPRUCE='" + std::string(SPRUCE_BINARY) + "'; " + command + " 2>'" + err_file + "'";
  const int st = std::system(("timeout 120 sh -c \"" + line + "\"").c_str());
  std::ifstream in(err_file);
  err.assign(std::istreambuf_iterator<char>(in), {});
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

}  // namespace

// prune -o onto its own recipe replaced the recipe with the model, exit 0.
TEST_F(BadInput, OutputsNeverReplaceTheRecipe) {
  write("recipe.yaml", "pattern: 4x1\ntarget_sparsity: 0.5\n");
  expect_refused({"prune", ckpt_, "-o", path("recipe.yaml"), "--recipe", path("recipe.yaml")}, 2,
                 "is --recipe, the recipe, which the output would replace");
#ifdef SPRUCE_WITH_TORCH
  expect_refused({"train", "--recipe", path("recipe.yaml"), "--json", path("recipe.yaml")}, 2, "--recipe, the recipe");
#endif
}

#ifdef SPRUCE_WITH_TORCH
// convert --out, train/eval --json into the dataset, distill --json onto a fortune file and
// bench-model --json onto a model's weights all wrote over what they read (as root, the default
// --data is the system's dataset). A copy of the dataset stands in for it here.
TEST_F(BadInput, OutputsNeverReplaceTheDataTheyRead) {
  fs::create_directories(path("data"));
  for (const char* file : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
                           "t10k-labels-idx1-ubyte.gz"})
    fs::copy_file(fs::path(spruce::kFashionMnistDir) / file, path(std::string("data/") + file));
  const std::string data = path("data"), labels = path("data/t10k-labels-idx1-ubyte.gz");
  const auto labels_before = fs::file_size(labels);
  expect_refused({"train", "--epochs", "1", "--data", data, "--json", labels}, 2, "a file of the dataset (--data)");
  expect_refused({"eval", "--data", data, "--json", labels}, 2, "a file of the dataset (--data)");
  expect_refused({"convert", "--checkpoint", path("run"), "--data", data, "--out", labels}, 2,
                 "a file of the dataset (--data)");
  EXPECT_EQ(fs::file_size(labels), labels_before);
  // Other files there are not read: a run may write beside the data, and write there again.
  for (int run = 0; run < 2; ++run) {
    const auto result =
        spruce::test::run({"train", "--epochs", "1", "--train-limit", "64", "--test-limit", "64", "--threads", "1",
                           "--no-progress", "--data", data, "--json", path("data/run.json")});
    EXPECT_EQ(result.status, 0) << "run " << run << ": " << result.err;
  }

  fs::create_directories(path("fortunes"));
  write("fortunes/tiny", "A fortune.\n%\nAnother one.\n%\n");
  expect_refused({"distill", "--fortunes", path("fortunes"), "--json", path("fortunes/tiny")}, 2,
                 "the fortunes (--fortunes)");
  // Every file there is a fortune file: a new one would be read as fortunes by the next run.
  expect_refused({"distill", "--fortunes", path("fortunes"), "--json", path("fortunes/new.json")}, 2,
                 "is inside the fortunes (--fortunes), every file of which is read");
  fs::create_directories(path("model"));
  write("model/model.safetensors", "weights");
  expect_refused({"bench-model", "minilm", "--sparse-model", path("model"), "--json", path("model/model.safetensors")},
                 2, "the pruned model (--sparse-model)");
}

// Settings that changed nothing were taken in silence: --init beside --resume, --lock-pattern
// with nothing loaded, a seed past 32 bits (LibTorch used its low half), --overwrite without
// --save, and a dense run given as --sparse (its "sparse" rows were dense).
TEST_F(BadInput, TrainingSettingsThatWouldDoNothing) {
  fs::create_directories(path("run"));
  write("run/checkpoint.pt", "a dense run's checkpoint");
  write("run/model.safetensors", "a finished run's weights");
  expect_refused({"train", "--resume", path("run"), "--init", ckpt_}, 2, "--init has no effect with --resume");
  expect_refused({"train", "--lock-pattern"}, 2, "--lock-pattern keeps the zeros of loaded weights");
  expect_refused({"train", "--seed", "4294967296"}, 2, "--seed");
  expect_refused({"train", "--overwrite"}, 2, "--overwrite acts only with --save");
  expect_refused({"train", "--stop-after", "1"}, 2, "--stop-after needs --save DIR");
  expect_refused({"train", "--resume", path("run/model.safetensors")}, 2,
                 "is a file; it takes the --save folder of a spruce train run");
  expect_refused({"train", "--epochs", "2", "--stop-after", "2", "--save", path("s")}, 2,
                 "--stop-after 2 is not before the last epoch (--epochs 2)");
  expect_refused({"eval", "--sparse", path("run")}, 2, "is a dense run (no masks.safetensors)");
  expect_refused({"convert", "--checkpoint", path("run"), "--out", path("m.safetensors")}, 2,
                 "is a dense run (no masks.safetensors); convert it with --variant int8-dense");
  // Each rank holds LibTorch and the data (about 1 GB): 256 of them met the OOM killer.
  if (spruce::available_memory() < 256ull * (1ull << 30))
    expect_refused({"train", "--nproc", "256"}, 2, "start fewer ranks");
  expect_refused({"convert", "--checkpoint", path("run"), "--out", path("m.safetensors"), "--batch", "70000"}, 2,
                 "--batch");
  expect_refused({"distill", "--steps", "2", "--evaluations", "3"}, 2, "--evaluations 3 is more than --steps 2");
  // torchrun's variables stand in for the flags, and the message names both (it named the flags alone).
  for (const auto& [variable, value, message] :
       {std::tuple{"MASTER_PORT", "99999", "--master-port (or MASTER_PORT) 99999 is not a TCP port"},
        std::tuple{"RANK", "3", "--rank (or RANK) 3 is outside the world of 1 ranks"}}) {
    const Outcome o = run({"train", "--epochs", "1"}, 60, "", {{variable, value}});
    EXPECT_EQ(o.status, 2) << variable << ": " << o.err;
    EXPECT_NE(o.err.find(message), std::string::npos) << o.err;
  }
}

// Probe round 8: an empty --pattern was taken as none, and make-checkpoint printed its success line
// before a write that then failed.
TEST_F(BadInput, InspectAndMakeCheckpointSayNoMoreThanHappened) {
  write("w.safetensors", "");
  expect_refused({"inspect", path("w.safetensors"), "--pattern", ""}, 2, "--pattern");
  fs::create_directories(path("folder"));
  const Outcome o = run({"make-checkpoint", "-o", path("folder")});
  EXPECT_EQ(o.status, 1) << o.err;
  EXPECT_EQ(o.out.find("wrote"), std::string::npos) << o.out;
}

#ifdef SPRUCE_WITH_TORCH
// Probe round 8: settings that act on nothing the command runs, and outputs two runs shared.
TEST_F(BadInput, SettingsForVariantsNotRunAndSharedLogFolders) {
  // eval runs a --converted model as converted.
  write("c.safetensors", "not read: refused before");
  expect_refused({"eval", "--converted", path("c.safetensors"), "--fallback", "never"}, 2,
                 "--fallback acts on the layers eval converts from a pruned run");
  expect_refused({"eval", "--converted", path("c.safetensors"), "--calibration", "percentile"}, 2,
                 "--calibration acts on the runs eval converts");
  // bench-model minilm: attention and fallback act on some variants only; a batch is measured once.
  expect_refused({"bench-model", "minilm", "--variants", "fp32-sparse", "--attention", "int8"}, 2,
                 "--attention sets the INT8 variants' attention");
  expect_refused({"bench-model", "minilm", "--variants", "fp32-dense", "int8-dense", "--fallback", "always"}, 2,
                 "--fallback acts on the sparse variants");
  expect_refused({"bench-model", "minilm", "--batches", "1", "1"}, 2, "--batches 1 is given twice");
  expect_refused({"bench-model", "dlrm", "--batches", "64", "64"}, 2, "--batches 64 is given twice");
  // A dense model is no --sparse-model.
  expect_refused({"bench-model", "minilm", "--variants", "int8-sparse", "--threads", "1", "--sparse-model",
                  SPRUCE_SOURCE_DIR "/third_party/all-MiniLM-L6-v2"},
                 2, "has no pruned Linear weights");
  // Nor is a pruned one a --dense-model: its dense baselines timed pruned weights.
  const std::string bundled = SPRUCE_SOURCE_DIR "/third_party/all-MiniLM-L6-v2";
  fs::create_directories(path("pruned"));
  for (const char* file : {"config.json", "vocab.txt"}) fs::copy_file(bundled + "/" + file, path("pruned/") + file);
  const Outcome pruned =
      run({"prune", bundled + "/model.safetensors", "-o", path("pruned/model.safetensors"), "--pattern", "4x1",
           "--sparsity", "0.5", "--include", "encoder\\..*\\.weight$", "--exclude", "LayerNorm"});
  ASSERT_EQ(pruned.status, 0) << pruned.err;
  expect_refused(
      {"bench-model", "minilm", "--variants", "int8-dense", "--threads", "1", "--dense-model", path("pruned")}, 2,
      "is pruned (50.0% zeros in its Linear weights); give the unpruned model");
  // Two dlrm runs logging into one folder read each other's LoadGen logs.
  fs::create_directories(path("logs")), fs::create_directories(path("work"));
  const int fd = ::open(path("logs").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // as a running bench-model holds it
  expect_refused({"bench-model", "dlrm", "--work-dir", path("work"), "--log-dir", path("logs"), "--threads", "1"}, 2,
                 "--log-dir '" + path("logs") + "' is in use by another spruce command");
  ::close(fd);
}

// A run distilled from a teacher resumed without it, or from another, with no word (probe round 8).
TEST_F(BadInput, TrainResumesDistilFromTheSameTeacher) {
  const std::vector<std::string> tiny{"--train-limit", "64", "--test-limit", "64", "--batch-size", "64",
                                      "--threads",     "1",  "--no-progress"};
  auto train = [&](std::vector<std::string> args) {
    args.insert(args.begin(), "train");
    args.insert(args.end(), tiny.begin(), tiny.end());
    return run(args, 120);
  };
  ASSERT_EQ(train({"--epochs", "1", "--save", path("dense")}).status, 0);
  ASSERT_EQ(train({"--epochs", "1", "--pattern", "4x1", "--sparsity", "0.5", "--teacher", path("dense"), "--save",
                   path("taught")})
                .status,
            0);
  ASSERT_EQ(train({"--epochs", "1", "--seed", "1", "--save", path("other")}).status, 0);  // other weights
  for (const auto& extra : std::vector<std::vector<std::string>>{
           {}, {"--teacher", path("other")}, {"--teacher", path("dense"), "--distill-weight", "0.9"}}) {
    std::vector<std::string> args{"train", "--resume", path("taught"), "--epochs", "2"};
    args.insert(args.end(), tiny.begin(), tiny.end());
    args.insert(args.end(), extra.begin(), extra.end());
    expect_refused(args, 2, "/checkpoint.pt was trained with teacher ");
  }
  // Another batch size, seed or set of examples would continue another run than the one saved.
  expect_refused({"train", "--resume", path("taught"), "--epochs", "2", "--teacher", path("dense"), "--train-limit",
                  "64", "--batch-size", "32", "--seed", "3", "--threads", "1"},
                 2,
                 "/checkpoint.pt holds a run trained with --batch-size 64, --seed 0, and this one has --batch-size 32, "
                 "--seed 3: resume with --batch-size 64, --seed 0 to continue it");
  expect_refused({"train", "--resume", path("taught"), "--epochs", "2", "--teacher", path("dense"), "--batch-size",
                  "64", "--threads", "1"},
                 2, "resume with --train-limit 64 to continue it");
  std::vector<std::string> same{"--resume", path("taught"), "--epochs", "2", "--teacher", path("dense")};
  EXPECT_EQ(train(same).status, 0);
  // A teacher is a run's folder: its model file was met with "Not a directory" and exit 1.
  expect_refused({"train", "--epochs", "1", "--teacher", path("dense/model.safetensors")}, 2,
                 "is a file; it takes the --save folder of a spruce train run");
  // embed wrote JSONL over a run's weights, named as they are.
  write("texts.txt", "one text\n");
  for (const char* name : {"dense/model.safetensors", "x.pt", "X.SAFETENSORS"})
    expect_refused({"embed", "--input", path("texts.txt"), "--output", path(name)}, 2, "is named as a model file");
}

// Two distill runs saving to one folder both reported success, the later one's model replacing the
// other's: a run now holds its --save folder, as train holds its own.
TEST_F(BadInput, DistillHoldsItsSaveFolder) {
  fs::create_directories(path("held"));
  const int fd = ::open(path("held").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);  // as a running distill holds it
  expect_refused(
      {"distill", "--pattern", "2:4", "--steps", "1", "--evaluations", "1", "--threads", "1", "--save", path("held")},
      2, "is in use by another spruce command");
  ::close(fd);
}
#endif

// A stream without line ends (/dev/zero) grew embed's memory by 45 MB/s without end.
TEST_F(BadInput, EmbedBoundsALineOnStandardInput) {
  std::string err;
  EXPECT_EQ(shell("\\$SPRUCE embed --threads 1 < /dev/zero > /dev/null", path("err.txt"), err), 2) << err;
  EXPECT_NE(err.find("standard input, line 1: longer than 1 MiB"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  fs::remove(path("err.txt"));
  // An --output named *.npy gets NPY unless --format says otherwise, which is refused.
  write("texts.txt", "one text\n");
  expect_refused({"embed", "--input", path("texts.txt"), "--output", path("e.npy"), "--format", "jsonl"}, 2,
                 "named as NPY");
  expect_refused({"embed", "--input", path("texts.txt"), "--output", path("E.NPY"), "--format", "jsonl"}, 2,
                 "named as NPY");
  expect_refused({"embed", "--input", path("texts.txt"), "--output", path("e.jsonl"), "--format", "npy"}, 2,
                 "binary NPY into");
  const Outcome npy = run({"embed", "--input", path("texts.txt"), "--output", path("e.npy"), "--threads", "1"});
  ASSERT_EQ(npy.status, 0) << npy.err;
  std::ifstream in(path("e.npy"), std::ios::binary);
  std::string magic(6, '\0');
  in.read(magic.data(), 6);
  EXPECT_EQ(magic, "\x93NUMPY");
}

// A config.json out of range is named by its field: num_hidden_layers 0 was blamed on the heads,
// and a max_position_embeddings below the length named neither the file nor the flag.
TEST_F(BadInput, SentenceModelConfigsNameTheirField) {
  const fs::path real = fs::path(SPRUCE_SOURCE_DIR) / "third_party/all-MiniLM-L6-v2";
  std::ifstream in(real / "config.json");
  const std::string config((std::istreambuf_iterator<char>(in)), {});
  const auto model_with = [&](const std::string& name, const std::string& key, const std::string& value) {
    fs::create_directories(path(name));
    for (const auto& e : fs::directory_iterator(real))
      if (e.path().filename() != "config.json") fs::create_symlink(e.path(), path(name) / e.path().filename());
    const size_t at = config.find("\"" + key + "\"");
    const size_t colon = config.find(':', at), end = config.find_first_of(",}", colon);
    write(name + "/config.json", config.substr(0, colon + 1) + " " + value + config.substr(end));
    return path(name);
  };
  write("texts.txt", "one text\n");
  expect_refused({"embed", "--input", path("texts.txt"), "--model", model_with("layers", "num_hidden_layers", "0")}, 1,
                 "num_hidden_layers is 0, outside 1..256");
  expect_refused(
      {"embed", "--input", path("texts.txt"), "--model", model_with("positions", "max_position_embeddings", "4")}, 2,
      "the maximum length 128 is outside 2..4, the positions");
  // Fewer layers than the weights hold embedded with the first four alone, silently.
  expect_refused({"embed", "--input", path("texts.txt"), "--model", model_with("fewer", "num_hidden_layers", "4")}, 1,
                 "holds encoder.layer.4.");
  // Settings files that are not JSON objects leaked the JSON library's own text, or were accepted.
  const auto model_with_file = [&](const std::string& name, const std::string& file, const std::string& text) {
    fs::create_directories(path(name));
    for (const auto& e : fs::directory_iterator(real))
      if (e.path().filename() != file) fs::create_symlink(e.path(), path(name) / e.path().filename());
    write(name + "/" + file, text);
    return path(name);
  };
  expect_refused({"embed", "--input", path("texts.txt"), "--model", model_with_file("cfg-list", "config.json", "[]")},
                 1, "config.json is not a JSON object of settings");
  expect_refused(
      {"embed", "--input", path("texts.txt"), "--model", model_with_file("tok-list", "tokenizer.json", "[]")}, 1,
      "tokenizer.json is not a tokenizer's settings");
  expect_refused({"embed", "--input", path("texts.txt"), "--model",
                  model_with_file("tok-model", "tokenizer.json", "{\"model\": 5}")},
                 1, "tokenizer.json is not a tokenizer's settings");
}

// A run stopped part-way left its checkpoint beside the final files of the run it replaced, and
// eval and convert read that checkpoint as a finished run (or called it a dense one).
TEST_F(BadInput, UnfinishedTrainingRunsAreNamed) {
  fs::create_directories(path("part"));
  write("part/checkpoint.pt", "not read");
  write("part/recipe.yaml", "pattern: 4x1\ntarget_sparsity: 0.5\n");
  expect_refused({"eval", "--sparse", path("part")}, 2, "holds a run that has not finished");
  expect_refused({"eval", "--dense", path("part")}, 2, "holds a run that has not finished");
  expect_refused({"convert", "--checkpoint", path("part"), "--out", path("c.safetensors")}, 2,
                 "continue it with spruce train --resume");
  // A run's file given for its folder was read as FILE/checkpoint.pt: "Not a directory", exit 1.
  for (const char* flag : {"--sparse", "--dense"})
    expect_refused({"eval", flag, path("part/recipe.yaml")}, 2,
                   "recipe.yaml' is a file; it takes the --save folder of a spruce train run");
  expect_refused({"convert", "--checkpoint", path("part/checkpoint.pt"), "--out", path("c.safetensors")}, 2,
                 "checkpoint.pt' is a file; it takes the --save folder");
  // A finished run replaced by one stopped after its first epochs: its model.safetensors went first.
  const std::vector<std::string> tiny{"--train-limit", "256", "--test-limit", "256", "--threads", "1", "--no-progress"};
  auto train = [&](std::vector<std::string> args) {
    args.insert(args.end(), tiny.begin(), tiny.end());
    return args;
  };
  ASSERT_EQ(run(train({"train", "--epochs", "1", "--save", path("replaced")})).status, 0);
  ASSERT_TRUE(fs::exists(path("replaced/model.safetensors")));
  const Outcome stopped = run(train({"train", "--epochs", "50", "--save", path("replaced"), "--overwrite", "--pattern",
                                     "4x1", "--sparsity", "0.5"}),
                              120, "epoch 2/50");
  EXPECT_TRUE(stopped.signal == SIGINT || stopped.status == 130) << stopped.err;
  EXPECT_TRUE(fs::exists(path("replaced/checkpoint.pt")));
  EXPECT_FALSE(fs::exists(path("replaced/model.safetensors")))
      << "the replaced run's weights beside the new checkpoint";
  expect_refused({"eval", "--sparse", path("replaced")}, 2, "holds a run that has not finished");
  // Without --save the ranks' logs go to TMPDIR, whose error named an empty path.
  const Outcome o = run({"train", "--nproc", "2", "--epochs", "1"}, 60, "", {{"TMPDIR", "/no-such-folder"}});
  EXPECT_EQ(o.status, 2) << o.err;
  EXPECT_EQ(o.err,
            "spruce: error: TMPDIR '/no-such-folder' is not a folder (the ranks' logs go there without --save): "
            "set it to one, or give --save\n");
}
#endif

// OMP_NUM_THREADS=100000 failed as "out of memory", and 600 ran for minutes; --threads is bounded.
TEST_F(BadInput, ThreadCountsFromTheEnvironmentAreBounded) {
  for (const char* value : {"100000", "0", "four", "2x", "2,abc", "4,0", " 4", "2,"}) {
    const Outcome o = run({"inspect", ckpt_}, 60, "", {{"OMP_NUM_THREADS", value}});
    EXPECT_EQ(o.status, 2) << value << ": " << o.err;
    EXPECT_NE(o.err.find("OMP_NUM_THREADS='" + std::string(value) + "' is not a thread count in 1..512"),
              std::string::npos)
        << o.err;
  }
  EXPECT_EQ(run({"inspect", ckpt_}, 60, "", {{"OMP_NUM_THREADS", "2,1"}}).status, 0);
}

// A full disk or a closed descriptor on standard output exited 0 with nothing written.
TEST_F(BadInput, FailedWritesToStandardOutputAreErrors) {
  std::string err;
  EXPECT_EQ(shell("\\$SPRUCE inspect '" + ckpt_ + "' --json > /dev/full", path("err.txt"), err), 1) << err;
  EXPECT_NE(err.find("cannot write standard output: No space left on device"), std::string::npos) << err;
  EXPECT_EQ(shell("\\$SPRUCE inspect '" + ckpt_ + "' >&-", path("err.txt"), err), 1) << err;
  EXPECT_NE(err.find("cannot write standard output"), std::string::npos) << err;
  // A run that fails replaces nothing: prune exited 1 over a full standard output, yet had
  // replaced its output file; make-checkpoint and bench --json too.
  fs::remove(path("err.txt"));
  write("old.json", "{\"an\": \"earlier report\"}");
  const auto before = snapshot();
  for (const std::string& command : {"prune '" + ckpt_ + "' -o '" + old_output_ + "' --pattern 4x1 --sparsity 0.5",
                                     "make-checkpoint -o '" + old_output_ + "'",
                                     "bench --shape 8x64x64 --reps 1 --json '" + path("old.json") + "'"}) {
    for (const char* redirect : {" > /dev/full", " >&-"}) {
      EXPECT_EQ(shell("\\$SPRUCE " + command + redirect, path("err.txt"), err), 1) << command << redirect << err;
      fs::remove(path("err.txt"));
      EXPECT_EQ(snapshot(), before) << command << redirect << ": the output was replaced";
    }
  }
}

// -o /dev/stderr, with stderr sent to a log file, replaced the log with the model; -o /proc/version
// blamed a missing file.
TEST_F(BadInput, OutputsThatAreNoPlaceForAFile) {
  std::string err;
  EXPECT_EQ(shell("\\$SPRUCE prune '" + ckpt_ + "' -o /dev/stderr --pattern 4x1 --sparsity 0.5", path("log.txt"), err),
            2)
      << err;
  EXPECT_NE(err.find("is this command's standard error, which the output would replace"), std::string::npos) << err;
  fs::remove(path("log.txt"));
  // `embed --output /dev/stdin < texts` replaced the texts with their embeddings.
  write("texts.txt", "a text\n");
  EXPECT_EQ(
      shell("\\$SPRUCE prune '" + ckpt_ + "' -o /dev/stdin --pattern 4x1 --sparsity 0.5 < '" + path("texts.txt") + "'",
            path("log.txt"), err),
      2)
      << err;
  EXPECT_NE(err.find("is this command's standard input, which the output would replace"), std::string::npos) << err;
  std::ifstream texts(path("texts.txt"));
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(texts), {}), "a text\n");
  expect_refused({"prune", ckpt_, "-o", "/proc/version", "--pattern", "4x1", "--sparsity", "0.5"}, 2,
                 "its folder '/proc' takes no new file");
}

// Local scope had no cap: 0.9999999999 zeroed every tensor, and 0 or 1e-300 wrote a copy.
TEST_F(BadInput, SparsitiesThatRemoveEverythingOrNothing) {
  expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", "0.9999999999"}), 2,
                 "sparsity 0.9999999999 removes every block of '");
  for (const char* none : {"0", "1e-300"})
    expect_refused(prune_to_old({"--pattern", "4x1", "--sparsity", none}), 2, "remove no block of any tensor");
  write("zero.yaml", "pattern: 4x1\ntarget_sparsity: 0\n");
  expect_refused(prune_to_old({"--recipe", path("zero.yaml")}), 2, "remove no block of any tensor");
}

// A mistyped command lists the commands and the one it most likely meant.
TEST_F(BadInput, MistypedCommandsGetASuggestion) {
  expect_refused({"prun"}, 2, "unknown command 'prun' (did you mean prune?)");
  expect_refused({"PRUNE"}, 2, "(did you mean prune?)");
  expect_refused({"zzzzzz"}, 2, "unknown command 'zzzzzz'; the commands are");
}
