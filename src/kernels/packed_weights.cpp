// PackedWeights: packing dense pruned weights into the kernels' strip formats (kernel.hpp), and
// checking, unpacking and (de)serializing them.
#include <algorithm>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernel.hpp"
#include "spruce/error.hpp"

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

namespace spruce::kernels {
namespace {

[[noreturn]] void bad(const std::string& what) { data_error("packed weights are corrupt: " + what); }

template <typename T>
void check_sizes(const StripWeights<T>& s, int64_t strips, size_t values) {
  if (int64_t(s.ptr.size()) != strips + 1)
    bad(std::to_string(s.ptr.size()) + " strip offsets for " + std::to_string(strips) + " strips");
  if (s.w.size() != values)
    bad(std::to_string(s.w.size()) + " weight values where the offsets need " + std::to_string(values));
}

// Strips and QuadStrips: see WeightFormat.
template <typename T>
Matrix<T> unpack_strip_csr(const StripWeights<T>& s, bool quads) {
  const int kg = s.kg;
  if (s.h < 1 || s.h > 64) bad("strip height " + std::to_string(s.h) + " is outside 1..64");
  if (std::is_same_v<T, float> ? kg != 1 : (kg != 4 && !(kg == 64 && s.h == 16)))
    bad("group size " + std::to_string(kg) + " with strip height " + std::to_string(s.h) +
        " is not a tile kernels read");
  if (!s.sel.empty()) bad("selector bytes in a strip layout");
  const int64_t strips = (s.rows + s.h - 1) / s.h;
  check_sizes(s, strips, s.k.size() * size_t(s.h));
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) bad("strip offsets do not span the index list");
  if (s.k.size() % size_t(kg)) bad("the index list is not whole groups of " + std::to_string(kg));
  const int64_t limit = quads ? round_up(s.cols, 4) : s.cols;
  Matrix<T> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t j0 = s.ptr[size_t(st)], j1 = s.ptr[size_t(st + 1)];
    if (j1 < j0 || j1 > int64_t(s.k.size()) || j0 % kg != 0)
      bad("strip offsets of strip " + std::to_string(st) + " are not ascending whole groups");
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t c = s.k[size_t(j)];
      if (c < 0 || c >= limit)
        bad("input channel " + std::to_string(c) + " is outside 0.." + std::to_string(limit - 1));
      if (quads && c != s.k[size_t(j - j % 4)] + j % 4)
        bad("strip " + std::to_string(st) + " lists a partial quad of input channels");
      if (quads && j % 4 == 0 && c % 4 != 0) bad("strip " + std::to_string(st) + " lists an unaligned quad");
      // Sorted; a repeat of the previous channel (quads: of the previous quad) is padding and must
      // carry zero weights.
      const int64_t step = quads ? 4 : 1, prev = j - step >= j0 ? s.k[size_t(j - step)] : -1;
      const bool repeat = c == prev;
      if (c < prev) bad("input channels of strip " + std::to_string(st) + " are not sorted");
      for (int64_t r = 0; r < s.h; ++r) {
        const T v = s.w[size_t((j / kg) * kg * s.h + r * kg + j % kg)];
        if (v == T(0)) continue;
        const int64_t row = st * s.h + r;
        if (repeat || row >= s.rows || c >= s.cols)
          bad("a nonzero weight in the padding of strip " + std::to_string(st));
        dense(row, c) = v;
      }
    }
  }
  return dense;
}

// TileBlocks: see WeightFormat.
Matrix<int8_t> unpack_tile_blocks(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 64) bad("tile blocks need strip height 16 and group 64");
  if (!s.sel.empty()) bad("selector bytes in a tile-block layout");
  const int64_t strips = (s.rows + 15) / 16;
  check_sizes(s, strips, s.k.size() * 1024);
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) bad("strip offsets do not span the block list");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t j0 = s.ptr[size_t(st)], j1 = s.ptr[size_t(st + 1)];
    if (j1 < j0 || j1 > int64_t(s.k.size())) bad("strip offsets of strip " + std::to_string(st) + " are not ascending");
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t c0 = s.k[size_t(j)];
      if (c0 < 0 || c0 >= s.cols || c0 % 64)
        bad("block start " + std::to_string(c0) + " is not an aligned input channel");
      if (j > j0 && c0 <= s.k[size_t(j - 1)]) bad("blocks of strip " + std::to_string(st) + " are not sorted");
      for (int64_t q = 0; q < 16; ++q)
        for (int64_t r = 0; r < 16; ++r)
          for (int64_t t = 0; t < 4; ++t) {
            const int8_t v = s.w[size_t(j * 1024 + q * 64 + r * 4 + t)];
            const int64_t row = st * 16 + r, c = c0 + 4 * q + t;
            if (v == 0) continue;
            if (row >= s.rows || c >= s.cols) bad("a nonzero weight in the padding of strip " + std::to_string(st));
            dense(row, c) = v;
          }
    }
  }
  return dense;
}

