// Every sparse GEMM kernel the CPU (and SPRUCE_MAX_ISA) allows, against the dense oracle, exactly:
// integer-valued f32 keeps sums exact, INT8 is exact by definition. Each kernel runs on weights
// packed by pack_weights() for it, on the cases its accepts() takes; every kernel must run a
// stated number of cases (coverage.hpp). Seeds are fixed and printed.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <stdexcept>

#include "coverage.hpp"
#include "kernels/kernel.hpp"
#include "kernels/reference/ref.hpp"
#include "spruce/bench.hpp"
#include "spruce/error.hpp"

namespace spruce::kernels {
namespace {

struct Case {
  int64_t m, k, n;
  std::string pattern;
  double sparsity;
  Activation act;
  OutType out;
  bool bias;
  uint32_t seed;
  std::string str() const {
    std::ostringstream s;
    s << "m=" << m << " k=" << k << " n=" << n << " pattern=" << pattern << " sparsity=" << sparsity
      << " act=" << activation_name(act) << " out=" << int(out) << " bias=" << bias << " seed=" << seed;
    return s.str();
  }
};

Problem problem_of(const Kernel& kr, const Case& c) {
  return Problem{Op::Spmm, kr.dtype, Pattern::parse(c.pattern), c.m, c.k, c.n};
}

// Runs kernel kr on case c, split into two strip ranges and m blocks of 64, into a strided,
// sentinel-filled output (each range's y from its first column: y_col0); compares with the dense oracle element by
// element.
void run_case(const Kernel& kr, const Case& c) {
  SCOPED_TRACE(std::string(kr.name) + " " + c.str());
  std::mt19937 rng(c.seed);
  const Pattern p = Pattern::parse(c.pattern);
  const bool s8 = kr.dtype == DType::S8;
  const int h = kr.h;
  const int64_t ldy = c.n + 3;
  const size_t esz = s8 && c.out != OutType::F32 ? 1 : 4;
  std::vector<uint8_t> y(size_t(c.m * ldy) * esz), want(y.size());
  std::vector<float> bias = bench::random_vec<float>(size_t(c.n), -20, 20, rng);
  Epilogue ep;
  ep.act = c.act;
  ep.bias = c.bias ? bias.data() : nullptr;
  std::vector<float> scale;
  std::vector<int32_t> comp;
  // Garbage where pack() writes nothing (the u8 Gather rows' padding): a kernel must not read it.
  std::vector<uint8_t> xt(xt_bytes(kr.dtype, c.m, c.k, kr.layout), uint8_t(0x5B));
  // Fill with a sentinel: NaN for f32, 0xA5 for u8/s8; the stride padding must keep it.
  if (esz == 4) {
    const float nan = std::nanf("");
    for (size_t i = 0; i < y.size() / 4; ++i) std::memcpy(&y[i * 4], &nan, 4);
  } else {
    std::fill(y.begin(), y.end(), uint8_t(0xA5));
  }
  want = y;
  auto run = [&](const StripView& w, const void* x) {
    kr.pack(x, c.m, c.k, 0, c.k, xt.data(), xt_ld(kr.dtype, c.m, kr.layout, c.k));
    SpmmArgs a;
    a.xt = xt.data();
    a.ldxt = xt_ld(kr.dtype, c.m, kr.layout, c.k);
    a.m_total = c.m;
    a.y = y.data();
    a.ldy = ldy;
    a.ep = &ep;
    const int64_t strips = (c.n + h - 1) / h, half = strips / 2;
    for (int64_t m0 = 0; m0 < c.m; m0 += 64)
      for (auto [s0, s1] : {std::pair{int64_t(0), half}, std::pair{half, strips}}) {
        a.m0 = m0;
        a.m1 = std::min(c.m, m0 + 64);
        a.s0 = s0;
        a.s1 = s1;
        // y from the range's first column, as the operator's staged bands run (y_col0).
        a.y_col0 = s0 * h;
        a.y = y.data() + size_t(a.y_col0) * esz;
        kr.spmm()(w, a);
      }
  };
  int64_t nonzero = 0;
  if (s8) {
    auto w = bench::pruned_integers<int8_t>(c.n, c.k, p, c.sparsity, rng, 127, c.seed % 5 == 0);
    auto x = bench::random_vec<uint8_t>(size_t(c.m * c.k), 0, 255, rng);
    const int32_t zp = int32_t(c.seed % 200);
    const PackedWeights sw = pack_weights(kr, MatrixView<const int8_t>(w.view()));
    for (int64_t n = 0; n < c.n; ++n) {
      scale.push_back(0.001f * float(1 + n % 7));
      comp.push_back(zp * sw.impl().wsum[size_t(n)]);
    }
    ep.scale = scale.data();
    ep.comp = comp.data();
    ep.out = c.out;
    ep.y_inv_scale = 1.0f / 0.05f;
    ep.y_zero_point = c.out == OutType::U8 ? 100.0f : -3.0f;
    ref::dense_s8(x.data(), c.m, c.k, c.n, w.data.data(), zp, ep, want.data(), ldy);
    run(sw.impl().view, x.data());
  } else {
    auto w = bench::pruned_integers<float>(c.n, c.k, p, c.sparsity, rng, 3, c.seed % 5 == 0);
    auto x = bench::random_vec<float>(size_t(c.m * c.k), -4, 4, rng);
    ref::dense_f32(x.data(), c.m, c.k, c.n, w.data.data(), ep, reinterpret_cast<float*>(want.data()), ldy);
    const PackedWeights sw = pack_weights(kr, MatrixView<const float>(w.view()));
    run(sw.impl().view, x.data());
  }
  for (int64_t i = 0; i < c.m; ++i)
    for (int64_t j = 0; j < ldy; ++j) {
      const size_t at = size_t(i * ldy + j) * esz;
      ASSERT_EQ(std::memcmp(&y[at], &want[at], esz), 0)
          << "at m=" << i << " n=" << j << (j >= c.n ? " (stride padding)" : "");
      if (j < c.n) {
        if (esz == 4) {
          float v;
          std::memcpy(&v, &y[at], 4);
          nonzero += v != 0.0f;
        } else {
          nonzero += y[at] != 0;
        }
      }
    }
  // A comparison where (nearly) everything is zero proves nothing ("mistrusted"). With a few
  // big blocks (16x64 on a small W), all of them may be zero by chance: not mistrusted.
  // Row 0 is zeroed on purpose when seed % 5 == 0 (the single row when n = 1).
  const bool many_blocks = block_grid(p, c.n, c.k).blocks() >= 8 && !(c.seed % 5 == 0 && c.n < 4);
  if (c.sparsity < 0.6 && c.k >= 8 && many_blocks && c.act == Activation::None && c.out == OutType::F32) {
    EXPECT_GT(nonzero, c.m * c.n / 4) << "mistrusted: almost all outputs are zero";
  }
}

// Runs the case when the kernel accepts it (and counts it); false when it does not.
bool check(const Kernel& kr, const Case& c) {
  if (!kr.accepts(problem_of(kr, c))) return false;
  coverage::count_case(kr);
  run_case(kr, c);
  return true;
}

std::vector<const Kernel*> runnable(DType d) {
  std::vector<const Kernel*> ks;
  for (const Kernel& k : registry())
    if (k.op == Op::Spmm && k.dtype == d && runs_here(k)) ks.push_back(&k);
  return ks;
}

const char* kPatterns[] = {"1x1", "4x1", "1x4", "4x16", "2x1",       "16x1",      "8x1",  "3x2",
                           "2:4", "1:4", "4:8", "2:3",  "channelx1", "1xchannel", "16x4", "16x64"};
constexpr int kCasesPerKernel = 150, kCasesPerReference = 40;
const auto* const kCoverage =
    ::testing::AddGlobalTestEnvironment(new coverage::KernelCoverage(Op::Spmm, kCasesPerReference));

void sweep(DType d, uint32_t seed0) {
  std::printf("kernel sweep: seeds %u.. (ISA cap %s)\n", seed0, std::string(isa_name(max_isa())).c_str());
  const int64_t ms[] = {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100};
  const int64_t ks[] = {1, 3, 4, 5, 15, 16, 17, 63, 64, 65, 130};
  const int64_t ns[] = {1, 3, 4, 5, 15, 16, 17, 33};
  for (const Kernel* kr : runnable(d)) {
    const bool ref = kr->isa == Isa::Scalar;
    // Edges, each pattern once.
    uint32_t seed = seed0;
    for (const char* p : kPatterns)
      for (int64_t m : {int64_t(1), int64_t(16), int64_t(65)})
        check(*kr, Case{m, 67, 37, p, 0.5, Activation::None, OutType::F32, true, seed++});
    // 0% and 100% sparsity, empty rows.
    check(*kr, Case{33, 64, 16, "4x1", 0.0, Activation::ReLU, OutType::F32, true, seed++});
    // Every pattern at 100%: no strip has an entry and the packed arrays are empty. (Loaded from
    // a file, they are also null: PackedLinear.FullyPrunedLayerRoundTrips and packed_fuzz.)
    for (const char* p : kPatterns)
      for (int64_t m : {int64_t(1), int64_t(33)})
        check(*kr, Case{m, 64, 16, p, 1.0, Activation::None, OutType::F32, true, seed++});
    // Random sweep: draws until the kernel has accepted `cases` of them.
    std::mt19937 rng(seed0);
    const int cases = ref ? kCasesPerReference : kCasesPerKernel;
    for (int i = 0, draws = 0; i < cases && draws < 200000; ++draws) {
      Case c{ms[rng() % std::size(ms)],
             ks[rng() % std::size(ks)],
             ns[rng() % std::size(ns)],
             kPatterns[rng() % std::size(kPatterns)],
             std::array{0.0, 0.5, 0.9, 1.0}[rng() % 4],
             Activation(rng() % 3),
             d == DType::S8 ? OutType(rng() % 3) : OutType::F32,
             bool(rng() % 2),
             seed};
      if (!check(*kr, c)) continue;
      ++seed, ++i;
      if (testing::Test::HasFatalFailure()) return;
    }
  }
}

TEST(Kernels, F32MatchesOracle) { sweep(DType::F32, 1000); }
TEST(Kernels, S8MatchesOracle) { sweep(DType::S8, 2000); }

// Larger M crosses the u8 chunk and the f32 tile constants.
TEST(Kernels, LargeM) {
  for (const Kernel* kr : runnable(DType::S8))
    check(*kr, Case{130, 96, 24, "4x1", 0.8, Activation::None, OutType::F32, true, 7});
  for (const Kernel* kr : runnable(DType::F32))
    check(*kr, Case{150, 96, 40, "16x1", 0.8, Activation::ReLU, OutType::F32, false, 8});
}

TEST(Kernels, PackMatchesReference) {
  for (const Kernel& kr : registry()) {
    if (!runs_here(kr) || kr.op != Op::Spmm) continue;
    for (int64_t m : {1, 17, 33, 70})
      for (int64_t k : {1, 30, 64, 100}) {
        std::mt19937 rng(uint32_t(m * 1000 + k));
        const bool s8 = kr.dtype == DType::S8;
        const size_t es = s8 ? 1 : 4;
        const int64_t ld = xt_ld(kr.dtype, m, kr.layout, k);
        std::vector<uint8_t> x(size_t(m * (k + 2)) * es), a(xt_bytes(kr.dtype, m, k, kr.layout), 1), b(a.size(), 2);
        for (auto& v : x) v = uint8_t(rng() % 100);  // small bytes: finite floats
        kr.pack(x.data(), m, k + 2, 0, k, a.data(), ld);
        if (kr.max_m && m > kr.max_m) continue;
        const PackFn want = kr.layout == Layout::Quads      ? ref::pack_u8_quads
                            : kr.layout == Layout::M8       ? ref::pack_u8_m8
                            : kr.layout == Layout::Rows     ? ref::pack_u8_rows
                            : kr.layout == Layout::Gather64 ? ref::pack_u8_gather64
                            : kr.layout == Layout::Rows64   ? ref::pack_u8_rows64
                            : kr.layout == Layout::Windows  ? ref::pack_u8_windows
                            : kr.layout == Layout::Words    ? ref::pack_s16
                            : s8                            ? ref::pack_u8
                                                            : ref::pack_f32;
        if (want == kr.pack) continue;  // the kernel uses the reference packing itself
        want(x.data(), m, k + 2, 0, k, b.data(), ld);
        // u8 Gather layouts and Words leave each row's padding past the last chunk unwritten (kernel.hpp).
        const bool chunks =
            s8 && (kr.layout == Layout::Gather || kr.layout == Layout::Gather64 || kr.layout == Layout::Words);
        const int64_t used = kr.layout == Layout::Gather64 ? round_up(m, 64)
                             : kr.layout == Layout::Words  ? round_up(m, 16)
                                                           : round_up(m, u8_chunk(m));
        const int64_t bytes_per = kr.layout == Layout::Words ? 2 : 1;
        if (chunks)
          for (int64_t c = 0; c < k; ++c)
            for (int64_t i = used * bytes_per; i < ld * bytes_per; ++i)
              a[size_t(c * ld * bytes_per + i)] = b[size_t(c * ld * bytes_per + i)];
        ASSERT_EQ(a, b) << kr.name << " m=" << m << " k=" << k;
      }
  }
}

// The row-lane kernel (m <= 2) on lists that name input channels up to round_up(k, 4) - 1 with
// zero weights: it gathers xt for them too, so xt_bytes() must cover them. And the strip kernels
// at m <= 32, whose xt rows are packed without padding (16 or 32 bytes), reading whole rows. ASan
// does not see gathers: xt ends at a guard page here.
TEST(Kernels, NarrowKernelsReadInsideXt) {
  const std::pair<const char*, std::vector<int64_t>> kernels[] = {{"s8-spmm-1x4-m2-avx512vnni", {1, 2}},
                                                                  {"s8-spmm-1x1-avx512vnni", {1, 16, 17, 32}},
                                                                  {"s8-spmm-4x1-avx512vnni", {5, 16, 31, 32}}};
  for (const auto& [name, ms] : kernels) {
    SCOPED_TRACE(name);
    const Kernel* narrow = find(name);
    ASSERT_NE(narrow, nullptr);
    if (narrow->isa > max_isa()) GTEST_SKIP() << "needs AVX-512 VNNI";
    for (const int64_t m : ms) {
      const int64_t k = 75, n = 8;
      std::mt19937 rng(31);
      const auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse("4x16"), 0.0, rng, 127);
      const PackedWeights pw = pack_weights(*narrow, MatrixView<const int8_t>(w.view()));
      const auto& sw = pw.impl().s8;
      ASSERT_TRUE(std::any_of(sw.k.begin(), sw.k.end(), [&](int32_t c) { return c + 3 >= k; }));
      const size_t bytes = xt_bytes(DType::S8, m, k, narrow->layout), page = size_t(sysconf(_SC_PAGESIZE));
      ASSERT_LE(bytes, page);
      auto* mem =
          static_cast<uint8_t*>(mmap(nullptr, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      ASSERT_NE(mem, MAP_FAILED);
      ASSERT_EQ(mprotect(mem + page, page, PROT_NONE), 0);
      uint8_t* xt = mem + page - bytes;
      const auto x = bench::random_vec<uint8_t>(size_t(m * k), 0, 255, rng);
      const int64_t ldxt = xt_ld(DType::S8, m, narrow->layout, k);
      narrow->pack(x.data(), m, k, 0, k, xt, ldxt);
      std::vector<float> scale(size_t(n), 0.01f), y(size_t(m * n)), want(y.size());
      std::vector<int32_t> comp(size_t(n), 0);
      Epilogue ep;
      ep.scale = scale.data();
      ep.comp = comp.data();
      ref::dense_s8(x.data(), m, k, n, w.data.data(), 0, ep, want.data(), n);
      SpmmArgs a;
      a.xt = xt;
      a.ldxt = ldxt;
      a.m_total = m;
      a.m1 = m;
      a.s1 = sw.strips();
      a.y = y.data();
      a.ldy = n;
      a.ep = &ep;
      narrow->spmm()(pw.impl().view, a);
      EXPECT_EQ(y, want) << "m=" << m;
      munmap(mem, 2 * page);
    }
  }
}

// The bytes of array `name` of p (throws where p has none).
std::vector<uint8_t>& array_bytes(PackedParts& p, const char* name) {
  for (auto& a : p.arrays)
    if (a.name == name) return a.bytes;
  throw std::runtime_error(name);
}

// A check that from_parts() refuses each corruption of `good`, the parts of an n x k INT8 packing.
auto rejecter(const PackedParts& good, int64_t n, int64_t k) {
  return [good, n, k](const char* what, const std::function<void(PackedParts&)>& corrupt) {
    PackedParts p = good;
    corrupt(p);
    EXPECT_THROW(PackedWeights::from_parts(p, true, n, k), Error) << what;
  };
}

// The aligned quads of input channels where row r of w has a nonzero.
int64_t quads_with_nonzeros(const Matrix<int8_t>& w, int64_t r) {
  int64_t quads = 0;
  for (int64_t c = 0; c < w.cols; c += 4) {
    bool any = false;
    for (int64_t t = c; t < std::min(w.cols, c + 4); ++t) any = any || w(r, t) != 0;
    quads += any;
  }
  return quads;
}

// The row-lane format: rows sorted by list length into panels, a round trip through its parts,
// and every corruption of it caught before the kernel could gather out of bounds.
TEST(Kernels, RowLanesFormatRoundTripsAndRejectsCorruption) {
  const Kernel* lanes = find("s8-spmm-1x4-m2-avx512vnni");
  ASSERT_NE(lanes, nullptr);
  std::mt19937 rng(77);
  const int64_t n = 37, k = 70;
  const auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse("1x1"), 0.9, rng, 127);
  const PackedWeights pw = pack_weights(*lanes, MatrixView<const int8_t>(w.view()));
  const auto& s = pw.impl().s8;
  ASSERT_EQ(s.perm.size(), 48u);
  // Longest lists first: a panel's steps are its first row's list length.
  auto quads_of = [&](int32_t r) { return quads_with_nonzeros(w, r); };
  for (size_t l = 1; l < size_t(n); ++l) EXPECT_GE(quads_of(s.perm[l - 1]), quads_of(s.perm[l]));
  for (int64_t p = 0; p < s.strips(); ++p)
    EXPECT_EQ((s.ptr[size_t(p + 1)] - s.ptr[size_t(p)]) / 16, quads_of(s.perm[size_t(p * 16)]));
  EXPECT_EQ(pw.unpack_s8().data, w.data);
  const PackedParts good = pw.parts();
  EXPECT_EQ(PackedWeights::from_parts(good, true, n, k).unpack_s8().data, w.data);

  const auto rejected = rejecter(good, n, k);
  auto ints = [](PackedParts& p, const char* name) { return reinterpret_cast<int32_t*>(array_bytes(p, name).data()); };
  rejected("row twice", [&](PackedParts& p) { ints(p, "strip_perm")[1] = ints(p, "strip_perm")[0]; });
  rejected("row out of range", [&](PackedParts& p) { ints(p, "strip_perm")[40] = int32_t(n); });
  rejected("row missing", [&](PackedParts& p) { ints(p, "strip_perm")[0] = -1; });
  rejected("no permutation", [&](PackedParts& p) {
    std::erase_if(p.arrays, [](const PackedParts::Array& a) { return a.name == "strip_perm"; });
  });
  rejected("unaligned quad", [&](PackedParts& p) { ints(p, "strip_k")[0] += 1; });
  rejected("quad past the row", [&](PackedParts& p) { ints(p, "strip_k")[0] = int32_t(k + 8); });
  rejected("unsorted lane", [&](PackedParts& p) { std::swap(ints(p, "strip_k")[0], ints(p, "strip_k")[16]); });
  rejected("partial step", [&](PackedParts& p) {
    for (auto& a : p.arrays)
      if (a.name == "strip_ptr") reinterpret_cast<int64_t*>(a.bytes.data())[1] -= 1;
  });
  // A weight past the last input channel: the last panel's padding lanes (rows 37..47).
  rejected("weight in padding", [&](PackedParts& p) {
    for (auto& a : p.arrays)
      if (a.name == "strip_w") a.bytes[a.bytes.size() - 1] = 5;
  });
  // A permutation in a format that has none.
  const Kernel& strips = select(Problem{Op::Spmm, DType::S8, Pattern::parse("1x1"), 0, k, n}, Isa::Scalar);
  PackedParts foreign = pack_weights(strips, MatrixView<const int8_t>(w.view())).parts();
  foreign.arrays.push_back({"strip_perm", PackedParts::Type::I32, std::vector<uint8_t>(4, 0)});
  EXPECT_THROW(PackedWeights::from_parts(foreign, true, n, k), Error);
}

// The quad-mask format: masks and compressed dwords per panel, a round trip through its parts,
// and every corruption of it caught before the kernel could read past its weights.
TEST(Kernels, QuadMasksFormatRoundTripsAndRejectsCorruption) {
  const Kernel* masked = find("s8-spmm-1x1-m4-avx512vnni");
  ASSERT_NE(masked, nullptr);
  std::mt19937 rng(78);
  const int64_t n = 37, k = 70;
  const auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse("1x1"), 0.9, rng, 127);
  const PackedWeights pw = pack_weights(*masked, MatrixView<const int8_t>(w.view()));
  const auto& s = pw.impl().s8;
  int64_t nonzero_dwords = 0;
  for (int64_t r = 0; r < n; ++r) nonzero_dwords += quads_with_nonzeros(w, r);
  EXPECT_EQ(int64_t(s.w.size() / 4), nonzero_dwords);  // only the nonzero dwords are stored
  EXPECT_EQ(pw.unpack_s8().data, w.data);
  const PackedParts good = pw.parts();
  EXPECT_EQ(PackedWeights::from_parts(good, true, n, k).unpack_s8().data, w.data);
  const auto rejected = rejecter(good, n, k);
  const auto bytes = array_bytes;
  auto wptr = [&](PackedParts& p) { return reinterpret_cast<int64_t*>(bytes(p, "strip_wptr").data()); };
  rejected("a mask bit too many", [&](PackedParts& p) { bytes(p, "strip_sel")[0] ^= 0x01; });
  rejected("a row past the last",
           [&](PackedParts& p) { bytes(p, "strip_sel")[bytes(p, "strip_sel").size() - 1] = 0x80; });
  rejected("missing masks", [&](PackedParts& p) { bytes(p, "strip_sel").resize(bytes(p, "strip_sel").size() - 2); });
  rejected("offsets descend", [&](PackedParts& p) { wptr(p)[1] = wptr(p)[3] + 5; });
  rejected("offsets past the end", [&](PackedParts& p) { wptr(p)[3] += 1; });
  rejected("partial dword", [&](PackedParts& p) { bytes(p, "strip_w").pop_back(); });
  rejected("no offsets", [&](PackedParts& p) {
    std::erase_if(p.arrays, [](const PackedParts::Array& a) { return a.name == "strip_wptr"; });
  });
}

// Random single-byte corruptions of the two few-row formats: each is rejected, or it is a valid
// packing that the kernel runs within its arrays (under the sanitizers; gathers stay inside xt by
// the checks on every quad start).
// The window formats: chunks inside one window of input channels (128 for Windows, 64 for
// LaneWindows), a round trip through their parts, and the corruptions that would make the kernel
// read past X or count a weight twice.
void windows_round_trip(const char* name, const char* pattern) {
  SCOPED_TRACE(name);
  const Kernel* windows = find(name);
  ASSERT_NE(windows, nullptr);
  const int window = windows->weights == WeightFormat::Windows ? 128 : 64;
  std::mt19937 rng(79);
  const int64_t n = 38, k = 300;  // the last strip or panel short; windows from 0 to 256
  const auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse(pattern), 0.7, rng, 127);
  const PackedWeights pw = pack_weights(*windows, MatrixView<const int8_t>(w.view()));
  const auto& s = pw.impl().s8;
  for (size_t c = 0; c < s.k.size(); ++c) EXPECT_EQ(s.k[c] % 64, 0);
  for (uint8_t sel : s.sel) EXPECT_LT(sel, window);
  EXPECT_EQ(pw.unpack_s8().data, w.data);
  const PackedParts good = pw.parts();
  EXPECT_EQ(PackedWeights::from_parts(good, true, n, k).unpack_s8().data, w.data);
  const auto rejected = rejecter(good, n, k);
  const auto bytes = array_bytes;
  auto base = [&](PackedParts& p) { return reinterpret_cast<int32_t*>(bytes(p, "strip_k").data()); };
  rejected("a window past the input channels", [&](PackedParts& p) { base(p)[1] = 320; });
  rejected("an unaligned window", [&](PackedParts& p) { base(p)[0] += 8; });
  rejected("a negative window", [&](PackedParts& p) { base(p)[0] = -64; });
  rejected("a selector past its window", [&](PackedParts& p) { bytes(p, "strip_sel")[3] = uint8_t(window + 10); });
  rejected("a channel listed twice", [&](PackedParts& p) { bytes(p, "strip_sel")[1] = bytes(p, "strip_sel")[0]; });
  rejected("missing selectors", [&](PackedParts& p) { bytes(p, "strip_sel").pop_back(); });
  rejected("missing weights", [&](PackedParts& p) { bytes(p, "strip_w").resize(bytes(p, "strip_w").size() - 64); });
  rejected("offsets past the end", [&](PackedParts& p) {
    std::vector<uint8_t>& ptr = bytes(p, "strip_ptr");
    reinterpret_cast<int64_t*>(ptr.data())[ptr.size() / 8 - 1] += 1;
  });
}

