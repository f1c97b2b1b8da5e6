// How much a row order could help 4x1 blocks: the share of |W| that a 4x1 mask at 80% keeps in
// some all-MiniLM-L6-v2 matrices, in the original row order and after a Tetris-style search
// (Ji et al. 2018): with the mask fixed, greedy exchanges of two rows of different groups of 4
// while one gains; then the mask is chosen again; until the kept share stops rising.
// Throwaway measurement, not part of the build (docs/results-minilm.md, "4x1 @ 80%"):
//   g++ -std=c++20 -O2 -march=native -Iinclude bench/experiments/block_row_order_gain.cpp \
//     build/src/io/libspruce_io.a build/src/core/libspruce_core.a $(pkg-config --libs yaml-cpp re2) -o /tmp/rows
//   /tmp/rows third_party/all-MiniLM-L6-v2/model.safetensors 2 32    # layer 2, rows move within 32
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include "spruce/safetensors.hpp"

namespace {

constexpr int kRows = 4;  // 4x1 blocks
constexpr double kSparsity = 0.8;

// The |W| a mask of the top (1 - kSparsity) blocks keeps with the rows in `order`; sets `mask`.
double kept_of(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<int64_t>& order,
               std::vector<uint8_t>& mask) {
  const int64_t groups = rows / kRows;
  std::vector<float> blocks(static_cast<size_t>(groups * cols));
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t c = 0; c < cols; ++c) {
      float s = 0;
      for (int r = 0; r < kRows; ++r) s += w[static_cast<size_t>(order[g * kRows + r] * cols + c)];
      blocks[static_cast<size_t>(g * cols + c)] = s;
    }
  std::vector<size_t> rank(blocks.size());
  std::iota(rank.begin(), rank.end(), size_t{0});
  const auto keep = static_cast<size_t>(std::llround((1 - kSparsity) * double(blocks.size())));
  std::partial_sort(rank.begin(), rank.begin() + keep, rank.end(),
                    [&](size_t a, size_t b) { return blocks[a] > blocks[b] || (blocks[a] == blocks[b] && a < b); });
  mask.assign(blocks.size(), 0);
  double kept = 0;
  for (size_t i = 0; i < keep; ++i) mask[rank[i]] = 1, kept += blocks[rank[i]];
  return kept;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.safetensors LAYER SEGMENT\n", argv[0]);
    return 2;
  }
  const auto file = spruce::read_safetensors(argv[1]);
  const std::string layer = argv[2];
  const int64_t segment_arg = std::atoll(argv[3]);
  for (const char* name : {"attention.self.query.weight", "attention.self.value.weight", "intermediate.dense.weight"}) {
    const auto* t = file.find("encoder.layer." + layer + "." + name);
    if (!t) return 1;
    auto w = t->to_f32();
    for (auto& x : w) x = std::fabs(x);
    const int64_t rows = t->shape[0], cols = t->shape[1];
    const int64_t segment = std::string(name).find("intermediate") != std::string::npos ? rows : segment_arg;
    const double total = std::accumulate(w.begin(), w.end(), 0.0);
    std::vector<int64_t> order(static_cast<size_t>(rows));
    std::iota(order.begin(), order.end(), int64_t{0});
    std::vector<uint8_t> mask;
    const double before = kept_of(w, rows, cols, order, mask);
    double kept = before, best_gain = 0;
    for (int round = 0; round < 8; ++round) {
      for (int pass = 0; pass < 10; ++pass) {
        bool swapped = false;
        for (int64_t a = 0; a < rows; ++a)
          for (int64_t b = a + 1; b < rows; ++b) {
            const int64_t ga = a / kRows, gb = b / kRows;
            if (ga == gb || a / segment != b / segment) continue;
            const float* wa = &w[static_cast<size_t>(order[a] * cols)];
            const float* wb = &w[static_cast<size_t>(order[b] * cols)];
            const uint8_t* ma = &mask[static_cast<size_t>(ga * cols)];
            const uint8_t* mb = &mask[static_cast<size_t>(gb * cols)];
            float gain = 0;  // what swapping rows a and b gains under the fixed mask
            for (int64_t c = 0; c < cols; ++c) gain += (float(ma[c]) - float(mb[c])) * (wb[c] - wa[c]);
            best_gain = std::max(best_gain, double(gain));
            if (gain > 1e-6f) std::swap(order[a], order[b]), swapped = true;
          }
        if (!swapped) break;
      }
      const double now = kept_of(w, rows, cols, order, mask);
      if (now <= kept * (1 + 1e-7)) break;
      kept = now;
    }
    std::vector<float> sorted = w;
    const auto keep = static_cast<size_t>(std::llround((1 - kSparsity) * double(sorted.size())));
    std::nth_element(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(keep), sorted.end(),
                     std::greater<float>());
    const double unstructured =
        std::accumulate(sorted.begin(), sorted.begin() + static_cast<std::ptrdiff_t>(keep), 0.0);
    std::printf("%-28s 4x1 @ 80%% keeps %.4f -> %.4f of |W| (unstructured 80%%: %.4f; %.0f%% of the gap closed)%s\n",
                name, before / total, kept / total, unstructured / total,
                100 * (kept - before) / (unstructured - before), best_gain > 0 ? "" : "; no exchange gains");
  }
}