// RowLanes: see WeightFormat.
Matrix<int8_t> unpack_row_lanes(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 4) bad("row lanes need strip height 16 and group 4");
  if (!s.sel.empty()) bad("selector bytes in a row-lane layout");
  const int64_t panels = (s.rows + 15) / 16;
  check_sizes(s, panels, s.k.size() * 4);
  if (int64_t(s.perm.size()) != panels * 16) bad("the lane permutation does not cover the panels");
  std::vector<char> seen(size_t(s.rows), 0);
  for (int32_t r : s.perm) {
    if (r < -1 || r >= s.rows || (r >= 0 && seen[size_t(r)]++)) bad("the lane permutation is not a permutation");
  }
  if (int64_t(std::count(seen.begin(), seen.end(), 1)) != s.rows) bad("the lane permutation misses a row");
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) bad("panel offsets do not span the quad list");
  Matrix<int8_t> dense(s.rows, s.cols);
  const int64_t limit = round_up(s.cols, 4);
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t e0 = s.ptr[size_t(p)], e1 = s.ptr[size_t(p + 1)];
    if (e1 < e0 || e1 > int64_t(s.k.size()) || e0 % 16 || e1 % 16)
      bad("panel offsets of panel " + std::to_string(p) + " are not ascending whole steps");
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t c = s.k[size_t(e)], prev = e - 16 >= e0 ? s.k[size_t(e - 16)] : -1;
      if (c < 0 || c >= limit || c % 4) bad("quad start " + std::to_string(c) + " is not an aligned input channel");
      if (c < prev) bad("the quads of a lane in panel " + std::to_string(p) + " are not sorted");
      const int32_t row = s.perm[size_t(p * 16 + e % 16)];
      for (int64_t t = 0; t < 4; ++t) {
        const int8_t v = s.w[size_t(e * 4 + t)];
        if (v == 0) continue;
        if (c == prev || row < 0 || c + t >= s.cols)
          bad("a nonzero weight in the padding of panel " + std::to_string(p));
        dense(row, c + t) = v;
      }
    }
  }
  return dense;
}

// QuadMasks: see WeightFormat.
Matrix<int8_t> unpack_quad_masks(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 4) bad("quad masks need strip height 16 and group 4");
  if (!s.perm.empty() || !s.k.empty()) bad("a lane permutation or an index list in a quad-mask layout");
  const int64_t panels = (s.rows + 15) / 16, quads = (s.cols + 3) / 4;
  if (int64_t(s.ptr.size()) != panels + 1 || int64_t(s.wptr.size()) != panels + 1)
    bad("panel offsets do not match " + std::to_string(panels) + " panels");
  for (int64_t p = 0; p <= panels; ++p)
    if (s.ptr[size_t(p)] != p * quads) bad("quad-mask panel offsets are not consecutive");
  if (int64_t(s.sel.size()) != 2 * panels * quads) bad("the masks do not cover every panel's quads");
  if (s.w.size() % 4) bad("the weights are not whole dwords");
  if (s.wptr.front() != 0 || s.wptr.back() != int64_t(s.w.size() / 4)) bad("panel offsets do not span the weights");
  if (!std::is_sorted(s.wptr.begin(), s.wptr.end())) bad("panel weight offsets are not ascending");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t d = s.wptr[size_t(p)];
    for (int64_t q = 0; q < quads; ++q) {
      const size_t at = size_t(2 * (p * quads + q));
      const unsigned mask = unsigned(s.sel[at]) | unsigned(s.sel[at + 1]) << 8;
      for (int64_t r = 0; r < 16; ++r) {
        if (!(mask >> r & 1)) continue;
        if (p * 16 + r >= s.rows) bad("a weight for a row past the last in panel " + std::to_string(p));
        if (d >= s.wptr[size_t(p + 1)]) bad("the masks of panel " + std::to_string(p) + " need more weights");
        for (int64_t t = 0; t < 4; ++t) {
          const int8_t v = s.w[size_t(d * 4 + t)];
          if (v == 0) continue;
          if (4 * q + t >= s.cols) bad("a nonzero weight past the last input channel");
          dense(p * 16 + r, 4 * q + t) = v;
        }
        ++d;
      }
    }
    if (d != s.wptr[size_t(p + 1)]) bad("the masks of panel " + std::to_string(p) + " do not use its weights");
  }
  return dense;
}