TEST(Kernels, WindowsFormatsRoundTripAndRejectCorruption) {
  for (const auto& [name, pattern] :
       {std::pair{"s8-spmm-4x1-w-m8-avx512vnni", "4x1"}, std::pair{"s8-spmm-1x1-w-m32-avx512vnni", "1x1"},
        std::pair{"s8-spmm-1x4-w-m8-avx512vnni", "1x4"}})
    windows_round_trip(name, pattern);
}

// Lane windows: one window per 64 input channels that hold a nonzero of the panel, as many chunks
// as its busiest lane needs (4 input channels a chunk), and each lane's channels in order.
TEST(Kernels, LaneWindowsGiveEachChannelItsOwnLane) {
  const Kernel* kr = find("s8-spmm-1x1-w-m32-avx512vnni");
  ASSERT_NE(kr, nullptr);
  Matrix<int8_t> w(17, 130);  // two panels, the second with one channel; windows 0, 64 and 128
  for (int64_t c : {1, 5, 9, 13, 17, 70}) w(0, c) = int8_t(c);  // lane 0: 5 in window 0, 1 in 64
  w(3, 2) = -1;
  w(16, 129) = 7;
  const PackedWeights pw = pack_weights(*kr, MatrixView<const int8_t>(std::as_const(w).view()));
  const auto& s = pw.impl().s8;
  EXPECT_EQ(s.ptr, (std::vector<int64_t>{0, 3, 4}));      // panel 0: 2 chunks at 0, 1 at 64
  EXPECT_EQ(s.k, (std::vector<int32_t>{0, 0, 64, 128}));  // panel 1: 1 chunk at 128
  EXPECT_EQ(s.sel[0], 1);
  EXPECT_EQ(s.sel[3], 13);
  EXPECT_EQ(s.sel[64], 17);  // lane 0's fifth, in the second chunk
  EXPECT_EQ(s.w[12], -1);    // lane 3, position 0
  EXPECT_EQ(s.sel[128], 6);  // 70 - 64
  EXPECT_EQ(s.sel[192], 1);  // 129 - 128, lane 0 of panel 1
  EXPECT_EQ(s.w[192], 7);
  EXPECT_EQ(pw.unpack_s8().data, w.data);
}

