// Packing dense pruned weights into each WeightFormat (see kernel.hpp for the layouts), and the
// strides of the packed activations.
#include <algorithm>
#include <string>
#include <type_traits>

#include "spruce/error.hpp"
#include "weight_formats.hpp"

namespace spruce::kernels {
namespace {

// An empty packing of W's shape with tile h x kg, for the builders below to fill.
template <typename T>
StripWeights<T> shaped(MatrixView<const T> w, int h, int kg) {
  StripWeights<T> s;
  s.h = h;
  s.kg = kg;
  s.rows = w.rows;
  s.cols = w.cols;
  return s;
}

template <typename T>
StripWeights<T> build(MatrixView<const T> w, int h, int kg, bool quads = false) {
  if (h < 1 || h > 64) usage_error("strip height must be 1..64, not " + std::to_string(h));
  StripWeights<T> s = shaped(w, h, kg);
  const int64_t strips = (w.rows + h - 1) / h;
  s.ptr.assign(size_t(strips + 1), 0);
  std::vector<int32_t> cols;
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t r0 = st * h, r1 = std::min(w.rows, r0 + h);
    cols.clear();
    for (int64_t c = 0; c < w.cols; ++c)
      for (int64_t r = r0; r < r1; ++r)
        if (w(r, c) != T(0)) {
          if (!quads)
            cols.push_back(int32_t(c));
          else if (cols.empty() || cols.back() < c / 4 * 4)
            for (int64_t t = c / 4 * 4; t < c / 4 * 4 + 4; ++t) cols.push_back(int32_t(t));
          break;
        }
    const size_t used = cols.size();
    // Padding repeats the last input channel (quads: the last quad), with zero weights.
    const size_t step = quads ? 4 : 1;
    while (cols.size() % size_t(kg))
      for (size_t t = 0; t < step; ++t) cols.push_back(cols.size() < step ? int32_t(t) : cols[cols.size() - step]);
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

StripWeights<int8_t> make_tile_blocks(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s = shaped(w, 16, 64);
  const int64_t strips = (w.rows + 15) / 16, blocks = (w.cols + 63) / 64;
  s.ptr.assign(size_t(strips + 1), 0);
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t r0 = st * 16, r1 = std::min(w.rows, r0 + 16);
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t c0 = b * 64, c1 = std::min(w.cols, c0 + 64);
      bool any = false;
      for (int64_t r = r0; r < r1 && !any; ++r)
        for (int64_t c = c0; c < c1 && !any; ++c) any = w(r, c) != 0;
      if (!any) continue;
      const size_t base = s.w.size();
      s.k.push_back(int32_t(c0));
      s.w.resize(base + 1024, 0);
      for (int64_t r = r0; r < r1; ++r)
        for (int64_t c = c0; c < c1; ++c) s.w[base + size_t((c - c0) / 4 * 64 + (r - r0) * 4 + (c - c0) % 4)] = w(r, c);
    }
    s.ptr[size_t(st + 1)] = int64_t(s.k.size());
  }
  return s;
}

StripWeights<int8_t> make_octets(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s = shaped(w, 16, 8);
  const int64_t panels = (w.rows + 15) / 16, q = (w.cols + 7) / 8;
  s.w.assign(size_t(panels * q * 64), 0);
  s.sel.assign(s.w.size(), 0);
  for (int64_t p = 0; p <= panels; ++p) s.ptr.push_back(p * q);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t o = 0; o < q; ++o) {
      const size_t base = size_t(((r / 16 * q + o) * 16 + r % 16) * 4);
      int used = 0;
      for (int64_t c = o * 8; c < std::min(w.cols, o * 8 + 8); ++c) {
        if (w(r, c) == 0) continue;
        if (used == 4)
          usage_error("the weights do not fit 4 of every 8: row " + std::to_string(r) +
                      " has more than 4 nonzeros in input channels " + std::to_string(o * 8) + ".." +
                      std::to_string(o * 8 + 7));
        s.w[base + size_t(used)] = w(r, c);
        s.sel[base + size_t(used)] = uint8_t(c - o * 8);
        ++used;
      }
    }
  return s;
}