// The chunk offsets of a window layout: ascending, spanning `chunks`.
void check_chunk_offsets(const StripWeights<int8_t>& s, int64_t strips, int64_t chunks) {
  if (int64_t(s.ptr.size()) != strips + 1) bad("strip offsets do not match " + std::to_string(strips) + " strips");
  if (s.ptr.front() != 0 || s.ptr.back() != chunks) bad("strip offsets do not span the chunks");
  if (!std::is_sorted(s.ptr.begin(), s.ptr.end())) bad("strip offsets are not ascending");
}

// Chunk c's window start, checked: a multiple of 64 below the input channels.
int64_t window_of(const StripWeights<int8_t>& s, int64_t c) {
  const int64_t base = s.k[size_t(c)];
  if (base < 0 || base >= s.cols || base % 64) bad("window " + std::to_string(base) + " of chunk " + std::to_string(c));
  return base;
}

// Windows: see WeightFormat.
Matrix<int8_t> unpack_windows(const StripWeights<int8_t>& s) {
  if (s.h != 4 || s.kg != 16) bad("windows need strip height 4 and group 16");
  if (!s.perm.empty()) bad("a lane permutation in a window layout");
  const int64_t strips = (s.rows + 3) / 4, chunks = int64_t(s.k.size());
  check_chunk_offsets(s, strips, chunks);
  if (int64_t(s.sel.size()) != 16 * chunks || int64_t(s.w.size()) != 64 * chunks)
    bad("the selectors or weights do not cover " + std::to_string(chunks) + " chunks");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    int64_t last = -1;  // the last channel with a nonzero weight
    for (int64_t c = s.ptr[size_t(st)]; c < s.ptr[size_t(st + 1)]; ++c) {
      const int64_t base = window_of(s, c);
      // Position p = 4g + t of row r is lane (g, r), byte t; the rows share a position's channel,
      // and the channels ascend over positions.
      for (int p = 0; p < 16; ++p) {
        const int64_t sel = s.sel[size_t(16 * c + p)], col = base + sel;
        if (sel >= 128) bad("a selector past its window in chunk " + std::to_string(c));
        bool used = false;
        for (int64_t r = 0; r < 4; ++r) {
          const int8_t v = s.w[size_t(64 * c + (p / 4) * 16 + r * 4 + p % 4)];
          if (v == 0) continue;
          if (st * 4 + r >= s.rows || col >= s.cols)
            bad("a nonzero weight in the padding of strip " + std::to_string(st));
          if (col <= last) bad("input channels of strip " + std::to_string(st) + " are not ascending");
          dense(st * 4 + r, col) = v;
          used = true;
        }
        if (used) last = col;
      }
    }
  }
  return dense;
}

// LaneWindows: see WeightFormat.
Matrix<int8_t> unpack_lane_windows(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 4) bad("lane windows need strip height 16 and group 4");
  if (!s.perm.empty()) bad("a lane permutation in a window layout");
  const int64_t panels = (s.rows + 15) / 16, chunks = int64_t(s.k.size());
  check_chunk_offsets(s, panels, chunks);
  if (int64_t(s.sel.size()) != 64 * chunks || int64_t(s.w.size()) != 64 * chunks)
    bad("the selectors or weights do not cover " + std::to_string(chunks) + " chunks");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t last[16];  // per lane, the last channel with a nonzero weight
    std::fill(std::begin(last), std::end(last), -1);
    for (int64_t c = s.ptr[size_t(p)]; c < s.ptr[size_t(p + 1)]; ++c) {
      const int64_t base = window_of(s, c);
      for (int64_t at = 0; at < 64; ++at) {
        const int64_t sel = s.sel[size_t(64 * c + at)], col = base + sel, lane = at / 4, row = p * 16 + lane;
        if (sel >= 64) bad("a selector past its window in chunk " + std::to_string(c));
        const int8_t v = s.w[size_t(64 * c + at)];
        if (v == 0) continue;
        if (row >= s.rows || col >= s.cols) bad("a nonzero weight in the padding of panel " + std::to_string(p));
        if (col <= last[lane]) bad("input channels of a lane in panel " + std::to_string(p) + " are not ascending");
        dense(row, col) = v;
        last[lane] = col;
      }
    }
  }
  return dense;
}

