// Unpacking each WeightFormat (see kernel.hpp) back to the dense matrix, with every offset, index,
// selector and padding checked first: a corrupt packing (a damaged model file) is an error, never
// an out-of-bounds read.
#include <algorithm>
#include <string>
#include <type_traits>

#include "spruce/error.hpp"
#include "weight_formats.hpp"

namespace spruce::kernels {

void corrupt(const std::string& what) { data_error("packed weights are corrupt: " + what); }

namespace {

template <typename T>
void check_sizes(const StripWeights<T>& s, int64_t strips, size_t values) {
  if (int64_t(s.ptr.size()) != strips + 1)
    corrupt(std::to_string(s.ptr.size()) + " strip offsets for " + std::to_string(strips) + " strips");
  if (s.w.size() != values)
    corrupt(std::to_string(s.w.size()) + " weight values where the offsets need " + std::to_string(values));
}

// Strips and QuadStrips: see WeightFormat.
template <typename T>
Matrix<T> unpack_strip_csr(const StripWeights<T>& s, bool quads) {
  const int kg = s.kg;
  if (s.h < 1 || s.h > 64) corrupt("strip height " + std::to_string(s.h) + " is outside 1..64");
  if (std::is_same_v<T, float> ? kg != 1 : (kg != 4 && !(kg == 64 && s.h == 16)))
    corrupt("group size " + std::to_string(kg) + " with strip height " + std::to_string(s.h) +
            " is not a tile kernels read");
  if (!s.sel.empty()) corrupt("selector bytes in a strip layout");
  const int64_t strips = (s.rows + s.h - 1) / s.h;
  check_sizes(s, strips, s.k.size() * size_t(s.h));
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) corrupt("strip offsets do not span the index list");
  if (s.k.size() % size_t(kg)) corrupt("the index list is not whole groups of " + std::to_string(kg));
  const int64_t limit = quads ? round_up(s.cols, 4) : s.cols;
  Matrix<T> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t j0 = s.ptr[size_t(st)], j1 = s.ptr[size_t(st + 1)];
    if (j1 < j0 || j1 > int64_t(s.k.size()) || j0 % kg != 0)
      corrupt("strip offsets of strip " + std::to_string(st) + " are not ascending whole groups");
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t c = s.k[size_t(j)];
      if (c < 0 || c >= limit)
        corrupt("input channel " + std::to_string(c) + " is outside 0.." + std::to_string(limit - 1));
      if (quads && c != s.k[size_t(j - j % 4)] + j % 4)
        corrupt("strip " + std::to_string(st) + " lists a partial quad of input channels");
      if (quads && j % 4 == 0 && c % 4 != 0) corrupt("strip " + std::to_string(st) + " lists an unaligned quad");
      // Sorted; a repeat of the previous channel (quads: of the previous quad) is padding and must
      // carry zero weights.
      const int64_t step = quads ? 4 : 1, prev = j - step >= j0 ? s.k[size_t(j - step)] : -1;
      const bool repeat = c == prev;
      if (c < prev) corrupt("input channels of strip " + std::to_string(st) + " are not sorted");
      for (int64_t r = 0; r < s.h; ++r) {
        const T v = s.w[size_t((j / kg) * kg * s.h + r * kg + j % kg)];
        if (v == T(0)) continue;
        const int64_t row = st * s.h + r;
        if (repeat || row >= s.rows || c >= s.cols)
          corrupt("a nonzero weight in the padding of strip " + std::to_string(st));
        dense(row, c) = v;
      }
    }
  }
  return dense;
}

