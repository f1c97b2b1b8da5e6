// Building the kernel-side strip-CSR weights from dense pruned weights.
#include <algorithm>
#include <string>
#include <type_traits>

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
  // The narrow kernel also runs on quad strips (m <= 4), whose zero-weight padding lists input
  // channels up to round_up(k, 4) - 1, and gathers xt for them: rows past k are read, never used.
  if (l == Layout::Narrow) return size_t(round_up(k, 4) * ld);
  return size_t(k * ld * (d == DType::F32 ? 4 : 1));
}

int preferred_h(DType d, int block_rows) {
  if (d == DType::S8) return block_rows % 4 == 0 ? 4 : 1;
  for (int h : {16, 8, 4, 2})
    if (block_rows % h == 0) return h;
  return 1;
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

// Strip layouts (Gather, Narrow, Quads): see StripWeights.
template <typename T>
Matrix<T> unpack_strip_csr(const StripWeights<T>& s, bool quads) {
  const int kg = std::is_same_v<T, float> ? 1 : 4;
  if (s.h < 1 || s.h > 64) bad("strip height " + std::to_string(s.h) + " is outside 1..64");
  if (s.kg != kg) bad("group size " + std::to_string(s.kg) + ", expected " + std::to_string(kg));
  if (!s.sel.empty()) bad("selector bytes in a strip layout");
  const int64_t strips = (s.rows + s.h - 1) / s.h;
  check_sizes(s, strips, s.k.size() * size_t(s.h));
  if (s.ptr.front() != 0 || s.ptr.back() != int64_t(s.k.size())) bad("strip offsets do not span the index list");
  if (s.k.size() % size_t(kg)) bad("the index list is not whole groups of " + std::to_string(kg));
  const int64_t limit = quads ? round_up(s.cols, 4) : s.cols;
  Matrix<T> dense(s.rows, s.cols);
  for (int64_t st = 0; st < strips; ++st) {
    const int64_t j0 = s.ptr[size_t(st)], j1 = s.ptr[size_t(st + 1)];
    if (j1 < j0 || j1 > int64_t(s.k.size()) || j0 % kg != 0) bad("strip offsets of strip " + std::to_string(st) + " are not ascending whole groups");
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t c = s.k[size_t(j)];
      if (c < 0 || c >= limit) bad("input channel " + std::to_string(c) + " is outside 0.." + std::to_string(limit - 1));
      if (quads && c != s.k[size_t(j - j % 4)] + j % 4) bad("strip " + std::to_string(st) + " lists a partial quad of input channels");
      if (quads && j % 4 == 0 && c % 4 != 0) bad("strip " + std::to_string(st) + " lists an unaligned quad");
      // Sorted; a repeat of the previous channel is padding and must carry zero weights.
      const bool repeat = j > j0 && c == s.k[size_t(j - 1)];
      if (j > j0 && c < s.k[size_t(j - 1)]) bad("input channels of strip " + std::to_string(st) + " are not sorted");
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

// Rows layout (N:M panels): see make_nm8.
Matrix<int8_t> unpack_nm8(const StripWeights<int8_t>& s) {
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
  if (rows < 1 || cols < 1 || rows > most || cols > most) bad("shape " + std::to_string(rows) + "x" + std::to_string(cols));
  if (s.ptr.empty()) bad("no strip offsets");
}

}  // namespace

Matrix<float> unpack_strips(const StripWeights<float>& s, Layout layout) {
  check_shape(s);
  if (layout == Layout::Quads || layout == Layout::Rows) bad("f32 weights in an INT8-only layout");
  return unpack_strip_csr(s, false);
}

Matrix<int8_t> unpack_strips(const StripWeights<int8_t>& s, Layout layout) {
  check_shape(s);
  if (layout == Layout::Rows) return unpack_nm8(s);
  return unpack_strip_csr(s, layout == Layout::Quads);
}

}  // namespace spruce::kernels
