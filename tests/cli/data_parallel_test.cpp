// Data-parallel `spruce train` on loopback: 2 and 4 ranks against 1, divergence, faults, resume.
// Every run is a real `spruce` process (or several) on a small slice of Fashion-MNIST.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "run_spruce.hpp"
#include "spruce/safetensors.hpp"

namespace fs = std::filesystem;

namespace {

using spruce::test::Result;
Result run(const std::string& args) { return spruce::test::run_spruce(args); }

// A free port for a job started rank by rank (a launcher picks its own).
int pick_port() { return 20000 + int(getpid() % 20000); }

// Starts `spruce args` in the background with its output in `log`.
pid_t spawn(const std::string& args, const std::string& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = std::string("exec ") + SPRUCE_BINARY + " " + args + " >" + log + " 2>&1";
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Exit status of `pid`, or -1 if it is still running after `seconds`.
int wait_for(pid_t pid, double seconds) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (std::chrono::steady_clock::now() < until) {
    int st = 0;
    if (waitpid(pid, &st, WNOHANG) == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return -1;
}

// Waits up to two minutes for `path` to appear (a rank's first checkpoint).
bool wait_for_file(const std::string& path) {
  for (int i = 0; i < 1200 && !fs::exists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  return fs::exists(path);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class DataParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "spruce_dp_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

// A short pruning run: 1024 examples at global batch 64, so 16 steps per epoch and a mask update
// at every step of the schedule.
const std::string kRun = "train --train-limit 1024 --test-limit 500 --batch-size 64 --no-progress --seed 3 ";

// Masks equal except for at most `mask_bits` bits; F32 weights equal within `tolerance` (absolute),
// or not compared when negative or when some mask bits differ (after one block flips, the runs
// train different networks).
void expect_same_model(const std::string& a_dir, const std::string& b_dir, double tolerance, int64_t mask_bits = 0) {
  const auto masks_a = spruce::read_safetensors(a_dir + "/masks.safetensors");
  const auto masks_b = spruce::read_safetensors(b_dir + "/masks.safetensors");
  ASSERT_EQ(masks_a.tensors.size(), masks_b.tensors.size());
  for (const auto& t : masks_a.tensors) {
    const auto* u = masks_b.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    int64_t differ = 0;
    for (size_t i = 0; i < t.bytes.size(); ++i) differ += t.bytes[i] != u->bytes[i];
    EXPECT_LE(differ, mask_bits) << "mask " << t.name << " of " << t.bytes.size();
    if (differ > 0) {
      std::printf("mask %s: %lld of %zu bits differ; weights not compared\n", t.name.c_str(), (long long)differ,
                  t.bytes.size());
      tolerance = -1;
    }
  }
  if (tolerance < 0) return;
  const auto model_a = spruce::read_safetensors(a_dir + "/model.safetensors");
  const auto model_b = spruce::read_safetensors(b_dir + "/model.safetensors");
  for (const auto& t : model_a.tensors) {
    const auto* u = model_b.find(t.name);
    ASSERT_NE(u, nullptr) << t.name;
    const auto x = t.to_f32(), y = u->to_f32();
    double worst = 0;
    for (size_t i = 0; i < x.size(); ++i) worst = std::max(worst, double(std::fabs(x[i] - y[i])));
    EXPECT_LE(worst, tolerance) << "weight " << t.name;
  }
}

}  // namespace

TEST_F(DataParallel, TwoRanksAtHalfBatchMatchOneRankForEveryCriterionAndScope) {
  // Not sparsegpt: each of its updates solves with the inverse Gram matrix, which magnifies the last
  // bits in which two runs differ; one rank at 1 and at 2 threads already ends 5.6% of mask bits
  // apart after 2 epochs. Its sum over ranks is checked exactly in tests/torch/reconstruction_test.
  for (const char* criterion : {"magnitude", "gradient", "snip", "snip_momentum", "wanda"}) {
    for (const char* scope : {"local", "global"}) {
      SCOPED_TRACE(std::string(criterion) + " " + scope);
      const std::string flags = kRun + "--epochs 2 --pattern 4x1 --sparsity 0.8 --criterion " + criterion +
                                " --scope " + scope + " --threads 1 ";
      const std::string one = path(std::string("one-") + criterion + scope),
                        two = path(std::string("two-") + criterion + scope);
      const Result a = run(flags + "--save " + one);
      ASSERT_EQ(a.status, 0) << a.out;
      const Result b = run(flags + "--nproc 2 --save " + two);
      ASSERT_EQ(b.status, 0) << b.out;
      // The all-reduce of two half-batch gradients sums in another order than one GEMM over the
      // whole batch, so the runs differ in the last bits. `gradient` scores one batch's raw
      // gradients, pruned weights' included (so blocks can revive): that is enough to swap a few
      // near-threshold blocks, after which the runs drift apart. The other criteria agree to the
      // bit where LibTorch's GEMM happens to sum the batch as two halves (AVX-512 hosts), but on an
      // AVX2-only host (AMD Zen 3) `magnitude local` swapped 0.06% of its blocks. So every
      // criterion may swap at most 0.1% of the blocks; the weights must agree within 2e-4 where no
      // block swapped. Ranks of one job still agree bit for bit: the run checks that at every update.
      expect_same_model(one, two, std::string(criterion) == "gradient" ? -1 : 2e-4, /*mask_bits=*/1024 * 1024 / 1000);
    }
  }
}

TEST_F(DataParallel, FourRanksKeepIdenticalMasksThroughARun) {
  const std::string flags = kRun + "--epochs 2 --pattern 4x1 --sparsity 0.9 --criterion snip_momentum ";
  const Result a = run(flags + "--threads 1 --save " + path("one"));
  ASSERT_EQ(a.status, 0) << a.out;
  // Each mask update is checked across the ranks as it happens; the run failing would show it.
  const Result b = run(flags + "--nproc 4 --threads 1 --json " + path("four.json") + " --save " + path("four"));
  ASSERT_EQ(b.status, 0) << b.out;
  expect_same_model(path("one"), path("four"), 2e-4);
  EXPECT_NEAR(nlohmann::json::parse(slurp(path("four.json")))["sparsity"].get<double>(), 0.9, 1e-3);
}

TEST_F(DataParallel, ForcedDivergenceIsCaught) {
  // Rank 1 asks for another sparsity: its first mask update differs from rank 0's.
  const int port = pick_port();
  const std::string job = kRun +
                          "--epochs 1 --pattern 4x1 --criterion magnitude --threads 1 --world-size 2 "
                          "--dist-timeout 20 --master-port " +
                          std::to_string(port) + " ";
  const pid_t r0 = spawn(job + "--rank 0 --sparsity 0.9", path("r0.log"));
  const pid_t r1 = spawn(job + "--rank 1 --sparsity 0.8", path("r1.log"));
  const int s0 = wait_for(r0, 60), s1 = wait_for(r1, 60);
  EXPECT_NE(s0, 0);
  EXPECT_NE(s1, 0);
  EXPECT_LT(s0, 128) << "no signal, a clean exit";
  const std::string log = slurp(path("r0.log"));
  EXPECT_NE(log.find("masks after the update at step"), std::string::npos) << log;
  EXPECT_NE(log.find("differ between ranks"), std::string::npos) << log;
  if (s0 < 0) kill(r0, SIGKILL), waitpid(r0, nullptr, 0);
  if (s1 < 0) kill(r1, SIGKILL), waitpid(r1, nullptr, 0);
}

TEST_F(DataParallel, AKilledRankStopsTheOthersAndTheLastCheckpointSurvives) {
  const int port = pick_port() + 1;
  const std::string job =
      "train --train-limit 2000 --test-limit 500 --epochs 50 --no-progress --threads 1 "
      "--pattern 4x1 --sparsity 0.9 --world-size 2 --dist-timeout 20 --master-port " +
      std::to_string(port) + " --save " + path("run") + " ";
  const pid_t r0 = spawn(job + "--rank 0", path("r0.log"));
  const pid_t r1 = spawn(job + "--rank 1", path("r1.log"));
  // Wait for the first epoch's checkpoint, then kill rank 1 mid-epoch.
  ASSERT_TRUE(wait_for_file(path("run/checkpoint.pt"))) << slurp(path("r0.log"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(r1, SIGKILL);
  waitpid(r1, nullptr, 0);
  const int s0 = wait_for(r0, 30);  // the dead peer shows at the next collective, well within the timeout
  if (s0 < 0) kill(r0, SIGKILL), waitpid(r0, nullptr, 0);
  EXPECT_GT(s0, 0);
  EXPECT_LT(s0, 128);
  const std::string log = slurp(path("r0.log"));
  EXPECT_NE(log.find("rank 1 stopped or did not answer"), std::string::npos) << log;
  // The checkpoint is whole: training resumes from it (with the run's settings, on one rank).
  const Result resumed =
      run("train --train-limit 2000 --test-limit 500 --epochs 21 --no-progress --threads 1 "
          "--resume " +
          path("run"));
  EXPECT_EQ(resumed.status, 0) << resumed.out;
  // With its masks and schedule: the recipe is saved with every checkpoint, not only at the end.
  EXPECT_TRUE(fs::exists(path("run/recipe.yaml")));
  EXPECT_NE(resumed.out.find("| 4x1 "), std::string::npos) << resumed.out;
  for (const auto& e : fs::directory_iterator(path("run")))
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
}

TEST_F(DataParallel, AHungRankFailsTheOthersWithinTheTimeout) {
  const int port = pick_port() + 2;
  const std::string job = kRun + "--epochs 500 --threads 1 --world-size 2 --dist-timeout 10 --master-port " +
                          std::to_string(port) + " --save " + path("run") + " ";
  const pid_t r0 = spawn(job + "--rank 0", path("r0.log"));
  const pid_t r1 = spawn(job + "--rank 1", path("r1.log"));
  // Stop rank 1 once training runs (the first epoch's checkpoint), not during the rendezvous.
  ASSERT_TRUE(wait_for_file(path("run/checkpoint.pt"))) << slurp(path("r0.log"));
  kill(r1, SIGSTOP);
  const auto stopped = std::chrono::steady_clock::now();
  const int s0 = wait_for(r0, 40);
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped).count();
  kill(r1, SIGKILL);
  waitpid(r1, nullptr, 0);
  if (s0 < 0) kill(r0, SIGKILL), waitpid(r0, nullptr, 0);
  EXPECT_GT(s0, 0) << slurp(path("r0.log"));
  EXPECT_LT(s0, 128);
  EXPECT_LT(waited, 30.0);
  EXPECT_NE(slurp(path("r0.log")).find("rank 1 stopped or did not answer (timeout 10 s"), std::string::npos)
      << slurp(path("r0.log"));
}

TEST_F(DataParallel, ResumeAcrossWorldSizesKeepsTheScheduleAndTheSparsity) {
  const std::string flags = kRun + "--pattern 4x1 --sparsity 0.9 --criterion snip_momentum --threads 1 ";
  // 2 -> 1: the second run continues at step 32 of the 3-epoch schedule.
  ASSERT_EQ(run(flags + "--epochs 2 --nproc 2 --save " + path("a")).status, 0);
  const Result one =
      run("train --train-limit 1024 --test-limit 500 --batch-size 64 --no-progress --seed 3 --threads 1 "
          "--epochs 3 --resume " +
          path("a") + " --save " + path("a1") + " --json " + path("a1.json"));
  ASSERT_EQ(one.status, 0) << one.out;
  auto j = nlohmann::json::parse(slurp(path("a1.json")));
  EXPECT_EQ(j["steps"].get<int64_t>(), 48);
  EXPECT_NEAR(j["sparsity"].get<double>(), 0.9, 1e-3);
  // 1 -> 2
  ASSERT_EQ(run(flags + "--epochs 2 --save " + path("b")).status, 0);
  const Result two =
      run("train --train-limit 1024 --test-limit 500 --batch-size 64 --no-progress --seed 3 --threads 1 "
          "--epochs 3 --nproc 2 --resume " +
          path("b") + " --save " + path("b2") + " --json " + path("b2.json"));
  ASSERT_EQ(two.status, 0) << two.out;
  j = nlohmann::json::parse(slurp(path("b2.json")));
  EXPECT_EQ(j["steps"].get<int64_t>(), 48);
  EXPECT_NEAR(j["sparsity"].get<double>(), 0.9, 1e-3);
  // The masks of the first run survive: a resumed run never revives a pruned block.
  const auto before = spruce::read_safetensors(path("b/masks.safetensors"));
  const auto after = spruce::read_safetensors(path("b2/masks.safetensors"));
  for (const auto& t : before.tensors)
    for (size_t i = 0; i < t.bytes.size(); ++i)
      if (t.bytes[i] == 0) {
        ASSERT_EQ(after.find(t.name)->bytes[i], 0) << t.name << " element " << i;
      }
}

// Without --save the ranks log to a temporary folder, kept only when a rank fails (its error names it).
TEST_F(DataParallel, TemporaryLogsGoAfterASuccessfulRun) {
  const Result r = run(kRun + "--epochs 1 --nproc 2 --threads 2");
  ASSERT_EQ(r.status, 0) << r.out;
  const size_t to = r.out.find("logs to "), end = r.out.find("/rank<R>.log");
  ASSERT_TRUE(to != std::string::npos && end != std::string::npos) << r.out;
  const std::string logs = r.out.substr(to + 8, end - to - 8);
  EXPECT_NE(logs.find("spruce-train-"), std::string::npos) << logs;
  EXPECT_FALSE(fs::exists(logs)) << logs;
}

TEST_F(DataParallel, BadJobSettingsGetOneLine) {
  const auto one_line = [](const Result& r) {
    EXPECT_NE(r.status, 0) << r.out;
    EXPECT_LT(r.status, 128) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  };
  Result r = run(kRun + "--world-size 2 --rank 2");
  one_line(r);
  EXPECT_NE(r.out.find("outside the world of 2 ranks"), std::string::npos) << r.out;
  one_line(run(kRun + "--nproc 2 --rank 1"));
  // Rank 1 of a job whose master never comes: fails at the timeout, naming the address.
  const auto started = std::chrono::steady_clock::now();
  r = run(kRun + "--world-size 2 --rank 1 --master-addr 127.0.0.1 --master-port 9 --dist-timeout 3");
  one_line(r);
  EXPECT_NE(r.out.find("127.0.0.1:9"), std::string::npos) << r.out;
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), 30);
  // A port already taken: rank 0 cannot listen.
  const int port = pick_port() + 3;
  const pid_t holder =
      spawn(kRun + "--epochs 50 --world-size 2 --rank 0 --dist-timeout 20 --master-port " + std::to_string(port),
            path("holder.log"));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  r = run(kRun + "--world-size 2 --rank 0 --dist-timeout 3 --master-port " + std::to_string(port));
  one_line(r);
  EXPECT_NE(r.out.find("in use"), std::string::npos) << r.out;
  kill(holder, SIGKILL);
  waitpid(holder, nullptr, 0);
  // A resume folder whose checkpoint is not one: both ranks find out, and the error shows once
  // (after the launcher's own line), not again as "rank 0 exited with status 1".
  fs::create_directories(path("junk"));
  std::ofstream(path("junk/checkpoint.pt")) << "junk\n";
  std::ofstream(path("junk/recipe.yaml")) << "pattern: 4x1\ntarget_sparsity: 0.5\n";
  r = run(kRun + "--nproc 2 --threads 2 --resume " + path("junk"));
  EXPECT_EQ(r.status, 1) << r.out;
  size_t errors = 0;
  for (size_t at = r.out.find("spruce: error:"); at != std::string::npos; at = r.out.find("spruce: error:", at + 1))
    ++errors;
  EXPECT_EQ(errors, 1u) << r.out;
  EXPECT_NE(r.out.find("junk/checkpoint.pt: not a checkpoint ("), std::string::npos) << r.out;
}