// TileBlocks: see WeightFormat.
Matrix<int8_t> unpack_tile_blocks(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 64) corrupt("tile blocks need strip height 16 and group 64");
  if (!s.sel.empty()) corrupt("selector bytes in a tile-block layout");
  const int64_t strips = (s.rows + 15) / 16;
  check_sizes(s, strips, s.k.size() * 1024);
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) corrupt("strip offsets do not span the block list");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t j0 = s.ptr[size_t(st)], j1 = s.ptr[size_t(st + 1)];
    if (j1 < j0 || j1 > int64_t(s.k.size()))
      corrupt("strip offsets of strip " + std::to_string(st) + " are not ascending");
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t c0 = s.k[size_t(j)];
      if (c0 < 0 || c0 >= s.cols || c0 % 64)
        corrupt("block start " + std::to_string(c0) + " is not an aligned input channel");
      if (j > j0 && c0 <= s.k[size_t(j - 1)]) corrupt("blocks of strip " + std::to_string(st) + " are not sorted");
      for (int64_t q = 0; q < 16; ++q)
        for (int64_t r = 0; r < 16; ++r)
          for (int64_t t = 0; t < 4; ++t) {
            const int8_t v = s.w[size_t(j * 1024 + q * 64 + r * 4 + t)];
            const int64_t row = st * 16 + r, c = c0 + 4 * q + t;
            if (v == 0) continue;
            if (row >= s.rows || c >= s.cols) corrupt("a nonzero weight in the padding of strip " + std::to_string(st));
            dense(row, c) = v;
          }
    }
  }
  return dense;
}

// RowLanes: see WeightFormat.
Matrix<int8_t> unpack_row_lanes(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 4) corrupt("row lanes need strip height 16 and group 4");
  if (!s.sel.empty()) corrupt("selector bytes in a row-lane layout");
  const int64_t panels = (s.rows + 15) / 16;
  check_sizes(s, panels, s.k.size() * 4);
  if (int64_t(s.perm.size()) != panels * 16) corrupt("the lane permutation does not cover the panels");
  std::vector<char> seen(size_t(s.rows), 0);
  for (int32_t r : s.perm) {
    if (r < -1 || r >= s.rows || (r >= 0 && seen[size_t(r)]++)) corrupt("the lane permutation is not a permutation");
  }
  if (int64_t(std::count(seen.begin(), seen.end(), 1)) != s.rows) corrupt("the lane permutation misses a row");
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) corrupt("panel offsets do not span the quad list");
  Matrix<int8_t> dense(s.rows, s.cols);
  const int64_t limit = round_up(s.cols, 4);
  for (int64_t p = 0; p < panels; ++p) {
    const int64_t e0 = s.ptr[size_t(p)], e1 = s.ptr[size_t(p + 1)];
    if (e1 < e0 || e1 > int64_t(s.k.size()) || e0 % 16 || e1 % 16)
      corrupt("panel offsets of panel " + std::to_string(p) + " are not ascending whole steps");
    for (int64_t e = e0; e < e1; ++e) {
      const int64_t c = s.k[size_t(e)], prev = e - 16 >= e0 ? s.k[size_t(e - 16)] : -1;
      if (c < 0 || c >= limit || c % 4) corrupt("quad start " + std::to_string(c) + " is not an aligned input channel");
      if (c < prev) corrupt("the quads of a lane in panel " + std::to_string(p) + " are not sorted");
      const int32_t row = s.perm[size_t(p * 16 + e % 16)];
      for (int64_t t = 0; t < 4; ++t) {
        const int8_t v = s.w[size_t(e * 4 + t)];
        if (v == 0) continue;
        if (c == prev || row < 0 || c + t >= s.cols)
          corrupt("a nonzero weight in the padding of panel " + std::to_string(p));
        dense(row, c + t) = v;
      }
    }
  }
  return dense;
}

