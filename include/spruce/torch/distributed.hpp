// Data-parallel training over LibTorch's own distributed engine: c10d's ProcessGroupGloo, with a
// TCPStore for the rendezvous, under torchrun's names (MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK).
//
//   DataParallel group(options);            // every rank; rank 0 hosts the store
//   group.broadcast_parameters(*model);     // rank 0's weights everywhere
//   per step: loss.backward(); group.average_gradients(*model, share); pruner...; optimizer.step();
//
// Every failure of a collective (a rank that died, or hung past the timeout) becomes one
// spruce::Error line; nothing waits forever.
#pragma once
#include <torch/nn/module.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace spruce::torch {

struct DistributedOptions {
  int world_size = 1;
  int rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::seconds timeout{120};  // the longest any rendezvous or collective may wait
  int64_t bucket_bytes = 25 << 20;    // gradients are all-reduced in buckets of about this size
  bool distributed() const { return world_size > 1; }
};

// torchrun's environment variables, where set, over `defaults`. Throws spruce::Error (usage) for
// a value that is not a number, or a rank outside [0, world_size).
DistributedOptions distributed_options_from_env(DistributedOptions defaults);
void check_distributed_options(const DistributedOptions& options);

class DataParallel {
 public:
  // Joins the group (rank 0 listens on master_addr:master_port). Throws spruce::Error (data) with
  // one line for a port in use, an unreachable master, or a rank that never arrives.
  explicit DataParallel(const DistributedOptions& options);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  const DistributedOptions& options() const { return options_; }

  // Rank 0's parameters and buffers, copied into every rank's.
  void broadcast_parameters(::torch::nn::Module& module);
  // Every rank's gradients, each scaled by `share` (this rank's fraction of the global batch),
  // summed over the ranks: the gradient of the global batch's mean loss. Bucketed all-reduce.
  void average_gradients(::torch::nn::Module& module, double share);
  // Element-wise sums over the ranks, in place (for losses and counts).
  void all_reduce_sum(std::vector<double>& values);
  // Throws spruce::Error (data) naming the ranks when `value` differs between ranks.
  void require_identical(const std::string& what, uint64_t value);
  void barrier();
  // Bytes of gradients each rank put into the last step's all-reduce.
  int64_t gradient_bytes() const { return gradient_bytes_; }
  // Seconds spent in average_gradients() so far (bucketing, all-reduce and copying back).
  double gradient_seconds() const { return gradient_seconds_; }

 private:
  struct State;
  DistributedOptions options_;
  std::unique_ptr<State> state_;
  double gradient_seconds_ = 0;
  int64_t gradient_bytes_ = 0;
};

}  // namespace spruce::torch
