#include "spruce/torch/distributed.hpp"

#include <algorithm>

#include <glog/logging.h>
#include <torch/utils.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <cstdlib>
#include <sstream>
#include <thread>

#include "spruce/error.hpp"

namespace spruce::torch {
namespace {

std::string first_line(const std::string& s) {
  std::string line = s.substr(0, s.find('\n'));
  return line.size() > 200 ? line.substr(0, 200) + "..." : line;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 0 || n > 1 << 20)
    usage_error(std::string("environment variable ") + name + "=" + in_quotes(v) + " is not a non-negative integer");
  return int(n);
}

}  // namespace

DistributedOptions distributed_options_from_env(DistributedOptions o) {
  o.world_size = env_int("WORLD_SIZE", o.world_size);
  o.rank = env_int("RANK", o.rank);
  o.master_port = env_int("MASTER_PORT", o.master_port);
  if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr) o.master_addr = addr;
  return o;
}

void check_distributed_options(const DistributedOptions& o) {
  if (o.world_size < 1) usage_error("--world-size (or WORLD_SIZE) must be at least 1");
  if (o.rank < 0 || o.rank >= o.world_size)
    usage_error("--rank (or RANK) " + std::to_string(o.rank) + " is outside the world of " +
                std::to_string(o.world_size) + " ranks; ranks run from 0 to " + std::to_string(o.world_size - 1));
  if (o.master_port < 1 || o.master_port > 65535)
    usage_error("--master-port (or MASTER_PORT) " + std::to_string(o.master_port) + " is not a TCP port (1-65535)");
  if (o.timeout.count() < 1) usage_error("the distributed timeout must be at least 1 second");
}

struct DataParallel::State {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> group;

  // Runs a collective and waits for it; any failure is one line that names the missing ranks.
  void wait(const c10::intrusive_ptr<c10d::Work>& work, const DataParallel& self, const char* what) const {
    try {
      work->wait();
    } catch (const std::exception& e) {
      data_error("rank " + std::to_string(self.rank()) + ": " + what + " failed: " + missing_ranks(self) +
                 " (timeout " + std::to_string(self.options().timeout.count()) + " s; gloo: " + first_line(e.what()) +
                 ")");
    }
  }