// QuadMasks: see WeightFormat.
Matrix<int8_t> unpack_quad_masks(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 4) corrupt("quad masks need strip height 16 and group 4");
  if (!s.perm.empty() || !s.k.empty()) corrupt("a lane permutation or an index list in a quad-mask layout");
  const int64_t panels = (s.rows + 15) / 16, quads = (s.cols + 3) / 4;
  if (int64_t(s.ptr.size()) != panels + 1 || int64_t(s.wptr.size()) != panels + 1)
    corrupt("panel offsets do not match " + std::to_string(panels) + " panels");
  for (int64_t p = 0; p <= panels; ++p)
    if (s.ptr[size_t(p)] != p * quads) corrupt("quad-mask panel offsets are not consecutive");
  if (int64_t(s.sel.size()) != 2 * panels * quads) corrupt("the masks do not cover every panel's quads");
  if (s.w.size() % 4) corrupt("the weights are not whole dwords");
  if (s.wptr.front() != 0 || s.wptr.back() != int64_t(s.w.size() / 4)) corrupt("panel offsets do not span the weights");
  if (!std::is_sorted(s.wptr.begin(), s.wptr.end())) corrupt("panel weight offsets are not ascending");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t d = s.wptr[size_t(p)];
    for (int64_t q = 0; q < quads; ++q) {
      const size_t at = size_t(2 * (p * quads + q));
      const unsigned mask = unsigned(s.sel[at]) | unsigned(s.sel[at + 1]) << 8;
      for (int64_t r = 0; r < 16; ++r) {
        if (!(mask >> r & 1)) continue;
        if (p * 16 + r >= s.rows) corrupt("a weight for a row past the last in panel " + std::to_string(p));
        if (d >= s.wptr[size_t(p + 1)]) corrupt("the masks of panel " + std::to_string(p) + " need more weights");
        for (int64_t t = 0; t < 4; ++t) {
          const int8_t v = s.w[size_t(d * 4 + t)];
          if (v == 0) continue;
          if (4 * q + t >= s.cols) corrupt("a nonzero weight past the last input channel");
          dense(p * 16 + r, 4 * q + t) = v;
        }
        ++d;
      }
    }
    if (d != s.wptr[size_t(p + 1)]) corrupt("the masks of panel " + std::to_string(p) + " do not use its weights");
  }
  return dense;
}

// The chunk offsets of a window layout: ascending, spanning `chunks`.
void check_chunk_offsets(const StripWeights<int8_t>& s, int64_t strips, int64_t chunks) {
  if (int64_t(s.ptr.size()) != strips + 1) corrupt("strip offsets do not match " + std::to_string(strips) + " strips");
  if (s.ptr.front() != 0 || s.ptr.back() != chunks) corrupt("strip offsets do not span the chunks");
  if (!std::is_sorted(s.ptr.begin(), s.ptr.end())) corrupt("strip offsets are not ascending");
}

// Chunk c's window start, checked: a multiple of 64 below the input channels.
int64_t window_of(const StripWeights<int8_t>& s, int64_t c) {
  const int64_t base = s.k[size_t(c)];
  if (base < 0 || base >= s.cols || base % 64)
    corrupt("window " + std::to_string(base) + " of chunk " + std::to_string(c));
  return base;
}

