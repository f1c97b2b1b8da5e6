#include "spruce/permutation.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <string>

#include "spruce/error.hpp"

namespace spruce {
namespace {

// The scores by column: each column's rows contiguous, as the search reads whole columns.
struct Columns {
  int64_t rows = 0;
  std::vector<float> data;  // [cols][rows]
  const float* col(int64_t c) const { return data.data() + c * rows; }
};

Columns by_column(MatrixView<const float> s) {
  Columns t{s.rows, std::vector<float>(static_cast<size_t>(s.rows * s.cols))};
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t c = 0; c < s.cols; ++c) t.data[static_cast<size_t>(c * s.rows + r)] = s(r, c);
  return t;
}

// Over the rows, the sum of the top 2 of the 4 columns' values.
double kept_2_of_4(const Columns& t, const int64_t* members) {
  const float *a = t.col(members[0]), *b = t.col(members[1]), *c = t.col(members[2]), *d = t.col(members[3]);
  double sum = 0;
  for (int64_t r = 0; r < t.rows; ++r) {
    const float hi_ab = std::max(a[r], b[r]), lo_ab = std::min(a[r], b[r]);
    const float hi_cd = std::max(c[r], d[r]), lo_cd = std::min(c[r], d[r]);
    sum += std::max(hi_ab, hi_cd) + std::max(std::min(hi_ab, hi_cd), std::max(lo_ab, lo_cd));
  }
  return sum;
}

// Over the rows, the sum of the top n of the m columns' values.
double group_kept(const Columns& t, const int64_t* members, int n, int m) {
  if (n == 2 && m == 4) return kept_2_of_4(t, members);
  std::vector<float> v(static_cast<size_t>(m));
  double sum = 0;
  for (int64_t r = 0; r < t.rows; ++r) {
    for (int i = 0; i < m; ++i) v[static_cast<size_t>(i)] = t.col(members[i])[r];
    std::partial_sort(v.begin(), v.begin() + n, v.end(), std::greater<float>());
    for (int i = 0; i < n; ++i) sum += v[static_cast<size_t>(i)];
  }
  return sum;
}

// Over the rows, the sum of max(a, b): in eight lanes of independent float sums, which the
// compiler turns into vector code (a double chain costs its add latency per row).
double sum_of_max(const float* a, const float* b, int64_t rows) {
  float lanes[8] = {};
  int64_t r = 0;
  for (; r + 8 <= rows; r += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += std::max(a[r + l], b[r + l]);
  double sum = 0;
  for (const float v : lanes) sum += v;
  for (; r < rows; ++r) sum += std::max(a[r], b[r]);
  return sum;
}

// The exchanges between two groups, and what each would keep. For 2:4, each group holds per row
// and member the largest and second largest of its other three values: the group with that member
// replaced by b keeps largest + max(second, b), two operations a row instead of a sort.
class GroupSearch {
 public:
  GroupSearch(const Columns& t, const Pattern& p, std::vector<int64_t>& order)
      : t_(t), n_(p.n()), m_(p.m()), order_(order), fast_(p.n() == 2 && p.m() == 4) {
    const int64_t groups = static_cast<int64_t>(order.size()) / m_;
    kept_.resize(static_cast<size_t>(groups));
    if (fast_) {
      second_.resize(static_cast<size_t>(groups * 4 * t.rows));
      top_sum_.resize(static_cast<size_t>(groups * 4));
    }
    for (int64_t g = 0; g < groups; ++g) refresh(g);
  }

  double kept_sum() const { return std::accumulate(kept_.begin(), kept_.end(), 0.0); }

  // Takes the exchange of one member each that keeps most, if it keeps more than now.
  bool improve(int64_t g1, int64_t g2) {
    int64_t* a = &order_[static_cast<size_t>(g1 * m_)];
    int64_t* b = &order_[static_cast<size_t>(g2 * m_)];
    const double now = kept_[static_cast<size_t>(g1)] + kept_[static_cast<size_t>(g2)];
    double best = now + 1e-7 * now;  // gains below this are rounding
    int best_i = -1, best_j = -1;
    for (int i = 0; i < m_; ++i)
      for (int j = 0; j < m_; ++j) {
        const double k = kept_with(g1, i, b[j]) + kept_with(g2, j, a[i]);
        if (k > best) best = k, best_i = i, best_j = j;
      }
    if (best_i < 0) return false;
    std::swap(a[best_i], b[best_j]);
    refresh(g1), refresh(g2);
    return true;
  }

 private:
  // What group g keeps with member i replaced by column c.
  double kept_with(int64_t g, int i, int64_t c) const {
    const float* in = t_.col(c);
    if (fast_) {
      const size_t at = static_cast<size_t>((g * 4 + i) * t_.rows);
      const float* second = &second_[at];
      return top_sum_[static_cast<size_t>(g * 4 + i)] + sum_of_max(second, in, t_.rows);
    }
    std::vector<int64_t> members(order_.begin() + g * m_, order_.begin() + (g + 1) * m_);
    members[static_cast<size_t>(i)] = c;
    return group_kept(t_, members.data(), n_, m_);
  }

  void refresh(int64_t g) {
    const int64_t* members = &order_[static_cast<size_t>(g * m_)];
    kept_[static_cast<size_t>(g)] = group_kept(t_, members, n_, m_);
    if (!fast_) return;
    for (int i = 0; i < 4; ++i) {
      const float* x = t_.col(members[(i + 1) % 4]);
      const float* y = t_.col(members[(i + 2) % 4]);
      const float* z = t_.col(members[(i + 3) % 4]);
      const size_t at = static_cast<size_t>((g * 4 + i) * t_.rows);
      double sum = 0;
      for (int64_t r = 0; r < t_.rows; ++r) {
        const float hi = std::max(x[r], y[r]), lo = std::min(x[r], y[r]);
        second_[at + r] = std::max(lo, std::min(hi, z[r]));
        sum += std::max(hi, z[r]);
      }
      top_sum_[static_cast<size_t>(g * 4 + i)] = sum;
    }
  }

  const Columns& t_;
  const int n_, m_;
  std::vector<int64_t>& order_;
  const bool fast_;
  std::vector<double> kept_;
  std::vector<float> second_;    // [group][member][row], fast path only
  std::vector<double> top_sum_;  // [group][member]: the largest of the other three, summed over rows
};

void check_shape(const Pattern& p, int64_t cols, int64_t segment) {
  if (!p.is_nm()) usage_error("channel permutation is for N:M patterns (e.g. 2:4), not " + p.str());
  if (cols % p.m() != 0)
    usage_error("channel permutation for " + p.str() + " needs a multiple of " + std::to_string(p.m()) +
                " input channels, not " + std::to_string(cols));
  if (segment <= 0 || cols % segment != 0 || segment % p.m() != 0)
    usage_error("channel permutation: a segment of " + std::to_string(segment) + " channels must divide the " +
                std::to_string(cols) + " input channels and hold whole groups of " + std::to_string(p.m()));
}

}  // namespace

double nm_kept_score(const Pattern& p, MatrixView<const float> scores, std::span<const int64_t> order) {
  check_shape(p, scores.cols, scores.cols);
  if (static_cast<int64_t>(order.size()) != scores.cols)
    usage_error("a column order must name every one of the " + std::to_string(scores.cols) + " columns");
  std::vector<bool> seen(order.size());
  for (const int64_t c : order) {
    if (c < 0 || c >= scores.cols || seen[static_cast<size_t>(c)])
      usage_error("a column order must name each column once");
    seen[static_cast<size_t>(c)] = true;
  }
  const Columns t = by_column(scores);
  double kept = 0;
  for (int64_t g = 0; g < scores.cols; g += p.m()) kept += group_kept(t, order.data() + g, p.n(), p.m());
  return kept;
}

ChannelOrder search_nm_channel_order(const Pattern& p, MatrixView<const float> scores, int64_t segment,
                                     int max_passes) {
  check_shape(p, scores.cols, segment);
  ChannelOrder out;
  for (int64_t r = 0; r < scores.rows; ++r)
    for (int64_t c = 0; c < scores.cols; ++c) {
      const float s = scores(r, c);
      if (!std::isfinite(s) || s < 0) usage_error("channel permutation needs finite, non-negative scores");
      out.total += s;
    }
  const Columns t = by_column(scores);
  const int m = p.m();
  out.order.resize(static_cast<size_t>(scores.cols));
  std::iota(out.order.begin(), out.order.end(), int64_t{0});
  GroupSearch search(t, p, out.order);
  out.kept_before = search.kept_sum();
  const int64_t groups = scores.cols / m, per_segment = segment / m;
  while (out.passes < max_passes) {
    ++out.passes;
    bool improved = false;
    for (int64_t g1 = 0; g1 < groups; ++g1)
      for (int64_t g2 = g1 + 1; g2 < (g1 / per_segment + 1) * per_segment; ++g2) improved |= search.improve(g1, g2);
    if (!improved) break;
  }
  out.kept_after = 0;
  for (int64_t g = 0; g < groups; ++g) out.kept_after += group_kept(t, &out.order[g * m], p.n(), m);
  return out;
}

}  // namespace spruce
