#include "spruce/pattern.hpp"

#include <algorithm>
#include <charconv>

#include "spruce/error.hpp"

namespace spruce {
namespace {

constexpr int kMaxDim = 1 << 20;

// A positive decimal integer, the whole of `s`; -1 when it is not one.
// A dimension of a pattern: its value, -1 when it is not a positive integer, or -2 when it is one
// above kMaxDim.
int parse_positive(std::string_view s) {
  if (s.empty() || s.find_first_not_of("0123456789") != std::string_view::npos) return -1;
  const size_t first = std::min(s.find_first_not_of('0'), s.size());
  if (s.size() - first > 7) return -2;
  int v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size() || v < 1) return -1;
  return v > kMaxDim ? -2 : v;
}

[[noreturn]] void bad(std::string_view text, const std::string& why) {
  usage_error("invalid pattern " + in_quotes(text) + ": " + why + "; " + Pattern::help());
}

}  // namespace

const char* Pattern::help() {
  return "a pattern is RxC with R, C >= 1 (e.g. 4x1, 1x4, 4x16, 1x1), channelx1, 1xchannel, or N:M "
         "with 0 < N < M (e.g. 2:4, at most N nonzeros in every M consecutive input channels)";
}

Pattern Pattern::block(int rows, int cols) {
  auto ok = [](int d) { return d == kChannel || (d >= 1 && d <= kMaxDim); };
  if (!ok(rows) || !ok(cols))
    usage_error("invalid block pattern " + std::to_string(rows) + "x" + std::to_string(cols) + ": " + help());
  if (rows == kChannel && cols == kChannel)
    usage_error("invalid pattern channelxchannel: it would prune whole tensors; " + std::string(help()));
  return Pattern(Kind::Block, rows, cols);
}

Pattern Pattern::n_of_m(int n, int m) {
  if (n < 1 || m < 2 || n >= m || m > kMaxDim)
    usage_error("invalid N:M pattern " + std::to_string(n) + ":" + std::to_string(m) + ": need 0 < N < M; " + help());
  return Pattern(Kind::NM, n, m);
}

Pattern Pattern::parse(std::string_view text) {
  std::string s(text);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  if (s.empty()) bad(text, "it is empty");
  if (auto colon = s.find(':'); colon != std::string::npos) {
    int n = parse_positive(std::string_view(s).substr(0, colon));
    int m = parse_positive(std::string_view(s).substr(colon + 1));
    if (n == -2 || m == -2) bad(text, "N and M must be at most " + std::to_string(kMaxDim));
    if (n < 0 || m < 0) bad(text, "N and M must be positive integers");
    if (n >= m) bad(text, "N must be smaller than M");
    return n_of_m(n, m);
  }
  auto x = s.find('x');
  if (x == std::string::npos) bad(text, "expected RxC or N:M");
  auto dim = [&](std::string_view part) {
    if (part == "channel") return int(kChannel);
    int v = parse_positive(part);
    if (v == -2) bad(text, "R and C must be at most " + std::to_string(kMaxDim) + " (or 'channel')");
    if (v < 0) bad(text, "R and C must be integers >= 1 or 'channel'");
    return v;
  };
  int r = dim(std::string_view(s).substr(0, x));
  int c = dim(std::string_view(s).substr(x + 1));
  if (r == kChannel && c == kChannel) bad(text, "channelxchannel would prune whole tensors");
  return block(r, c);
}

std::string Pattern::str() const {
  if (is_nm()) return std::to_string(a_) + ":" + std::to_string(b_);
  auto dim = [](int d) { return d == kChannel ? std::string("channel") : std::to_string(d); };
  return dim(a_) + "x" + dim(b_);
}

int64_t BlockGrid::row_end(int64_t i) const { return std::min(rows, (i + 1) * block_rows); }
int64_t BlockGrid::col_end(int64_t j) const { return std::min(cols, (j + 1) * block_cols); }
int64_t BlockGrid::block_elems(int64_t i, int64_t j) const {
  return (row_end(i) - row_begin(i)) * (col_end(j) - col_begin(j));
}

BlockGrid block_grid(const Pattern& p, int64_t oc, int64_t ic) {
  BlockGrid g;
  g.rows = oc;
  g.cols = ic;
  if (p.is_nm()) {
    g.block_rows = 1;
    g.block_cols = p.m();
  } else {
    g.block_rows = std::max<int64_t>(1, p.block_rows(oc));
    g.block_cols = std::max<int64_t>(1, p.block_cols(ic));
  }
  return g;
}

void require_blocks_fit(const Pattern& p, int64_t oc, int64_t ic, const std::string& name,
                        const std::string& leave_out) {
  const std::string or_leave_out = leave_out.empty() ? "" : ", or " + leave_out;
  if (p.is_nm() && ic < p.m())
    usage_error("pattern " + p.str() + " does not fit " + name + " (" + std::to_string(oc) + "x" + std::to_string(ic) +
                " as a matrix: rows of " + std::to_string(ic) + ", fewer than a group of " + std::to_string(p.m()) +
                "); use a smaller M" + or_leave_out);
  if (!p.is_block() || block_grid(p, oc, ic).blocks() != 1) return;
  usage_error("pattern " + p.str() + " does not fit " + name + " (" + std::to_string(oc) + "x" + std::to_string(ic) +
              " as a matrix: one block), so pruning could only zero all of it or none of it; use a smaller "
              "pattern" +
              or_leave_out);
}

}  // namespace spruce