TEST(Kernels, FewRowFormatsSurviveRandomCorruption) {
  std::mt19937 rng(1200);
  for (const auto& [name, pattern] :
       {std::pair{"s8-spmm-1x4-m2-avx512vnni", "1x1"}, std::pair{"s8-spmm-1x1-m4-avx512vnni", "1x1"},
        std::pair{"s8-spmm-4x1-w-m8-avx512vnni", "4x1"}, std::pair{"s8-spmm-1x1-w-m32-avx512vnni", "1x1"},
        std::pair{"s8-spmm-1x4-w-m8-avx512vnni", "1x4"}}) {
    SCOPED_TRACE(name);
    const Kernel* kr = find(name);
    ASSERT_NE(kr, nullptr);
    const int64_t n = 24, k = 200, m = kr->max_m;
    const auto w = bench::pruned_integers<int8_t>(n, k, Pattern::parse(pattern), 0.8, rng, 127);
    const PackedParts good = pack_weights(*kr, MatrixView<const int8_t>(w.view())).parts();
    const auto x = bench::random_vec<uint8_t>(size_t(m * k), 0, 255, rng);
    std::vector<uint8_t> xt(xt_bytes(DType::S8, m, k, kr->layout));
    const int64_t ldxt = xt_ld(DType::S8, m, kr->layout, k);
    kr->pack(x.data(), m, k, 0, k, xt.data(), ldxt);
    std::vector<float> scale(size_t(n), 0.01f), y(size_t(m * n));
    std::vector<int32_t> comp(size_t(n), 0);
    Epilogue ep;
    ep.scale = scale.data();
    ep.comp = comp.data();
    int rejected = 0, ran = 0;
    for (int trial = 0; trial < 400; ++trial) {
      PackedParts bad = good;
      auto& target = bad.arrays[rng() % bad.arrays.size()];
      if (target.bytes.empty()) continue;
      const size_t at = rng() % target.bytes.size();
      target.bytes[at] = uint8_t(target.bytes[at] + std::uniform_int_distribution<int>(1, 255)(rng));
      try {
        const PackedWeights pw = PackedWeights::from_parts(bad, true, n, k);
        if (!runs_here(*kr)) continue;
        SpmmArgs a;
        a.xt = xt.data();
        a.ldxt = ldxt;
        a.m_total = m;
        a.m1 = m;
        a.s1 = (n + kr->h - 1) / kr->h;
        a.y = y.data();
        a.ldy = n;
        a.ep = &ep;
        kr->spmm()(pw.impl().view, a);
        ++ran;
      } catch (const Error&) {
        ++rejected;
      }
    }
    EXPECT_GT(rejected, 100);
    std::printf("%s: %d corruptions rejected, %d ran\n", name, rejected, ran);
  }
}