// RowLanes: see WeightFormat.
StripWeights<int8_t> make_row_lanes(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s = shaped(w, 16, 4);
  std::vector<std::vector<int32_t>> quads(size_t(w.rows));
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; c += 4)
      for (int64_t t = c; t < std::min(w.cols, c + 4); ++t)
        if (w(r, t) != 0) {
          quads[size_t(r)].push_back(int32_t(c));
          break;
        }
  std::vector<int32_t> order(size_t(w.rows));
  for (size_t r = 0; r < order.size(); ++r) order[r] = int32_t(r);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return quads[size_t(a)].size() > quads[size_t(b)].size(); });
  const int64_t panels = (w.rows + 15) / 16;
  s.perm.assign(size_t(panels * 16), -1);
  std::copy(order.begin(), order.end(), s.perm.begin());
  s.ptr.assign(1, 0);
  for (int64_t p = 0; p < panels; ++p) {
    size_t steps = 0;
    for (int l = 0; l < 16; ++l)
      if (const int32_t r = s.perm[size_t(p * 16 + l)]; r >= 0) steps = std::max(steps, quads[size_t(r)].size());
    const size_t base = s.k.size();
    s.k.resize(base + steps * 16, 0);
    s.w.resize(s.k.size() * 4, 0);
    for (int l = 0; l < 16; ++l) {
      const int32_t r = s.perm[size_t(p * 16 + l)];
      const std::vector<int32_t> none;
      const std::vector<int32_t>& q = r >= 0 ? quads[size_t(r)] : none;
      for (size_t j = 0; j < steps; ++j) {
        const size_t e = base + j * 16 + size_t(l);
        s.k[e] = j < q.size() ? q[j] : q.empty() ? 0 : q.back();
        if (j < q.size())
          for (int64_t t = 0; t < 4 && q[j] + t < w.cols; ++t) s.w[e * 4 + size_t(t)] = w(r, q[j] + t);
      }
    }
    s.ptr.push_back(int64_t(s.k.size()));
  }
  return s;
}

// QuadMasks: see WeightFormat.
StripWeights<int8_t> make_quad_masks(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s = shaped(w, 16, 4);
  const int64_t panels = (w.rows + 15) / 16, quads = (w.cols + 3) / 4;
  s.wptr.assign(1, 0);
  for (int64_t p = 0; p < panels; ++p) {
    s.ptr.push_back(p * quads);
    for (int64_t q = 0; q < quads; ++q) {
      uint16_t mask = 0;
      for (int64_t r = p * 16; r < std::min(w.rows, p * 16 + 16); ++r)
        for (int64_t c = 4 * q; c < std::min(w.cols, 4 * q + 4); ++c)
          if (w(r, c) != 0) mask = uint16_t(mask | (1u << (r - p * 16)));
      s.sel.push_back(uint8_t(mask & 0xFF));
      s.sel.push_back(uint8_t(mask >> 8));
      for (int64_t r = 0; r < 16; ++r)
        if (mask >> r & 1)
          for (int64_t c = 4 * q; c < 4 * q + 4; ++c) s.w.push_back(c < w.cols ? w(p * 16 + r, c) : int8_t(0));
    }
    s.wptr.push_back(int64_t(s.w.size() / 4));
  }
  s.ptr.push_back(panels * quads);
  return s;
}

// Windows: see WeightFormat. A strip's list of input channels is its rows' union; each chunk
// takes up to 16 of its next channels inside the window of 128 that starts at the next one.
StripWeights<int8_t> make_windows(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s = shaped(w, 4, 16);
  const int64_t strips = (w.rows + 3) / 4;
  s.ptr.assign(1, 0);
  std::vector<int64_t> cols;
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t r0 = st * 4, r1 = std::min(w.rows, r0 + 4);
    cols.clear();
    for (int64_t c = 0; c < w.cols; ++c)
      for (int64_t r = r0; r < r1; ++r)
        if (w(r, c) != 0) {
          cols.push_back(c);
          break;
        }
    for (size_t next = 0; next < cols.size();) {
      const int64_t base = cols[next] / 64 * 64;
      s.k.push_back(int32_t(base));
      s.sel.resize(s.sel.size() + 16, 0);
      s.w.resize(s.w.size() + 64, 0);
      uint8_t* sel = s.sel.data() + s.sel.size() - 16;
      int8_t* wc = s.w.data() + s.w.size() - 64;
      for (int p = 0; p < 16 && next < cols.size() && cols[next] < base + 128; ++p, ++next) {
        sel[p] = uint8_t(cols[next] - base);
        // Position p of row r is lane (p / 4, r), byte p % 4.
        for (int64_t r = 0; r < r1 - r0; ++r) wc[(p / 4) * 16 + r * 4 + p % 4] = w(r0 + r, cols[next]);
      }
    }
    s.ptr.push_back(int64_t(s.k.size()));
  }
  return s;
}