// Octets: see WeightFormat.
Matrix<int8_t> unpack_octets(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 8) bad("N:M panels need strip height 16 and group 8");
  if (!s.k.empty()) bad("an index list in an N:M panel layout");
  const int64_t panels = (s.rows + 15) / 16, q = (s.cols + 7) / 8;
  check_sizes(s, panels, size_t(panels * q * 64));
  if (s.sel.size() != s.w.size()) bad("selector and weight counts differ");
  for (int64_t p = 0; p <= panels; ++p)
    if (s.ptr[size_t(p)] != p * q) bad("N:M panel offsets are not consecutive");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t o = 0; o < q; ++o)
      for (int64_t r = 0; r < 16; ++r) {
        const size_t base = size_t(((p * q + o) * 16 + r) * 4);
        const int64_t row = p * 16 + r;
        for (size_t t = 0; t < 4; ++t) {
          const int8_t v = s.w[base + t];
          const int64_t c = o * 8 + s.sel[base + t];
          if (s.sel[base + t] >= 8) bad("a selector past its octet");
          if (v == 0) continue;
          if (row >= s.rows || c >= s.cols) bad("a nonzero weight in the padding of panel " + std::to_string(p));
          if (dense(row, c) != 0) bad("two weights for one position in panel " + std::to_string(p));
          dense(row, c) = v;
        }
      }
  return dense;
}

template <typename T>
void check_shape(const StripWeights<T>& s) {
  const int64_t rows = s.rows, cols = s.cols, most = int64_t(1) << 31;
  if (rows < 1 || cols < 1 || rows > most || cols > most)
    bad("shape " + std::to_string(rows) + "x" + std::to_string(cols));
  if (s.ptr.empty()) bad("no strip offsets");
}

template <typename T>
double zero_fraction(const Matrix<T>& w) {
  const auto zeros = std::count(w.data.begin(), w.data.end(), T(0));
  return w.data.empty() ? 0.0 : double(zeros) / double(w.data.size());
}

template <typename T>
Matrix<T> unpack_checked(const StripWeights<T>& s, WeightFormat f) {
  check_shape(s);
  if (f != WeightFormat::QuadMasks && !s.wptr.empty()) bad("weight offsets in a layout that has none");
  if constexpr (std::is_same_v<T, int8_t>) {
    if (f == WeightFormat::Octets) return unpack_octets(s);
    if (f == WeightFormat::TileBlocks) return unpack_tile_blocks(s);
    if (f == WeightFormat::RowLanes) return unpack_row_lanes(s);
    if (f == WeightFormat::QuadMasks) return unpack_quad_masks(s);
    if (f == WeightFormat::Windows) return unpack_windows(s);
    if (f == WeightFormat::LaneWindows) return unpack_lane_windows(s);
  }
  return unpack_strip_csr(s, f == WeightFormat::QuadStrips);
}

// The Impl for strips s of kernel k, with the derived state (wsum, sparsity, view) from dense W.
template <typename T>
PackedWeights adopt(const Kernel& k, StripWeights<T> s, const Matrix<T>& dense) {
  auto impl = std::make_shared<PackedWeights::Impl>();
  impl->kernel = &k;
  impl->sparsity = zero_fraction(dense);
  if constexpr (std::is_same_v<T, int8_t>) {
    impl->wsum.assign(size_t(dense.rows), 0);
    for (int64_t r = 0; r < dense.rows; ++r)
      for (int64_t c = 0; c < dense.cols; ++c) impl->wsum[size_t(r)] += dense(r, c);
    impl->s8 = std::move(s);
    impl->view = view(impl->s8);
  } else {
    impl->f32 = std::move(s);
    impl->view = view(impl->f32);
  }
  return PackedWeights(std::move(impl));
}