TEST(Kernels, DispatchPicksFastestAllowed) {
  const bool avx2 = max_isa() >= Isa::Avx2, vnni = max_isa() >= Isa::Avx512Vnni, amx = max_isa() >= Isa::Amx;
  auto pick = [](const char* pattern, int64_t m) {
    return std::string(select(Problem{Op::Spmm, DType::S8, Pattern::parse(pattern), m, 768, 768}).name);
  };
  // Without VNNI: the AVX2 kernel of the pattern's block height, else the reference.
  const std::string s4 = avx2 ? "s8-spmm-4x1-avx2" : "s8-spmm-ref", s1 = avx2 ? "s8-spmm-1x1-avx2" : "s8-spmm-ref";
  EXPECT_EQ(pick("4x1", 128), amx ? "s8-spmm-16x1-amx" : vnni ? "s8-spmm-4x1-avx512vnni" : s4);
  EXPECT_EQ(pick("4x16", 0), amx ? "s8-spmm-16x4-amx" : vnni ? "s8-spmm-4x4-avx512vnni" : s4);
  EXPECT_EQ(pick("16x4", 0), amx ? "s8-spmm-16x4-amx" : vnni ? "s8-spmm-4x4-avx512vnni" : s4);
  EXPECT_EQ(pick("4x16", 3), vnni && avx512_vbmi() ? "s8-spmm-4x4-w-m4-avx512vnni"
                             : vnni                ? "s8-spmm-4x1-m8-avx512vnni"
                             : avx2                ? "s8-spmm-4x1-m4-avx2"
                                                   : "s8-spmm-ref");  // fresh weights: strips
  EXPECT_EQ(pick("2:4", 0), vnni ? "s8-spmm-4of8-avx512vnni" : s1);
  EXPECT_EQ(pick("4:8", 0), vnni ? "s8-spmm-4of8-avx512vnni" : s1);
  EXPECT_EQ(pick("2:3", 0), vnni ? "s8-spmm-1x1-avx512vnni" : s1);
  // Scattered nonzeros: the lane windows up to m = 32 where VBMI is; then AMX's union of 16
  // channels, or the strip kernel.
  if (vnni && avx512_vbmi()) {
    EXPECT_EQ(pick("1x1", 32), "s8-spmm-1x1-w-m32-avx512vnni");
  }
  EXPECT_EQ(pick("1x1", 33), amx ? "s8-spmm-16x1-amx" : vnni ? "s8-spmm-1x1-avx512vnni" : s1);
  EXPECT_EQ(pick("1x4", 8), vnni && avx512_vbmi() ? "s8-spmm-1x4-w-m8-avx512vnni" : pick("1x4", 0));
  const auto pick_f32 = [](const char* pattern) {
    return std::string(select(Problem{Op::Spmm, DType::F32, Pattern::parse(pattern), 0, 768, 768}).name);
  };
  const bool avx512 = max_isa() >= Isa::Avx512;
  EXPECT_EQ(pick_f32("16x1"), avx512 ? "f32-spmm-16x1-avx512" : avx2 ? "f32-spmm-8x1-avx2" : "f32-spmm-ref");
  EXPECT_EQ(pick_f32("4x1"), avx512 ? "f32-spmm-4x1-avx512" : avx2 ? "f32-spmm-4x1-avx2" : "f32-spmm-ref");
  EXPECT_EQ(pick_f32("2:4"), avx512 ? "f32-spmm-1x1-avx512" : avx2 ? "f32-spmm-1x1-avx2" : "f32-spmm-ref");
  // A second kernel for weights already packed must read the same format and tile.
  // (Below AMX: the operator packs a second copy for the VNNI kernels at small m.)
  const Isa cap = std::min(max_isa(), Isa::Avx512Vnni);
  const Kernel& quads = select(Problem{Op::Spmm, DType::S8, Pattern::parse("4x16"), 0, 768, 768}, cap);
  const Kernel& small = select(Problem{Op::Spmm, DType::S8, Pattern::parse("4x16"), 2, 768, 768, &quads}, cap);
  EXPECT_EQ(small.weights, quads.weights);
  EXPECT_EQ(small.h, quads.h);
  if (vnni) {  // no small-m kernel reads quad strips: the m <= 8 one lost to this one at every m
    EXPECT_STREQ(small.name, "s8-spmm-4x4-avx512vnni");
  }
  // Every operation and dtype ends in its scalar reference, which accepts everything.
  std::map<std::pair<Op, DType>, const Kernel*> last;
  for (const Kernel& k : registry()) last[{k.op, k.dtype}] = &k;
  EXPECT_EQ(last.size(), 8u);  // spmm x2, dot interaction x2, attention x3 (f32, bf16, s8), LayerNorm
  for (const auto& [key, k] : last) {
    EXPECT_EQ(k->isa, Isa::Scalar) << k->name;
    EXPECT_EQ(std::string(k->name).substr(std::string(k->name).size() - 4), "-ref") << k->name;
  }
  // Attention: the widest vectors that divide the head size.
  const auto pick_attention = [](int64_t head_size) {
    Problem p;
    p.op = Op::Attention;
    p.k = head_size;
    return std::string(select(p).name);
  };
  EXPECT_EQ(pick_attention(32), avx512 ? "f32-attention-avx512" : avx2 ? "f32-attention-avx2" : "f32-attention-ref");
  EXPECT_EQ(pick_attention(24), avx2 ? "f32-attention-avx2" : "f32-attention-ref");
  EXPECT_EQ(pick_attention(20), "f32-attention-ref");
  Problem int8_attention;
  int8_attention.op = Op::Attention, int8_attention.dtype = DType::S8;
  for (int64_t head_size : {32, 24}) {
    int8_attention.k = head_size;
    EXPECT_STREQ(select(int8_attention).name,
                 vnni && head_size % 16 == 0 ? "s8-attention-avx512vnni" : "s8-attention-ref");
  }
  // LayerNorm: the widest vectors, whatever the width (tails go one channel at a time).
  for (int64_t width : {1, 20, 384}) {
    Problem p;
    p.op = Op::LayerNorm;
    p.k = width;
    EXPECT_STREQ(select(p).name, avx512 ? "f32-layer-norm-avx512"
                                 : avx2 ? "f32-layer-norm-avx2"
                                        : "f32-layer-norm-ref");
  }
}

