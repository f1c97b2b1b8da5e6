// spruce train --dataset fashion-mnist --model mlp|cnn [--pattern P --sparsity S | --recipe R.yaml]
//              --epochs N --seed N [--save DIR] [--json FILE] [--threads N]
// Its work, in spruce-torch; the flags and the checks that need no LibTorch are in cmd_train.cpp.
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>

#include "cmd_train.hpp"
#include "fashion_mnist/models.hpp"
#include "fashion_mnist/trainer.hpp"
#include "flags.hpp"
#include "json_output.hpp"
#include "launch.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/idx.hpp"
#include "spruce/memory.hpp"
#include "spruce/safetensors.hpp"
#include "spruce/torch/checkpoint.hpp"
#include "spruce/torch/distributed.hpp"
#include "spruce/torch/threads.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

// The table's and the JSON's pattern: a recipe's, resumed or given, when all its groups share one.
std::string pattern_label(const fashion_mnist::TrainOptions& o) {
  if (o.pattern) return o.pattern->str();
  if (!o.recipe) return "dense";
  for (const auto& g : o.recipe->groups)
    if (g.pattern != o.recipe->groups[0].pattern) return "recipe";
  return o.recipe->groups[0].pattern.str();
}

}  // namespace

void run_train(TrainArgs& a) {
  check_train_args(a);
  a.options.progress_bar = !a.no_progress;
  // Outputs are checked before the run too, by the process that writes them (rank 0, or the launcher).
  auto check_outputs = [&] {
    check_not_input("--json", a.json, a.options.init_from, "--init, the starting weights");
    check_not_input("--json", a.json, a.options.resume_from, "the checkpoint to resume (--resume)");
    check_not_inside("--json", a.json, a.teacher_dir, "the teacher's run (--teacher)", kTrainRunFiles);
    check_not_inside("--json", a.json, a.options.data_dir, "the dataset (--data)", kFashionMnistFiles);
    check_not_input("--json", a.json, a.recipe, "--recipe, the recipe");
    check_not_output("--json", a.json, a.options.save_dir, "--save", kTrainRunFiles);
    std::error_code same;
    if (!a.teacher_dir.empty() && !a.options.save_dir.empty() &&
        std::filesystem::equivalent(a.options.save_dir, a.teacher_dir, same))
      usage_error("--save " + in_quotes(a.options.save_dir) +
                  " is the teacher's run (--teacher), which the output would replace; name another folder");
    check_output_file("--json", a.json, "JSON");
    if (a.options.save_dir.empty()) return;
    make_output_folder("--save", a.options.save_dir,
                       {"checkpoint.pt", "model.safetensors", "masks.safetensors", "recipe.yaml"});
    // Held to the end (by the launcher for its ranks), and taken before the check below: two runs
    // started at once both found the folder free, and left one's checkpoint beside the other's masks.
    if (!std::getenv(kLauncherHoldsLocks)) lock_folder("--save", a.options.save_dir);
    // A saved run is replaced only when asked: a repeated command line must not cost a long run.
    if (!a.overwrite && std::filesystem::exists(a.options.save_dir + "/checkpoint.pt") &&
        !(!a.resume.empty() && std::filesystem::equivalent(a.resume, a.options.save_dir, same)))
      usage_error("--save " + in_quotes(a.options.save_dir) +
                  " already holds a run (checkpoint.pt); continue it with --resume, add --overwrite to replace "
                  "it, or name another folder");
  };
  const int cores = int(std::max(1u, std::thread::hardware_concurrency()));
  if (a.nproc > 1) {
    if (a.world_size >= 0 || a.rank >= 0 || !a.master_addr.empty())
      usage_error("--nproc starts its own local ranks; drop --world-size, --rank and --master-addr");
    // Each rank is a process with its own LibTorch and its own copy of the data (peak resident
    // size, MLP and CNN alike: 0.3 GB for a few examples, 0.97 GB for all 70,000): ranks past the
    // memory would meet the OOM killer.
    const auto examples = uint64_t(a.options.train_limit > 0 ? a.options.train_limit : 60000) +
                          uint64_t(a.options.test_limit > 0 ? a.options.test_limit : 10000);
    const uint64_t per_rank = (384ull << 20) + examples * 10240, available = available_memory();
    if (available > 0 && uint64_t(a.nproc) * per_rank > available)
      usage_error("--nproc " + std::to_string(a.nproc) + " needs about " + fixed(double(a.nproc * per_rank) / 1e9, 1) +
                  " GB (each rank holds LibTorch and the data), and " + fixed(double(available) / 1e9, 1) +
                  " GB is available; start fewer ranks");
    LocalLaunch launch;
    launch.nproc = a.nproc;
    launch.master_port = std::max(a.master_port, 0);
    launch.threads_per_rank = a.threads > 0 ? a.threads : std::max(1, cores / a.nproc);
    auto temp_folder = [] {  // std::filesystem's own error names no path when TMPDIR is wrong
      std::error_code ec;
      const auto dir = std::filesystem::temp_directory_path(ec);
      if (ec) {
        const char* env = std::getenv("TMPDIR");
        usage_error("TMPDIR " + in_quotes(env ? env : "") + " is not a folder (the ranks' logs go there without " +
                    "--save): set it to one, or give --save");
      }
      return dir;
    };
    launch.log_dir = !a.options.save_dir.empty()
                         ? a.options.save_dir + "/logs"
                         : (temp_folder() / ("spruce-train-" + std::to_string(getpid()))).string();
    require_fashion_mnist(a.options.data_dir);  // inputs first: a refused run makes no --save folder
    // The weights too, as one rank would check them: a bad file is one line, not every rank's.
    for (const std::string* weights : {&a.options.init_from, &a.options.teacher})
      if (!weights->empty()) torch::load_safetensors_weights(*weights, *fashion_mnist::make_model(a.options.model));
    if (!a.options.resume_from.empty()) fashion_mnist::check_resume(a.options);
    check_outputs();
    std::cout.flush();
    const int status = launch_local_ranks(launch);
    // Logs in a temporary folder matter only when a rank failed: its error names its log.
    std::error_code ignored;
    if (status == 0 && a.options.save_dir.empty()) std::filesystem::remove_all(launch.log_dir, ignored);
    std::exit(status);
  }
  torch::DistributedOptions d = torch::distributed_options_from_env({});
  if (a.world_size >= 0) d.world_size = a.world_size;
  if (a.rank >= 0) d.rank = a.rank;
  if (a.master_port >= 0) d.master_port = a.master_port;
  if (!a.master_addr.empty()) d.master_addr = a.master_addr;
  d.timeout = std::chrono::seconds(a.dist_timeout);
  torch::check_distributed_options(d);
  require_fashion_mnist(a.options.data_dir);  // before the header: a missing dataset is the only line
  if (d.rank <= 0) check_outputs();
  const int threads = a.threads > 0 ? a.threads : cores;
  torch::set_training_threads(threads);
  std::unique_ptr<torch::DataParallel> group;
  if (d.distributed()) {
    group = std::make_unique<torch::DataParallel>(d);
    a.options.data_parallel = group.get();
  }
  const bool writer = d.rank == 0;  // other ranks print the same header into their logs
  std::ostringstream header;
  header << "spruce train: " << a.options.model << " on fashion-mnist, "
         << (a.options.recipe    ? "recipe " + a.recipe
             : a.options.pattern ? a.options.pattern->str() + " at " + percent(a.options.sparsity)
                                 : std::string("dense"))
         << ", " << a.options.epochs << " epochs, seed " << a.options.seed << ", " << threads << " threads"
         << (d.distributed() ? ", rank " + std::to_string(d.rank) + " of " + std::to_string(d.world_size) : "") << "\n";
  a.options.header = header.str();
  const fashion_mnist::TrainResult r = fashion_mnist::train(a.options, std::cerr);
  if (group)
    std::cerr << "rank " << d.rank << ": gradient all-reduce " << fixed(group->gradient_seconds(), 1) << " s of "
              << fixed(r.seconds, 1) << " s, " << fixed(double(group->gradient_bytes()) / 1e6, 1) << " MB per step\n";
  if (!writer) return;

  if (!r.report.layers.empty()) std::cout << '\n' << torch::format_report(r.report);
  Table table({"Model", "Sparsity Pattern", "Sparsity Ratio", "Dataset", "Accuracy", "Epochs", "Seconds"});
  table.add_row({a.options.model, pattern_label(a.options), percent(r.sparsity, 2), "Fashion-MNIST",
                 percent(r.test_accuracy, 2), std::to_string(r.epochs), fixed(r.seconds, 1)});
  std::cout << '\n';
  table.print(std::cout);
  if (!r.finished)
    std::cout << "\nstopped after epoch " << r.epochs << " of " << a.options.epochs << "; " << a.options.save_dir
              << "/checkpoint.pt holds the run: continue it with --resume " << a.options.save_dir << " --save "
              << a.options.save_dir << " and the same settings\n";
  else if (!a.options.save_dir.empty())
    std::cout << "\nsaved " << a.options.save_dir << "/{checkpoint.pt, model.safetensors"
              << (r.report.layers.empty() ? "" : ", masks.safetensors, recipe.yaml") << "}\n";
  else if (!a.resume.empty())  // --resume reads a run; only --save writes one
    std::cerr << "note: the resumed run was not saved, and " << a.resume
              << " is as it was; add --save (the same folder continues it there)\n";
  if (!a.json.empty()) {
    nlohmann::ordered_json j = {
        {"test_accuracy", r.test_accuracy}, {"sparsity", r.sparsity}, {"epochs", r.epochs}, {"seconds", r.seconds},
        {"model", a.options.model},         {"seed", a.options.seed}, {"steps", r.steps}};
    j["finished"] = r.finished;
    j["pattern"] = pattern_label(a.options);
    if (!a.teacher_dir.empty())
      j["distillation"] = {{"teacher", a.options.teacher},
                           {"weight", a.options.distill_weight},
                           {"temperature", a.options.distill_temperature}};
    j["history"] = nlohmann::ordered_json::array();
    for (const auto& e : r.history)
      j["history"].push_back({{"epoch", e.epoch},
                              {"loss", e.loss},
                              {"train_accuracy", e.train_accuracy},
                              {"test_accuracy", e.test_accuracy},
                              {"sparsity", e.sparsity},
                              {"seconds", e.seconds}});
    write_json(a.json, j);
  }
}

}  // namespace spruce::cli