template <typename T>
PackedWeights pack(const Kernel& k, MatrixView<const T> w) {
  constexpr DType d = std::is_same_v<T, float> ? DType::F32 : DType::S8;
  if (k.op != Op::Spmm || k.dtype != d)
    usage_error(std::string("kernel '") + k.name + "' does not read " + (d == DType::S8 ? "INT8" : "FP32") +
                " GEMM weights");
  StripWeights<T> s;
  if constexpr (std::is_same_v<T, int8_t>) {
    if (k.weights == WeightFormat::Octets)
      s = make_octets(w);
    else if (k.weights == WeightFormat::TileBlocks)
      s = make_tile_blocks(w);
    else if (k.weights == WeightFormat::RowLanes)
      s = make_row_lanes(w);
    else if (k.weights == WeightFormat::QuadMasks)
      s = make_quad_masks(w);
    else if (k.weights == WeightFormat::Windows)
      s = make_windows(w);
    else if (k.weights == WeightFormat::LaneWindows)
      s = make_lane_windows(w);
    else
      s = build(w, k.h, k.kg, k.weights == WeightFormat::QuadStrips);
  } else {
    s = build(w, k.h, k.kg);
  }
  Matrix<T> dense(w.rows, w.cols);
  for (int64_t r = 0; r < w.rows; ++r)
    for (int64_t c = 0; c < w.cols; ++c) dense(r, c) = w(r, c);
  return adopt(k, std::move(s), dense);
}

template <typename T, typename A>
std::vector<uint8_t> bytes_of(const std::vector<T, A>& v) {
  std::vector<uint8_t> out(v.size() * sizeof(T));
  if (!v.empty()) std::memcpy(out.data(), v.data(), out.size());
  return out;
}

template <typename T>
std::vector<T> array_of(const PackedParts& p, const std::string& name, PackedParts::Type type, bool required) {
  const PackedParts::Array* a = p.find(name);
  if (!a) {
    if (required) bad("the array '" + name + "' is missing");
    return {};
  }
  if (a->type != type) bad("the array '" + name + "' has the wrong element type");
  if (a->bytes.size() % sizeof(T)) bad("the array '" + name + "' ends in a partial element");
  std::vector<T> v(a->bytes.size() / sizeof(T));
  if (!v.empty()) std::memcpy(v.data(), a->bytes.data(), a->bytes.size());
  return v;
}

int64_t attribute(const PackedParts& p, const std::string& name) {
  for (const auto& [key, value] : p.attributes)
    if (key == name) return value;
  bad("the attribute '" + name + "' is missing");
}

template <typename T>
PackedWeights from_parts(const Kernel& k, const PackedParts& p, int64_t rows, int64_t cols) {
  constexpr bool s8 = std::is_same_v<T, int8_t>;
  for (const auto& [key, value] : p.attributes)
    if (key != "strip_h" && key != "strip_kg") bad("unknown attribute '" + key + "'");
  for (const auto& a : p.arrays)
    if (a.name != "strip_ptr" && a.name != "strip_k" && a.name != "strip_w" && a.name != "strip_sel" &&
        a.name != "strip_perm" && a.name != "strip_wptr")
      bad("unknown array '" + a.name + "'");
  StripWeights<T> s;
  const int64_t h = attribute(p, "strip_h"), kg = attribute(p, "strip_kg");
  if (h != k.h || kg != k.kg)
    bad("tile " + std::to_string(h) + "x" + std::to_string(kg) + " where kernel '" + k.name + "' reads " +
        std::to_string(k.h) + "x" + std::to_string(k.kg));
  s.h = k.h;
  s.kg = k.kg;
  s.rows = rows;
  s.cols = cols;
  s.ptr = array_of<int64_t>(p, "strip_ptr", PackedParts::Type::I64, true);
  s.k = array_of<int32_t>(p, "strip_k", PackedParts::Type::I32, true);
  const std::vector<T> w = array_of<T>(p, "strip_w", s8 ? PackedParts::Type::I8 : PackedParts::Type::F32, true);
  s.w.assign(w.begin(), w.end());
  s.sel = array_of<uint8_t>(p, "strip_sel", PackedParts::Type::U8, false);
  s.perm = array_of<int32_t>(p, "strip_perm", PackedParts::Type::I32, false);
  if (!s.perm.empty() && k.weights != WeightFormat::RowLanes) bad("a lane permutation in a strip layout");
  s.wptr = array_of<int64_t>(p, "strip_wptr", PackedParts::Type::I64, false);
  const Matrix<T> dense = unpack_checked(s, k.weights);
  return adopt(k, std::move(s), dense);
}