// Windows: see WeightFormat.
Matrix<int8_t> unpack_windows(const StripWeights<int8_t>& s) {
  if (s.h != 4 || s.kg != 16) corrupt("windows need strip height 4 and group 16");
  if (!s.perm.empty()) corrupt("a lane permutation in a window layout");
  const int64_t strips = (s.rows + 3) / 4, chunks = int64_t(s.k.size());
  check_chunk_offsets(s, strips, chunks);
  if (int64_t(s.sel.size()) != 16 * chunks || int64_t(s.w.size()) != 64 * chunks)
    corrupt("the selectors or weights do not cover " + std::to_string(chunks) + " chunks");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    int64_t last = -1;  // the last channel with a nonzero weight
    for (int64_t c = s.ptr[size_t(st)]; c < s.ptr[size_t(st + 1)]; ++c) {
      const int64_t base = window_of(s, c);
      // Position p = 4g + t of row r is lane (g, r), byte t; the rows share a position's channel,
      // and the channels ascend over positions.
      for (int p = 0; p < 16; ++p) {
        const int64_t sel = s.sel[size_t(16 * c + p)], col = base + sel;
        if (sel >= 128) corrupt("a selector past its window in chunk " + std::to_string(c));
        bool used = false;
        for (int64_t r = 0; r < 4; ++r) {
          const int8_t v = s.w[size_t(64 * c + (p / 4) * 16 + r * 4 + p % 4)];
          if (v == 0) continue;
          if (st * 4 + r >= s.rows || col >= s.cols)
            corrupt("a nonzero weight in the padding of strip " + std::to_string(st));
          if (col <= last) corrupt("input channels of strip " + std::to_string(st) + " are not ascending");
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
  if (s.h != 16 || s.kg != 4) corrupt("lane windows need strip height 16 and group 4");
  if (!s.perm.empty()) corrupt("a lane permutation in a window layout");
  const int64_t panels = (s.rows + 15) / 16, chunks = int64_t(s.k.size());
  check_chunk_offsets(s, panels, chunks);
  if (int64_t(s.sel.size()) != 64 * chunks || int64_t(s.w.size()) != 64 * chunks)
    corrupt("the selectors or weights do not cover " + std::to_string(chunks) + " chunks");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t p = 0; p < panels; ++p) {
    int64_t last[16];  // per lane, the last channel with a nonzero weight
    std::fill(std::begin(last), std::end(last), -1);
    for (int64_t c = s.ptr[size_t(p)]; c < s.ptr[size_t(p + 1)]; ++c) {
      const int64_t base = window_of(s, c);
      for (int64_t at = 0; at < 64; ++at) {
        const int64_t sel = s.sel[size_t(64 * c + at)], col = base + sel, lane = at / 4, row = p * 16 + lane;
        if (sel >= 64) corrupt("a selector past its window in chunk " + std::to_string(c));
        const int8_t v = s.w[size_t(64 * c + at)];
        if (v == 0) continue;
        if (row >= s.rows || col >= s.cols) corrupt("a nonzero weight in the padding of panel " + std::to_string(p));
        if (col <= last[lane]) corrupt("input channels of a lane in panel " + std::to_string(p) + " are not ascending");
        dense(row, col) = v;
        last[lane] = col;
      }
    }
  }
  return dense;
}

// Octets: see WeightFormat.
Matrix<int8_t> unpack_octets(const StripWeights<int8_t>& s) {
  if (s.h != 16 || s.kg != 8) corrupt("N:M panels need strip height 16 and group 8");
  if (!s.k.empty()) corrupt("an index list in an N:M panel layout");
  const int64_t panels = (s.rows + 15) / 16, q = (s.cols + 7) / 8;
  check_sizes(s, panels, size_t(panels * q * 64));
  if (s.sel.size() != s.w.size()) corrupt("selector and weight counts differ");
  for (int64_t p = 0; p <= panels; ++p)
    if (s.ptr[size_t(p)] != p * q) corrupt("N:M panel offsets are not consecutive");
  Matrix<int8_t> dense(s.rows, s.cols);
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t o = 0; o < q; ++o)
      for (int64_t r = 0; r < 16; ++r) {
        const size_t base = size_t(((p * q + o) * 16 + r) * 4);
        const int64_t row = p * 16 + r;
        for (size_t t = 0; t < 4; ++t) {
          const int8_t v = s.w[base + t];
          const int64_t c = o * 8 + s.sel[base + t];
          if (s.sel[base + t] >= 8) corrupt("a selector past its octet");
          if (v == 0) continue;
          if (row >= s.rows || c >= s.cols) corrupt("a nonzero weight in the padding of panel " + std::to_string(p));
          if (dense(row, c) != 0) corrupt("two weights for one position in panel " + std::to_string(p));
          dense(row, c) = v;
        }
      }
  return dense;
}

template <typename T>
void check_shape(const StripWeights<T>& s) {
  const int64_t rows = s.rows, cols = s.cols, most = int64_t(1) << 31;
  if (rows < 1 || cols < 1 || rows > most || cols > most)
    corrupt("shape " + std::to_string(rows) + "x" + std::to_string(cols));
  if (s.ptr.empty()) corrupt("no strip offsets");
}

}  // namespace

template <typename T>
Matrix<T> unpack_checked(const StripWeights<T>& s, WeightFormat f) {
  check_shape(s);
  if (f != WeightFormat::QuadMasks && !s.wptr.empty()) corrupt("weight offsets in a layout that has none");
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

template Matrix<float> unpack_checked(const StripWeights<float>&, WeightFormat);
template Matrix<int8_t> unpack_checked(const StripWeights<int8_t>&, WeightFormat);

}  // namespace spruce::kernels