// LaneWindows: see WeightFormat. Every window of 64 that holds a nonzero of the panel gets as many
// chunks as its busiest lane needs.
StripWeights<int8_t> make_lane_windows(MatrixView<const int8_t> w) {
  StripWeights<int8_t> s = shaped(w, 16, 4);
  const int64_t panels = (w.rows + 15) / 16;
  s.ptr.assign(1, 0);
  std::vector<int64_t> cols[16];
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t lanes = std::min<int64_t>(16, w.rows - p * 16);
    for (int64_t base = 0; base < w.cols; base += 64) {
      size_t most = 0;
      for (int64_t l = 0; l < lanes; ++l) {
        cols[l].clear();
        for (int64_t c = base; c < std::min(w.cols, base + 64); ++c)
          if (w(p * 16 + l, c) != 0) cols[l].push_back(c);
        most = std::max(most, cols[l].size());
      }
      for (size_t j0 = 0; j0 < most; j0 += 4) {
        s.k.push_back(int32_t(base));
        s.sel.resize(s.sel.size() + 64, 0);
        s.w.resize(s.w.size() + 64, 0);
        uint8_t* sel = s.sel.data() + s.sel.size() - 64;
        int8_t* wc = s.w.data() + s.w.size() - 64;
        for (int64_t l = 0; l < lanes; ++l)
          for (size_t t = 0; t < 4 && j0 + t < cols[l].size(); ++t) {
            sel[4 * l + int64_t(t)] = uint8_t(cols[l][j0 + t] - base);
            wc[4 * l + int64_t(t)] = w(p * 16 + l, cols[l][j0 + t]);
          }
      }
    }
    s.ptr.push_back(int64_t(s.k.size()));
  }
  return s;
}

}  // namespace

template <typename T>
StripWeights<T> pack_strips(const Kernel& k, MatrixView<const T> w) {
  if constexpr (std::is_same_v<T, int8_t>) {
    if (k.weights == WeightFormat::Octets) return make_octets(w);
    if (k.weights == WeightFormat::TileBlocks) return make_tile_blocks(w);
    if (k.weights == WeightFormat::RowLanes) return make_row_lanes(w);
    if (k.weights == WeightFormat::QuadMasks) return make_quad_masks(w);
    if (k.weights == WeightFormat::Windows) return make_windows(w);
    if (k.weights == WeightFormat::LaneWindows) return make_lane_windows(w);
  }
  return build(w, k.h, k.kg, k.weights == WeightFormat::QuadStrips);
}
template StripWeights<float> pack_strips(const Kernel&, MatrixView<const float>);
template StripWeights<int8_t> pack_strips(const Kernel&, MatrixView<const int8_t>);

int64_t xt_ld(DType d, int64_t m, Layout l, int64_t k) {
  if (l == Layout::M8) return 4;
  if (l == Layout::Windows) return round_up(std::max<int64_t>(k, 1), 64) + 64;
  if (l == Layout::Rows || l == Layout::Rows64) {  // the stride between m rows
    int64_t ld = round_up(std::max<int64_t>(k, 1), l == Layout::Rows ? 8 : 64);
    if ((ld / 64) % 2 == 0) ld += 64;
    return ld;
  }
  const int64_t es = d == DType::F32 || l == Layout::Quads ? 4 : l == Layout::Words ? 2 : 1;
  const int64_t cw = es >= 2 ? 16 : l == Layout::Gather64 ? 64 : u8_chunk(m);
  int64_t ld = round_up(std::max<int64_t>(m, 1), cw);
  // An even number of cache lines between xt rows makes the rows of one kernel step collide in a
  // few cache sets (at M = 1024 or 2048, all in 2 of 64 L1 sets). Pad to an odd line count. Rows
  // shorter than a line (m <= 32 on u8) stay packed: padded, xt outgrew L1 at k = 768.
  if (ld * es >= 64 && (ld * es / 64) % 2 == 0) ld += 64 / es;
  return ld;
}

size_t xt_bytes(DType d, int64_t m, int64_t k, Layout l) {
  const int64_t ld = xt_ld(d, m, l, k);
  if (l == Layout::Rows || l == Layout::Windows) return size_t(m * ld);
  if (l == Layout::Rows64) return size_t(round_up(m, 16) * ld);
  if (l == Layout::Quads) return size_t((k + 3) / 4 * ld * 4);
  // The m8 kernel also runs on quad strips (m <= 8), whose zero-weight padding lists input
  // channels up to round_up(k, 4) - 1, and gathers xt for them: rows past k are read, never used.
  if (l == Layout::M8) return size_t(round_up(k, 4) * ld);
  return size_t(k * ld * (d == DType::F32 ? 4 : l == Layout::Words ? 2 : 1));
}

}  // namespace spruce::kernels
