// Checked inputs and whole-or-nothing outputs: read_file, AtomicOutput, and the signals that
// interrupt a write.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "spruce/error.hpp"
#include "spruce/file.hpp"

namespace fs = std::filesystem;
using spruce::AtomicOutput;

namespace {

class Files : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "spruce_file_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    target_ = path("out.bin");
    std::ofstream(target_) << "old contents";
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  std::string contents(const std::string& p) const {
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // Names in the folder other than the target: a temporary file left behind shows up here.
  std::vector<std::string> strays() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_))
      if (e.path().filename() != "out.bin") out.push_back(e.path().filename().string());
    return out;
  }
  fs::path dir_;
  std::string target_;
};

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const spruce::Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Forks a child that runs `work`, which calls hold() at the moment to be interrupted (mid-write, or
// holding a lock): the parent is told, and the child waits there to be killed. Returns the child
// once it holds, or -1.
pid_t holding_child(const std::function<void(const std::function<void()>& hold)>& work) {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  const pid_t child = fork();
  if (child == 0) {
    work([&] {
      const char c = 1;
      (void)!write(ready[1], &c, 1);
      for (;;) pause();
    });
    _exit(0);
  }
  char c = 0;
  const bool held = read(ready[0], &c, 1) == 1;
  close(ready[0]), close(ready[1]);
  return held ? child : -1;
}

}  // namespace

TEST_F(Files, ReadFileRefusesWhatIsNotARegularFile) {
  EXPECT_EQ(spruce::read_file(target_), "old contents");
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  EXPECT_NE(error_of([&] { spruce::read_file(path("fifo")); }).find("it is a FIFO"), std::string::npos);
  EXPECT_NE(error_of([&] { spruce::read_file(dir_.string()); }).find("it is a folder"), std::string::npos);
  EXPECT_NE(error_of([&] { spruce::read_file(path("missing")); }).find("no such file"), std::string::npos);
  fs::create_symlink(target_, path("link"));
  EXPECT_EQ(spruce::read_file(path("link")), "old contents");
}

TEST_F(Files, OutputsReplaceOnlyRegularFiles) {
  ASSERT_EQ(mkfifo(path("fifo").c_str(), 0644), 0);
  EXPECT_NE(error_of([&] { spruce::write_file_atomic(path("fifo"), "x"); }).find("it is a FIFO"), std::string::npos);
  EXPECT_NE(error_of([&] { spruce::write_file_atomic(dir_.string(), "x"); }).find("it is a folder"), std::string::npos);
  EXPECT_TRUE(fs::is_fifo(path("fifo")));
  // A symlink to a regular file: its destination is replaced and the link kept.
  fs::create_symlink(target_, path("link"));
  spruce::write_file_atomic(path("link"), "new contents");
  EXPECT_TRUE(fs::is_symlink(path("link")));
  EXPECT_EQ(contents(target_), "new contents");
  fs::create_symlink(path("nowhere"), path("dangling"));
  EXPECT_NE(error_of([&] { spruce::write_file_atomic(path("dangling"), "x"); }).find("symlink to nothing"),
            std::string::npos);
}

