// Building the kernel-side strip-CSR weights from dense pruned weights.
#include <algorithm>
#include <string>

#include "kernel.hpp"
#include "spruce/error.hpp"

namespace spruce::kernels {
namespace {

template <typename T>
StripWeights<T> build(MatrixView<const T> w, int h, int kg, bool quads = false) {
  if (h < 1 || h > 64) usage_error("strip height must be 1..64, not " + std::to_string(h));
  StripWeights<T> s;
  s.h = h;
  s.kg = kg;
  s.rows = w.rows;
  s.cols = w.cols;
  const int64_t strips = (w.rows + h - 1) / h;
  s.ptr.assign(size_t(strips + 1), 0);
  std::vector<int32_t> cols;
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t r0 = st * h, r1 = std::min(w.rows, r0 + h);
    cols.clear();
    for (int64_t c = 0; c < w.cols; ++c)
      for (int64_t r = r0; r < r1; ++r)
        if (w(r, c) != T(0)) {
          if (!quads) cols.push_back(int32_t(c));
          else if (cols.empty() || cols.back() < c / 4 * 4)
            for (int64_t t = c / 4 * 4; t < c / 4 * 4 + 4; ++t) cols.push_back(int32_t(t));
          break;
        }
    const size_t used = cols.size();
    while (cols.size() % size_t(kg)) cols.push_back(cols.empty() ? 0 : cols.back());
    const size_t base = s.k.size();
    s.k.insert(s.k.end(), cols.begin(), cols.end());
    s.w.resize(s.k.size() * size_t(h), T(0));
    for (size_t j = 0; j < used; ++j) {
      const size_t g = j / size_t(kg), t = j % size_t(kg);
      for (int64_t r = r0; r < r1; ++r)
        if (cols[j] < w.cols)
          s.w[(base / size_t(kg) + g) * size_t(kg * h) + size_t(r - r0) * size_t(kg) + t] = w(r, cols[j]);
    }
    s.ptr[size_t(st + 1)] = int64_t(s.k.size());
  }
  return s;
}

}  // namespace

StripWeights<float> make_strips(MatrixView<const float> w, int h) { return build(w, h, 1); }

StripWeights<int8_t> make_strips(MatrixView<const int8_t> w, int h, bool quads) {
  auto s = build(w, h, 4, quads);
  s.wsum.assign(size_t(w.rows), 0);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) s.wsum[size_t(r)] += w(r, c);
  return s;
}

StripWeights<int8_t> make_nm8(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s;
  s.h = 16;
  s.kg = 8;
  s.rows = w.rows;
  s.cols = w.cols;
  const int64_t panels = (w.rows + 15) / 16, q = (w.cols + 7) / 8;
  s.w.assign(size_t(panels * q * 64), 0);
  s.sel.assign(s.w.size(), 0);
  s.wsum.assign(size_t(w.rows), 0);
  for (int64_t p = 0; p <= panels; ++p) s.ptr.push_back(p * q);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t o = 0; o < q; ++o) {
      const size_t base = size_t(((r / 16 * q + o) * 16 + r % 16) * 4);
      int used = 0;
      for (int64_t c = o * 8; c < std::min(w.cols, o * 8 + 8); ++c) {
        if (w(r, c) == 0) continue;
        if (used == 4) usage_error("make_nm8: row " + std::to_string(r) + " has more than 4 nonzeros in input channels " + std::to_string(o * 8) + ".." + std::to_string(o * 8 + 7));
        s.w[base + size_t(used)] = w(r, c);
        s.sel[base + size_t(used)] = uint8_t(c - o * 8);
        s.wsum[size_t(r)] += w(r, c);
        ++used;
      }
    }
  return s;
}

int64_t xt_ld(DType d, int64_t m, Layout l, int64_t k) {
  if (l == Layout::Narrow) return 4;
  if (l == Layout::Rows) {  // the stride between m rows
    int64_t ld = round_up(std::max<int64_t>(k, 1), 8);
    if ((ld / 64) % 2 == 0) ld += 64;
    return ld;
  }
  const int64_t es = d == DType::F32 || l == Layout::Quads ? 4 : 1;
  int64_t ld = es == 4 ? round_up(std::max<int64_t>(m, 1), 16) : round_up(std::max<int64_t>(m, 1), u8_chunk(m));
  // An even number of cache lines between xt rows makes the rows of one kernel step collide in a
  // few cache sets (at M = 1024 or 2048, all in 2 of 64 L1 sets). Pad to an odd line count.
  if ((ld * es / 64) % 2 == 0) ld += 64 / es;
  return ld;
}

size_t xt_bytes(DType d, int64_t m, int64_t k, Layout l) {
  const int64_t ld = xt_ld(d, m, l, k);
  if (l == Layout::Rows) return size_t(m * ld);
  if (l == Layout::Quads) return size_t((k + 3) / 4 * ld * 4);
  return size_t(k * ld * (d == DType::F32 ? 4 : 1));
}

int preferred_h(DType d, int block_rows) {
  if (d == DType::S8) return block_rows % 4 == 0 ? 4 : 1;
  for (int h : {16, 8, 4, 2})
    if (block_rows % h == 0) return h;
  return 1;
}

}  // namespace spruce::kernels
