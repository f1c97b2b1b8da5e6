// The training progress line the applications share (redrawn in place on a terminal, one line
// per epoch else), and the per-epoch figures it prints.
#pragma once
#include <cstdint>
#include <iosfwd>

namespace spruce::apps {

struct EpochLog {
  int64_t epoch = 0;
  double loss = 0, train_accuracy = 0, test_accuracy = 0, sparsity = 0, seconds = 0;
};

class ProgressLine {
 public:
  ProgressLine(std::ostream& out, bool redraw, int64_t epochs, int64_t steps_per_epoch)
      : out_(out), redraw_(redraw), epochs_(epochs), steps_(steps_per_epoch) {}
  void update(int64_t epoch, int64_t step_in_epoch, double loss, double accuracy, double sparsity);
  void end_epoch(const EpochLog& log);

 private:
  std::ostream& out_;
  bool redraw_;
  int64_t epochs_, steps_;
};

}  // namespace spruce::apps
