// Checkpoints of a distillation, so that a long run survives an interruption or spans several
// sittings: the student, the optimizer, the pruner (masks and input statistics), the held-out
// checks so far and the loop's own state, in one file written atomically, DIR/checkpoint.pt.
// A resumed run gives the student an uninterrupted one would.
#pragma once
#include <torch/optim/optimizer.h>
#include <torch/types.h>

#include <optional>
#include <string>
#include <vector>

#include "minilm/distill.hpp"

namespace minilm {

struct DistillProgress {
  int64_t step = 0;                     // steps completed
  double seconds = 0;                   // time spent on them, over every sitting
  double loss_sum = 0, cosine_sum = 0;  // the running window since the last held-out check
  int64_t window = 0;
  std::vector<FidelityPoint> history;
  std::string crop_rng;                             // the crop generator's state
  ::torch::Tensor torch_rng;                        // LibTorch's CPU generator (dropout)
  std::vector<::torch::Tensor> averaged;            // the weight average, once started
  std::optional<ChannelOrderReport> channel_order;  // the first sitting's, with permute_channels
};

// A checksum of the files in a teacher's folder that the student and a saved model take from it.
std::string teacher_checksum(const std::string& teacher_dir);

// The settings a resumed run must share with the run it continues (JSON), the teacher's checksum
// included.
std::string distill_fingerprint(const DistillOptions& options, const Corpus& corpus, const std::string& teacher);

void save_distill_checkpoint(const std::string& dir, SentenceEncoder& student,
                             const ::torch::optim::Optimizer& optimizer, const spruce::torch::Pruner* pruner,
                             const DistillProgress& progress, const std::string& fingerprint);

// Restores the student, optimizer and pruner in place. Throws spruce::Error: usage when DIR holds
// no checkpoint or one made with other settings (naming the first that differs), data when the
// file is not a checkpoint of this run or holds numbers no run gives. A setting that an older
// checkpoint lacks was added since, and is taken at its value in `defaults` (a fingerprint of the
// default options), what runs then did.
DistillProgress load_distill_checkpoint(const std::string& dir, SentenceEncoder& student,
                                        ::torch::optim::Optimizer& optimizer, spruce::torch::Pruner* pruner,
                                        const std::string& fingerprint, const std::string& defaults);

}  // namespace minilm