  // After a failed collective every surviving rank checks in at the store; the ranks that do not
  // within a few seconds are the ones that stopped or hang. Without the store, rank 0 is gone.
  std::string missing_ranks(const DataParallel& self) const {
    const auto key = [](int r) { return "spruce/failed/" + std::to_string(r); };
    try {
      store->setTimeout(std::chrono::seconds(5));
      store->add(key(self.rank()), 1);
      std::vector<int> missing;
      for (int attempt = 0; attempt < 30; ++attempt) {
        missing.clear();
        for (int r = 0; r < self.world_size(); ++r)
          if (!store->check({key(r)})) missing.push_back(r);
        if (missing.empty()) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (missing.empty()) return "every rank is still running; a network fault?";
      std::string names;
      for (int r : missing) names += (names.empty() ? "" : ", ") + std::to_string(r);
      return (missing.size() == 1 ? "rank " : "ranks ") + names + " stopped or did not answer";
    } catch (const std::exception&) {
      return "rank 0, which hosts the rendezvous at " + self.options().master_addr + ":" +
             std::to_string(self.options().master_port) + ", stopped";
    }
  }
};

DataParallel::DataParallel(const DistributedOptions& options) : options_(options), state_(std::make_unique<State>()) {
  check_distributed_options(options_);
  // c10d logs each socket failure through glog, beside the one line spruce prints for it.
  FLAGS_minloglevel = google::GLOG_FATAL;
  const std::string where = options_.master_addr + ":" + std::to_string(options_.master_port);
  c10d::TCPStoreOptions store_options;
  store_options.port = uint16_t(options_.master_port);
  store_options.isServer = options_.rank == 0;
  store_options.numWorkers = size_t(options_.world_size);
  store_options.waitWorkers = false;
  store_options.timeout = options_.timeout;
  try {
    state_->store = c10::make_intrusive<c10d::TCPStore>(options_.master_addr, store_options);
  } catch (const std::exception& e) {
    const std::string why = first_line(e.what());
    if (options_.rank == 0 && why.find("in use") != std::string::npos)
      data_error("rank 0 cannot listen on " + where + ": the port is in use; pick another --master-port");
    data_error("rank " + std::to_string(options_.rank) + " cannot " +
               (options_.rank == 0 ? "listen on " : "reach the master at ") + where + " within " +
               std::to_string(options_.timeout.count()) + " s (" + why + "); check --master-addr and --master-port");
  }
  auto gloo_options = c10d::ProcessGroupGloo::Options::create(options_.timeout);
  // Bind where the master is reachable from: loopback for a local job, the default interface else.
  const bool local = options_.master_addr == "127.0.0.1" || options_.master_addr == "localhost";
  gloo_options->devices.push_back(local ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                        : c10d::ProcessGroupGloo::createDefaultDevice());
  gloo_options->threads = 1;
  try {
    state_->group =
        c10::make_intrusive<c10d::ProcessGroupGloo>(state_->store, options_.rank, options_.world_size, gloo_options);
  } catch (const std::exception& e) {
    data_error("rank " + std::to_string(options_.rank) + ": the " + std::to_string(options_.world_size) +
               " ranks did not all join at " + where + " within " + std::to_string(options_.timeout.count()) +
               " s; start every rank with the same --world-size (gloo: " + first_line(e.what()) + ")");
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::broadcast_parameters(::torch::nn::Module& module) {
  ::torch::NoGradGuard no_grad;
  std::vector<at::Tensor> tensors;
  for (auto& p : module.parameters()) tensors.push_back(p.data());
  for (auto& b : module.buffers()) tensors.push_back(b.data());
  for (auto& t : tensors) {
    std::vector<at::Tensor> one{t};
    state_->wait(state_->group->broadcast(one), *this, "broadcasting rank 0's weights");
  }
}

void DataParallel::average_gradients(::torch::nn::Module& module, double share) {
  const auto started = std::chrono::steady_clock::now();
  ::torch::NoGradGuard no_grad;
  std::vector<at::Tensor> grads;
  for (auto& p : module.parameters()) {
    if (!p.requires_grad()) continue;
    // Every rank sends the same tensors, even one whose batch share was empty.
    if (!p.grad().defined()) p.mutable_grad() = ::torch::zeros_like(p);
    grads.push_back(p.mutable_grad());
  }
  // Buckets of whole gradients, each flattened into one tensor, all in flight at once.
  std::vector<std::vector<at::Tensor>> buckets;
  int64_t filled = 0;
  for (auto& g : grads) {
    if (buckets.empty() || (filled > 0 && filled + int64_t(g.nbytes()) > options_.bucket_bytes)) {
      buckets.emplace_back();
      filled = 0;
    }
    buckets.back().push_back(g);
    filled += int64_t(g.nbytes());
  }
  gradient_bytes_ = 0;
  for (auto& g : grads) gradient_bytes_ += int64_t(g.nbytes());
  std::vector<at::Tensor> flats;
  std::vector<c10::intrusive_ptr<c10d::Work>> works;
  for (auto& bucket : buckets) {
    std::vector<at::Tensor> flat_views;
    for (auto& g : bucket) flat_views.push_back(g.reshape({-1}));
    std::vector<at::Tensor> flat{::torch::cat(flat_views).mul_(share)};
    works.push_back(state_->group->allreduce(flat));
    flats.push_back(flat[0]);
  }
  for (size_t b = 0; b < buckets.size(); ++b) {
    state_->wait(works[b], *this, "all-reducing gradients");
    int64_t offset = 0;
    for (auto& g : buckets[b]) {
      g.copy_(flats[b].narrow(0, offset, g.numel()).view_as(g));
      offset += g.numel();
    }
  }
  gradient_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

void DataParallel::all_reduce_sum(std::vector<double>& values) {
  std::vector<at::Tensor> t{::torch::tensor(values, ::torch::kFloat64)};
  state_->wait(state_->group->allreduce(t), *this, "summing metrics");
  const ::torch::Tensor sums = t[0].contiguous();
  std::copy_n(sums.data_ptr<double>(), values.size(), values.begin());  // sparsegpt's Gram matrices: millions
}

void DataParallel::require_identical(const std::string& what, uint64_t value) {
  std::vector<at::Tensor> mine{::torch::tensor({int64_t(value)}, ::torch::kInt64)};
  std::vector<std::vector<at::Tensor>> all(1);
  for (int r = 0; r < world_size(); ++r) all[0].push_back(::torch::empty({1}, ::torch::kInt64));
  state_->wait(state_->group->allgather(all, mine), *this, "comparing checksums");
  std::ostringstream seen;
  bool differ = false;
  for (int r = 0; r < world_size(); ++r) {
    const auto v = uint64_t(all[0][size_t(r)].item<int64_t>());
    differ |= v != value;
    seen << (r ? ", " : "") << "rank " << r << " " << std::hex << v << std::dec;
  }
  if (differ)
    data_error(what + " differ between ranks (" + seen.str() +
               "); every rank must run the same spruce, recipe, seed and data");
}

void DataParallel::barrier() { state_->wait(state_->group->barrier(), *this, "waiting at a barrier"); }

}  // namespace spruce::torch
