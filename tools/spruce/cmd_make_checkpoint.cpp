// spruce make-checkpoint -o FILE --seed N: a small random checkpoint, for demos and tests.
#include <iostream>
#include <random>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/safetensors.hpp"

namespace spruce::cli {
namespace {

struct MakeArgs {
  std::string output;
  uint64_t seed = 42;
};

Tensor random_tensor(const std::string& name, std::vector<int64_t> shape, std::mt19937_64& rng, float scale) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  std::vector<float> v(static_cast<size_t>(n));
  std::normal_distribution<float> dist(0.f, scale);
  for (auto& x : v) x = dist(rng);
  return Tensor::from_f32(name, std::move(shape), v.data());
}

void run(const MakeArgs& a) {
  std::mt19937_64 rng(a.seed);
  SafetensorsFile f;
  f.metadata = {{"format", "pt"}, {"source", "spruce make-checkpoint --seed " + std::to_string(a.seed)}};
  f.tensors.push_back(random_tensor("conv1.weight", {32, 1, 3, 3}, rng, 0.3f));
  f.tensors.push_back(random_tensor("conv1.bias", {32}, rng, 0.1f));
  f.tensors.push_back(random_tensor("conv2.weight", {64, 32, 3, 3}, rng, 0.06f));
  f.tensors.push_back(random_tensor("fc1.weight", {1024, 784}, rng, 0.036f));
  f.tensors.push_back(random_tensor("fc1.bias", {1024}, rng, 0.01f));
  f.tensors.push_back(random_tensor("fc2.weight", {1024, 1024}, rng, 0.031f));
  f.tensors.push_back(random_tensor("fc2.bias", {1024}, rng, 0.01f));
  f.tensors.push_back(random_tensor("head.weight", {10, 1024}, rng, 0.031f));
  f.tensors.push_back(random_tensor("head.bias", {10}, rng, 0.01f));
  Tensor steps;
  steps.name = "train.step";
  steps.dtype = DType::I64;
  steps.shape = {1};
  steps.bytes = {0x10, 0x27, 0, 0, 0, 0, 0, 0};  // 10000
  f.tensors.push_back(steps);
  // What it will write, then (as prune does) "wrote" once written: the line that named the output
  // came before a write that could still fail.
  std::cout << "make-checkpoint: " << f.tensors.size() << " tensors, seed " << a.seed << "\n";
  require_standard_output();  // a run that fails replaces nothing
  write_safetensors(a.output, f);
  std::cout << "wrote " << a.output << "\n";
}

void add(CLI::App& app) {
  auto args = std::make_shared<MakeArgs>();
  auto* cmd = app.add_subcommand("make-checkpoint",
                                 "Write a small random MLP+CNN checkpoint from a fixed seed (for demos and tests)");
  cmd->add_option("-o,--output", args->output, "Output .safetensors file")->required();
  cmd->add_option("--seed", args->seed, "Random seed")->check(uint_in(0, UINT32_MAX))->capture_default_str();
  cmd->callback([args] { run(*args); });
}

const Command reg{"make-checkpoint", add};

}  // namespace
}  // namespace spruce::cli
