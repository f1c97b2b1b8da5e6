// Checkpoints that keep the masks, and exports that `spruce inspect` reads.
//
//   <dir>/checkpoint.pt         model, optimizer, pruner (step and masks) and epoch, one torch archive
//   <dir>/masks.safetensors     one U8 mask per pruned weight (1 kept, 0 pruned), named like the weight
//   <dir>/model.safetensors     every parameter as F32; metadata names the model, recipe and sparsity
//
// Every file is written to a temporary name and renamed, so a reader never sees a partial file.
#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <cstdint>
#include <map>
#include <string>

#include "spruce/torch/pruner.hpp"

namespace spruce::torch {

struct TrainPosition {
  int64_t epoch = 0;  // epochs completed
  int64_t step = 0;   // optimizer steps completed
};

// A training loop's own state, kept verbatim: a text (e.g. JSON) and named tensors (e.g. a weight
// average).
struct LoopState {
  std::string text;
  std::map<std::string, ::torch::Tensor> tensors;
};

// `optimizer`, `pruner` and `loop` may be null (not saved).
void save_checkpoint(const std::string& path, ::torch::nn::Module& model, const ::torch::optim::Optimizer* optimizer,
                     const Pruner* pruner, TrainPosition position, const LoopState* loop = nullptr);

// What to do when the checkpoint holds no masks for the pruner.
enum class MaskSource {
  Checkpoint,  // masks must come from the checkpoint; sparse weights without them are an error
  LockZeros,   // pattern lock: without masks, the weights' existing zeros become the masks
};
// Restores the model, and the optimizer and pruner when given. Resuming never silently loses
// sparsity: a pruner without masks in the checkpoint either locks the zeros or throws
// spruce::Error (data) naming the layer and the fix; so does training (an optimizer given) without a
// pruner from a pruned run's checkpoint.
// `loop`, when given, gets the loop state saved (empty if none was).
TrainPosition load_checkpoint(const std::string& path, ::torch::nn::Module& model, ::torch::optim::Optimizer* optimizer,
                              Pruner* pruner, MaskSource source = MaskSource::Checkpoint, LoopState* loop = nullptr);

// Refuses a tensor read from a checkpoint, with a spruce::Error (data) that begins with `what`
// (e.g. "run/checkpoint.pt: model.fc1.weight"), when it is undefined or not a strided tensor,
// addresses memory outside its storage (LibTorch trusts a file's offsets and strides), differs
// from `like` in shape or dtype (when `like` is defined), or, where `finite`, holds NaN or infinity.
void require_sound_tensor(const ::torch::Tensor& t, const std::string& what, const ::torch::Tensor& like = {},
                          bool finite = true);

// The loop state alone (empty if none was saved), e.g. to check a run's settings before restoring
// anything. Throws spruce::Error (data) when `path` is not a checkpoint.
LoopState read_loop_state(const std::string& path);

// Copies same-named F32 tensors of a safetensors file (e.g. from `spruce prune`) into the model's
// parameters. Throws spruce::Error (data) for a missing name or a shape mismatch.
void load_safetensors_weights(const std::string& path, ::torch::nn::Module& model);

void export_safetensors(const std::string& path, ::torch::nn::Module& model,
                        const std::map<std::string, std::string>& metadata);
void export_masks(const std::string& path, const Pruner& pruner);

}  // namespace spruce::torch