TEST_F(Files, ModeOfAReplacedFileIsKept) {
  ASSERT_EQ(chmod(target_.c_str(), 0600), 0);
  spruce::write_file_atomic(target_, "new");
  struct stat st {};
  ASSERT_EQ(stat(target_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(Files, NameAtNameMaxGetsAShortTemporaryFile) {
  const std::string name = path(std::string(255, 'n'));
  spruce::write_file_atomic(name, "x");
  EXPECT_EQ(contents(name), "x");
}

TEST_F(Files, UncommittedOutputLeavesNothing) {
  {
    AtomicOutput out(target_);
    out.write("half");
    EXPECT_TRUE(fs::exists(out.temp_path()));
  }
  EXPECT_TRUE(strays().empty());
  EXPECT_EQ(contents(target_), "old contents");
}

// A write past the file-size limit fails with one error (not SIGXFSZ), and leaves nothing.
TEST_F(Files, FileSizeLimitIsAnErrorNotASignal) {
  const pid_t child = fork();
  if (child == 0) {
    rlimit limit{1024, 1024};
    setrlimit(RLIMIT_FSIZE, &limit);
    const std::string message = error_of([&] { spruce::write_file_atomic(target_, std::string(4096, 'x')); });
    _exit(message.find("File too large") != std::string::npos ? 0 : 3);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by signal " << WTERMSIG(st);
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_TRUE(strays().empty());
  EXPECT_EQ(contents(target_), "old contents");
}

// SIGINT, SIGTERM or SIGHUP in the middle of a write: the process ends by that signal, its
// temporary file is gone, and the old output is intact.
TEST_F(Files, SignalMidWriteRemovesTheTemporaryFile) {
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
    const pid_t child = holding_child([&](const auto& hold) {
      AtomicOutput out(target_);
      out.write("partial");
      hold();
    });
    ASSERT_GT(child, 0);
    ASSERT_EQ(strays().size(), 1u);  // the temporary file, while the write is open
    kill(child, sig);
    int st = 0;
    ASSERT_EQ(waitpid(child, &st, 0), child);
    ASSERT_TRUE(WIFSIGNALED(st)) << strsignal(sig);
    EXPECT_EQ(WTERMSIG(st), sig);
    EXPECT_TRUE(strays().empty()) << strsignal(sig);
    EXPECT_EQ(contents(target_), "old contents");
  }
}

// A signal the process ignores (nohup) stays ignored during a write; handlers go when it ends.
TEST_F(Files, SignalDispositionsAreRestored) {
  const pid_t child = fork();
  if (child == 0) {
    signal(SIGHUP, SIG_IGN);
    {
      AtomicOutput out(target_);
      raise(SIGHUP);  // ignored: the write goes on
      out.write("new");
      out.commit();
    }
    struct sigaction hup {
    }, term{};
    sigaction(SIGHUP, nullptr, &hup);
    sigaction(SIGTERM, nullptr, &term);
    _exit(hup.sa_handler == SIG_IGN && term.sa_handler == SIG_DFL ? 0 : 3);
  }
  int st = 0;
  ASSERT_EQ(waitpid(child, &st, 0), child);
  ASSERT_TRUE(WIFEXITED(st));
  EXPECT_EQ(WEXITSTATUS(st), 0);
  EXPECT_EQ(contents(target_), "new");
}

// A saved model folder holding some of its files, after a failure or a full disk, looked like a
// model: a folder is written whole, replaces the old one whole, or is left as it was.
TEST_F(Files, FoldersAreWrittenWholeOrNotAtAll) {
  const std::string model = path("model");
  auto write_two = [&](const std::string& first, const std::string& second) {
    return [=](const std::string& temp) {
      std::ofstream(temp + "/config.json") << first;
      std::ofstream(temp + "/weights") << second;
    };
  };
  spruce::write_folder_atomic(model, write_two("config 1", "weights 1"));
  EXPECT_EQ(contents(model + "/config.json"), "config 1");
  EXPECT_EQ(fs::status(model).permissions() & fs::perms::others_read, fs::perms::others_read) << "left private";
  std::ofstream(model + "/stale") << "from an older save";
  spruce::write_folder_atomic(model, write_two("config 2", "weights 2"));
  EXPECT_EQ(contents(model + "/weights"), "weights 2");
  EXPECT_FALSE(fs::exists(model + "/stale"));
  EXPECT_THROW(spruce::write_folder_atomic(model,
                                           [](const std::string& temp) {
                                             std::ofstream(temp + "/config.json") << "config 3";
                                             spruce::usage_error("the disk is full");
                                           }),
               spruce::Error);
  EXPECT_EQ(contents(model + "/config.json"), "config 2");
  EXPECT_EQ(strays(), std::vector<std::string>{"model"}) << "a temporary folder was left behind";
  EXPECT_NE(error_of([&] { spruce::write_folder_atomic(target_, write_two("", "")); }).find("is not a folder"),
            std::string::npos);
}

// SIGTERM while a folder is being written (a saved model, after its subfolder and some files):
// the temporary folder goes with all it holds, and the old folder is intact.
TEST_F(Files, SignalMidFolderRemovesTheTemporaryFolder) {
  const std::string model = path("model");
  spruce::write_folder_atomic(model, [](const std::string& temp) { std::ofstream(temp + "/config.json") << "old"; });
  for (int sig : {SIGTERM, SIGINT}) {
    const pid_t child = holding_child([&](const auto& hold) {
      spruce::write_folder_atomic(model, [&](const std::string& temp) {
        fs::create_directories(temp + "/1_Pooling/deeper");
        std::ofstream(temp + "/1_Pooling/config.json") << "pooling";
        std::ofstream(temp + "/1_Pooling/deeper/x") << "x";
        for (int i = 0; i < 300; ++i) std::ofstream(temp + "/file" + std::to_string(i)) << i;  // > one listing
        AtomicOutput weights(temp + "/model.safetensors");  // a file being written, too
        weights.write("partial");
        hold();
      });
    });
    ASSERT_GT(child, 0);
    ASSERT_EQ(strays().size(), 2u);  // the model and the temporary folder beside it
    kill(child, sig);
    int st = 0;
    ASSERT_EQ(waitpid(child, &st, 0), child);
    ASSERT_TRUE(WIFSIGNALED(st)) << strsignal(sig);
    EXPECT_EQ(WTERMSIG(st), sig);
    EXPECT_EQ(strays(), std::vector<std::string>{"model"}) << strsignal(sig);
    EXPECT_EQ(contents(model + "/config.json"), "old");
  }
}

// A training run's files (checkpoint, recipe, weights) replace the earlier ones as a set: a write
// that fails part-way (a full disk) leaves every earlier file as it was, and files not rewritten stay.
TEST_F(Files, FilesAreReplacedTogether) {
  const std::string run = path("run");
  fs::create_directories(run);
  std::ofstream(run + "/checkpoint.pt") << "epoch 1";
  std::ofstream(run + "/recipe.yaml") << "recipe 1";
  std::ofstream(run + "/notes.txt") << "the user's";
  // The error names the file as the user knows it, not its temporary folder.
  EXPECT_EQ(error_of([&] {
              spruce::replace_files_together(run, [](const std::string& temp) {
                spruce::write_file_atomic(temp + "/recipe.yaml", "recipe 2");
                spruce::data_error("cannot write '" + temp + "/checkpoint.pt': no space left on device");
              });
            }),
            "cannot write '" + run + "/checkpoint.pt': no space left on device; " + run + " keeps its earlier files");
  EXPECT_EQ(contents(run + "/recipe.yaml"), "recipe 1");
  spruce::replace_files_together(run, [](const std::string& temp) {
    spruce::write_file_atomic(temp + "/recipe.yaml", "recipe 2");
    spruce::write_file_atomic(temp + "/checkpoint.pt", "epoch 2");
  });
  EXPECT_EQ(contents(run + "/checkpoint.pt"), "epoch 2");
  EXPECT_EQ(contents(run + "/recipe.yaml"), "recipe 2");
  EXPECT_EQ(contents(run + "/notes.txt"), "the user's");
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(run)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"checkpoint.pt", "notes.txt", "recipe.yaml"}))
      << "a temporary folder stayed";
  fs::create_directories(run + "/model.safetensors");  // a folder in the way is named, and nothing is replaced
  EXPECT_NE(error_of([&] {
              spruce::replace_files_together(run, [](const std::string& temp) {
                spruce::write_file_atomic(temp + "/checkpoint.pt", "epoch 3");
                spruce::write_file_atomic(temp + "/model.safetensors", "weights");
              });
            }).find("model.safetensors"),
            std::string::npos);
  EXPECT_EQ(contents(run + "/checkpoint.pt"), "epoch 2");
}

// Two commands writing one run folder mixed their files: a folder another process holds is refused.
TEST_F(Files, AFolderLockedByAnotherProcessIsRefused) {
  const std::string run = path("run");
  fs::create_directories(run);
  const pid_t child = holding_child([&](const auto& hold) {
    spruce::lock_folder("--save", run);
    hold();
  });
  ASSERT_GT(child, 0);
  EXPECT_EQ(error_of([&] { spruce::lock_folder("--save", run); }),
            "--save '" + run +
                "' is in use by another spruce command, which writes there too; wait for it, or name "
                "another folder");
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  EXPECT_NO_THROW(spruce::lock_folder("--save", run));        // free once that process has ended
  EXPECT_NO_THROW(spruce::lock_folder("--save", run + "/"));  // and asking again is no conflict
}