// CMake registers each suite under the caps below the level it read from /proc/cpuinfo
// (tests/CMakeLists.txt). Were the runtime to detect more, the level CMake missed would go untested.
TEST(Kernels, EveryLevelBelowTheHostsHasACappedRun) {
  EXPECT_LE(detected_isa(), parse_isa(SPRUCE_TEST_HOST_ISA))
      << "CPUID says " << isa_name(detected_isa()) << " but CMake read " << SPRUCE_TEST_HOST_ISA
      << " from /proc/cpuinfo: reconfigure, or set SPRUCE_ISA_CAPS by hand";
}

// Names follow "<dtype>-<op>-...-<isa>" and are unique.
TEST(Kernels, RegistryNamesAreUniqueAndSayWhatTheyAre) {
  std::set<std::string> seen;
  for (const Kernel& k : registry()) {
    const std::string name = k.name;
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_EQ(name.rfind(k.dtype == DType::S8 ? "s8-" : k.dtype == DType::BF16 ? "bf16-" : "f32-", 0), 0u) << name;
    const std::string isa = k.isa == Isa::Scalar       ? "ref"
                            : k.isa == Isa::Avx512Vnni ? "avx512vnni"
                                                       : std::string(isa_name(k.isa));
    EXPECT_EQ(name.substr(name.size() - isa.size()), isa) << name;
  }
}

}  // namespace
}  // namespace spruce::kernels
