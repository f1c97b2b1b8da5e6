#include "common/progress.hpp"

#include <algorithm>
#include <cstdio>
#include <ostream>
#include <string>

namespace spruce::apps {

void ProgressLine::update(int64_t epoch, int64_t step, double loss, double accuracy, double sparsity) {
  if (!redraw_) return;
  constexpr int kWidth = 24;
  const int filled = int(kWidth * step / std::max<int64_t>(1, steps_));
  char line[200];
  std::snprintf(line, sizeof line, "\repoch %lld/%lld [%s%s] step %lld/%lld  loss %.4f  acc %5.2f%%  sparsity %5.2f%% ",
                (long long)epoch, (long long)epochs_, std::string(filled, '#').c_str(),
                std::string(kWidth - filled, '.').c_str(), (long long)step, (long long)steps_, loss, 100 * accuracy,
                100 * sparsity);
  out_ << line << std::flush;
}

void ProgressLine::end_epoch(const EpochLog& e) {
  char line[200];
  std::snprintf(line, sizeof line,
                "%sepoch %lld/%lld  loss %.4f  train acc %5.2f%%  test acc %5.2f%%  sparsity %5.2f%%  %.1f s\n",
                redraw_ ? "\r\033[K" : "", (long long)e.epoch, (long long)epochs_, e.loss, 100 * e.train_accuracy,
                100 * e.test_accuracy, 100 * e.sparsity, e.seconds);
  out_ << line << std::flush;
}

}  // namespace spruce::apps