template <typename T>
PackedParts parts_of(const Kernel& k, const StripWeights<T>& s) {
  PackedParts p;
  p.kernel = k.name;
  p.attributes = {{"strip_h", s.h}, {"strip_kg", s.kg}};
  p.arrays.push_back({"strip_ptr", PackedParts::Type::I64, bytes_of(s.ptr)});
  p.arrays.push_back({"strip_k", PackedParts::Type::I32, bytes_of(s.k)});
  p.arrays.push_back(
      {"strip_w", std::is_same_v<T, float> ? PackedParts::Type::F32 : PackedParts::Type::I8, bytes_of(s.w)});
  if (!s.sel.empty()) p.arrays.push_back({"strip_sel", PackedParts::Type::U8, s.sel});
  if (!s.perm.empty()) p.arrays.push_back({"strip_perm", PackedParts::Type::I32, bytes_of(s.perm)});
  if (!s.wptr.empty()) p.arrays.push_back({"strip_wptr", PackedParts::Type::I64, bytes_of(s.wptr)});
  return p;
}

template <typename T>
size_t bytes(const StripWeights<T>& s) {
  return s.ptr.size() * sizeof(int64_t) + s.k.size() * sizeof(int32_t) + s.w.size() * sizeof(T) + s.sel.size() +
         s.perm.size() * sizeof(int32_t) + s.wptr.size() * sizeof(int64_t);
}

}  // namespace

PackedWeights pack_weights(const Kernel& k, MatrixView<const float> w) { return pack(k, w); }
PackedWeights pack_weights(const Kernel& k, MatrixView<const int8_t> w) { return pack(k, w); }

}  // namespace spruce::kernels

namespace spruce {

using kernels::DType;

const PackedParts::Array* PackedParts::find(const std::string& name) const {
  for (const Array& a : arrays)
    if (a.name == name) return &a;
  return nullptr;
}

PackedWeights::PackedWeights() : impl_(std::make_shared<Impl>()) {}
PackedWeights::PackedWeights(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
const PackedWeights::Impl& PackedWeights::impl() const { return *impl_; }

bool PackedWeights::empty() const { return impl_->kernel == nullptr; }
bool PackedWeights::int8() const { return impl_->kernel && impl_->kernel->dtype == DType::S8; }
int64_t PackedWeights::rows() const { return impl_->view.rows; }
int64_t PackedWeights::cols() const { return impl_->view.cols; }
std::string PackedWeights::kernel() const { return impl_->kernel ? impl_->kernel->name : ""; }
size_t PackedWeights::size_bytes() const { return int8() ? kernels::bytes(impl_->s8) : kernels::bytes(impl_->f32); }
double PackedWeights::sparsity() const { return impl_->sparsity; }

Matrix<float> PackedWeights::unpack_f32() const {
  if (empty() || int8()) usage_error("PackedWeights::unpack_f32: the weights are not FP32");
  return kernels::unpack_checked(impl_->f32, impl_->kernel->weights);
}

Matrix<int8_t> PackedWeights::unpack_s8() const {
  if (!int8()) usage_error("PackedWeights::unpack_s8: the weights are not INT8");
  return kernels::unpack_checked(impl_->s8, impl_->kernel->weights);
}

void PackedWeights::validate() const {
  if (empty()) return;
  if (int8())
    unpack_s8();
  else
    unpack_f32();
}

PackedParts PackedWeights::parts() const {
  if (empty()) usage_error("PackedWeights::parts: the weights are empty");
  return int8() ? kernels::parts_of(*impl_->kernel, impl_->s8) : kernels::parts_of(*impl_->kernel, impl_->f32);
}

PackedWeights PackedWeights::from_parts(const PackedParts& p, bool int8, int64_t rows, int64_t cols) {
  const kernels::Kernel* k = kernels::find(p.kernel);
  if (!k || k->op != kernels::Op::Spmm)
    data_error("packed weights are laid out for kernel '" + p.kernel +
               "', which this build of spruce does not have: convert the model again");
  if (k->dtype != (int8 ? DType::S8 : DType::F32))
    data_error("packed weights are " + std::string(int8 ? "INT8" : "FP32") + " but laid out for kernel '" + p.kernel +
               "'");
  const int64_t most = int64_t(1) << 31;
  if (rows < 1 || cols < 1 || rows > most || cols > most)
    data_error("packed weights have an impossible shape " + std::to_string(rows) + "x" + std::to_string(cols));
  return int8 ? kernels::from_parts<int8_t>(*k, p, rows, cols) : kernels::from_parts<float>(*k, p, rows, cols);
}

}  // namespace spruce
