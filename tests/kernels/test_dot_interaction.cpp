// Every dot-interaction kernel the CPU (and SPRUCE_MAX_ISA) allows against the scalar reference,
// byte for byte (they share one summation order); the reference against double-precision sums;
// and the operator's threading, strides and id checks. Seeds are fixed and printed.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <sstream>
#include <vector>

#include "coverage.hpp"
#include "kernels/interaction.hpp"
#include "kernels/kernel.hpp"
#include "spruce/error.hpp"
#include "spruce/interaction.hpp"

namespace spruce::kernels {
namespace {

struct Sample {
  std::vector<std::vector<float>> vectors;
  std::vector<const float*> ptrs;
};

Sample random_sample(int64_t count, int64_t dim, std::mt19937& rng) {
  std::normal_distribution<float> n(0.f, 1.f);
  Sample s;
  s.vectors.assign(size_t(count), std::vector<float>(size_t(dim)));
  for (auto& v : s.vectors)
    for (auto& x : v) x = n(rng);
  for (auto& v : s.vectors) s.ptrs.push_back(v.data());
  return s;
}

// Scale and zero point that spread the products over most of [0, 255], plus some clipping.
U8Quant quant_for(int64_t dim, int variant) {
  const float spread = 2.f * std::sqrt(float(dim));
  const U8Quant q[] = {u8_quant_for_range(-spread, spread),
                       u8_quant_for_range(-0.5f * spread, 3.f * spread),
                       u8_quant_for_range(0.f, spread),
                       {0.0371f, 17}};
  return q[variant];
}

// The dot-interaction kernels over f32 (DType::F32) or row-wise INT8 (DType::S8) tables, best first.
std::vector<const Kernel*> dot_kernels(DType tables) {
  std::vector<const Kernel*> ks;
  for (const Kernel& k : registry())
    if (k.op == Op::DotInteraction && k.dtype == tables) ks.push_back(&k);
  return ks;
}
const auto* const kCoverage =
    ::testing::AddGlobalTestEnvironment(new coverage::KernelCoverage(Op::DotInteraction, 100));

TEST(DotInteraction, EveryKernelMatchesTheReferenceExactly) {
  const auto& ref = *dot_kernels(DType::F32).back();
  ASSERT_EQ(std::string(ref.name), "f32-dot-interaction-u8-ref");
  int checked = 0;
  for (const Kernel* k : dot_kernels(DType::F32)) {
    const Kernel& kr = *k;
    if (kr.isa > max_isa()) continue;
    for (int64_t count : {1, 2, 3, 5, 6, 9, 17, 18, 27, 30, 50})
      for (int64_t dim : {1, 5, 15, 16, 17, 33, 64, 128, 131})
        for (int variant = 0; variant < 4; ++variant) {
          const uint32_t seed = uint32_t(count * 1000 + dim * 10 + variant);
          std::mt19937 rng(seed);
          const Sample s = random_sample(count, dim, rng);
          const U8Quant q = quant_for(dim, variant);
          const int64_t width = dim + count * (count - 1) / 2;
          std::vector<uint8_t> want(size_t(width) + 1, 0xA5), got(size_t(width) + 1, 0x5A);
          ref.dot_interaction()(s.ptrs.data(), count, dim, q, want.data());
          kr.dot_interaction()(s.ptrs.data(), count, dim, q, got.data());
          coverage::count_case(kr);
          EXPECT_EQ(got[size_t(width)], 0x5A) << kr.name << " wrote past the row";
          int distinct = 0;
          for (int64_t p = 0; p < width; ++p) distinct += want[size_t(p)] != want[0];
          if (width > 8) {
            EXPECT_GT(distinct, 0) << "degenerate case, seed " << seed;
          }
          for (int64_t p = 0; p < width; ++p)
            ASSERT_EQ(int(got[size_t(p)]), int(want[size_t(p)]))
                << kr.name << " count=" << count << " dim=" << dim << " scale=" << q.scale << " zp=" << q.zero_point
                << " index=" << p << " seed=" << seed;
          ++checked;
        }
  }
  EXPECT_GE(checked, 11 * 9 * 4);
  std::cout << "checked " << checked << " cases; the operator runs " << dot_interaction_kernel_name() << "\n";
}

// Through a u8 step, a last-bit difference of a sum rarely shows. Here it does: the second half
// of each vector repeats the first, negated in odd vectors, so every odd-even pair cancels
// exactly in real arithmetic and its f32 result is pure rounding residue, which depends on the
// order of the sum and on fused multiply-adds; a tiny scale maps that residue onto many u8 steps.
TEST(DotInteraction, EveryKernelSumsInTheReferencesOrder) {
  const auto& ref = *dot_kernels(DType::F32).back();
  for (const Kernel* k : dot_kernels(DType::F32)) {
    const Kernel& kr = *k;
    if (kr.isa > max_isa()) continue;
    for (int64_t dim : {34, 64, 100, 128, 131}) {
      const int64_t count = 27, half = dim / 2, width = dim + count * (count - 1) / 2;
      const uint32_t seed = uint32_t(dim);
      std::mt19937 rng(seed);
      Sample s = random_sample(count, dim, rng);
      for (int64_t v = 0; v < count; ++v)
        for (int64_t k = 0; k < dim - half; ++k)
          s.vectors[size_t(v)][size_t(half + k)] =
              k < half ? (v % 2 ? -1.f : 1.f) * s.vectors[size_t(v)][size_t(k)] : 0.f;
      const U8Quant q{2e-8f, 128};
      std::vector<uint8_t> want(static_cast<size_t>(width)), got(static_cast<size_t>(width));
      ref.dot_interaction()(s.ptrs.data(), count, dim, q, want.data());
      kr.dot_interaction()(s.ptrs.data(), count, dim, q, got.data());
      int residues = 0;  // cancelling pairs whose residue is neither zero nor clipped
      for (int64_t p = dim; p < width; ++p)
        residues += want[size_t(p)] != 0 && want[size_t(p)] != 128 && want[size_t(p)] != 255;
      EXPECT_GT(residues, 20) << "dim=" << dim << ": too few residues to test the order";
      for (int64_t p = 0; p < width; ++p)
        ASSERT_EQ(int(got[size_t(p)]), int(want[size_t(p)]))
            << kr.name << " dim=" << dim << " index=" << p << " seed=" << seed;
    }
  }
}

// The reference itself: each output is the true dot product (in double), quantized, give or take
// one step where the f32 sum lands near a rounding boundary.
TEST(DotInteraction, ReferenceIsTheQuantizedDotProduct) {
  std::mt19937 rng(7);
  const int64_t count = 27, dim = 128;
  const Sample s = random_sample(count, dim, rng);
  const U8Quant q = quant_for(dim, 0);
  std::vector<uint8_t> out(size_t(dim + 351));
  ref::f32_dot_interaction_u8(s.ptrs.data(), count, dim, q, out.data());
  for (int64_t k = 0; k < dim; ++k) EXPECT_EQ(out[size_t(k)], q.quantize(s.vectors[0][size_t(k)])) << k;
  int64_t p = dim, exact = 0;
  for (int64_t i = 1; i < count; ++i)
    for (int64_t j = 0; j < i; ++j, ++p) {
      double d = 0;
      for (int64_t k = 0; k < dim; ++k) d += double(s.vectors[size_t(i)][size_t(k)]) * s.vectors[size_t(j)][size_t(k)];
      const double want = std::clamp(std::nearbyint(d / q.scale + q.zero_point), 0.0, 255.0);
      EXPECT_LE(std::abs(out[size_t(p)] - want), 1.0) << "pair " << i << "," << j;
      exact += out[size_t(p)] == want;
    }
  EXPECT_GT(exact, 340);
}

TEST(DotInteraction, OperatorGathersRowsAndThreadsOverTheBatch) {
  const int64_t dim = 20, tables = 4, width = interaction_width(dim, tables);
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 1.f);
  const std::vector<int64_t> sizes = {3, 1, 9, 5};
  std::vector<std::vector<float>> rows;
  std::vector<EmbeddingTable> tabs;
  for (int64_t sz : sizes) {
    rows.emplace_back(size_t(sz * dim));
    for (auto& x : rows.back()) x = n(rng);
    tabs.push_back({rows.back().data(), sz});
  }
  const U8Quant q = u8_quant_for_range(-6.f, 9.f);
  for (int64_t batch : {1, 2, 7, 33}) {
    const int64_t ld_dense = dim + 3, ld_ids = tables + 1, ld_out = width + 5;
    std::vector<float> dense(size_t(batch * ld_dense));
    for (auto& x : dense) x = n(rng);
    std::vector<int64_t> ids(size_t(batch * ld_ids), -1);  // the padding column is never read
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t f = 0; f < tables; ++f) ids[size_t(b * ld_ids + f)] = int64_t(rng() % uint32_t(sizes[size_t(f)]));
    std::vector<uint8_t> out(size_t(batch * ld_out), 0xEE);
    DotInteractionArgs a;
    a.batch = batch, a.dim = dim, a.dense = dense.data(), a.ld_dense = ld_dense, a.tables = tabs;
    a.ids = ids.data(), a.ld_ids = ld_ids, a.quant = q, a.out = out.data(), a.ld_out = ld_out, a.threads = 2;
    dot_interaction_u8(a);
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<const float*> v{dense.data() + b * ld_dense};
      for (int64_t f = 0; f < tables; ++f) v.push_back(rows[size_t(f)].data() + ids[size_t(b * ld_ids + f)] * dim);
      std::vector<uint8_t> want(static_cast<size_t>(width));
      ref::f32_dot_interaction_u8(v.data(), tables + 1, dim, q, want.data());
      for (int64_t p = 0; p < width; ++p)
        ASSERT_EQ(out[size_t(b * ld_out + p)], want[size_t(p)]) << "batch " << batch << " b " << b << " p " << p;
      for (int64_t p = width; p < ld_out; ++p) ASSERT_EQ(out[size_t(b * ld_out + p)], 0xEE) << "wrote into the stride";
    }
    for (int64_t bad : {int64_t(-1), sizes[2]}) {
      ids[size_t((batch - 1) * ld_ids + 2)] = bad;
      std::fill(out.begin(), out.end(), 0xEE);
      try {
        dot_interaction_u8(a);
        FAIL() << "id " << bad << " was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Data);
        const std::string msg = e.what();
        EXPECT_NE(msg.find("id " + std::to_string(bad)), std::string::npos) << msg;
        EXPECT_NE(msg.find("sample " + std::to_string(batch - 1)), std::string::npos) << msg;
        EXPECT_NE(msg.find("[0, 9)"), std::string::npos) << msg;
      }
      EXPECT_EQ(out[0], 0xEE) << "wrote before checking the ids";
    }
  }
}

// Row-wise INT8 tables: every s8-table kernel against its reference, byte for byte (the integer
// sums leave nothing to disagree on), and the reference against an oracle in int64 and double on
// the same INT8 vectors, with random s8 rows (all of -128..127, as a foreign table might hold),
// positive row scales of varied magnitude, an all-zero row (scale 0), and scratch off any
// alignment. Dense rows with a value that is not finite, or all zero, quantize to zeros.
TEST(DotInteraction, Int8TableKernelsMatchTheReferenceExactly) {
  const auto& ref = *dot_kernels(DType::S8).back();
  ASSERT_EQ(std::string(ref.name), "s8-table-dot-interaction-u8-ref");
  int checked = 0;
  for (const Kernel* k : dot_kernels(DType::S8)) {
    const Kernel& kr = *k;
    if (kr.isa > max_isa()) continue;
    for (int64_t count : {1, 2, 3, 5, 9, 16, 17, 18, 27, 33, 50})
      for (int64_t dim : {1, 3, 5, 8, 15, 16, 17, 33, 64, 128, 131})
        for (int variant = 0; variant < 6; ++variant) {
          const uint32_t seed = uint32_t(count * 1000 + dim * 10 + variant);
          std::mt19937 rng(seed);
          std::normal_distribution<float> n(0.f, 1.f);
          std::vector<float> dense(static_cast<size_t>(dim));
          for (auto& x : dense) x = n(rng);
          if (variant == 4) dense[size_t(dim / 2)] = dim % 2 ? -INFINITY : std::nanf("");
          if (variant == 5) std::fill(dense.begin(), dense.end(), 0.f);
          std::vector<std::vector<int8_t>> rows(size_t(count - 1), std::vector<int8_t>(size_t(dim)));
          std::vector<const int8_t*> rp;
          std::vector<float> scales;
          for (size_t t = 0; t < rows.size(); ++t) {
            for (auto& x : rows[t]) x = int8_t(int(rng() % 256) - 128);
            if (t == 2) std::fill(rows[t].begin(), rows[t].end(), int8_t(0));
            rp.push_back(rows[t].data());
            // |row| up to ~127 * scale; dot products then spread like quant_for's unit vectors.
            scales.push_back(t == 2 ? 0.f : std::exp2(float(int(rng() % 5) - 2)) / 73.f);
          }
          const U8Quant q = quant_for(dim, variant % 4);
          const int64_t width = dim + count * (count - 1) / 2, room = s8_table_scratch_bytes(count, dim);
          std::vector<uint8_t> want(size_t(width) + 1, 0xA5), got(size_t(width) + 1, 0x5A);
          std::vector<uint8_t> scratch(size_t(room) + 2, 0xC3);
          ref.s8_table_dot_interaction()(dense.data(), rp.data(), scales.data(), count, dim, q, want.data(),
                                         scratch.data());
          // The oracle: the dense row quantized by the rule, exact dots, double scaling.
          std::vector<int8_t> qd(static_cast<size_t>(dim));
          float max_abs = 0.f;
          for (float x : dense) max_abs = std::isfinite(x) ? std::max(max_abs, std::abs(x)) : INFINITY;
          const float ds = std::isfinite(max_abs) ? max_abs / 127.f : 0.f;
          for (int64_t k = 0; k < dim; ++k)
            qd[size_t(k)] = ds > 0 ? int8_t(std::clamp(std::nearbyint(dense[size_t(k)] / ds), -127.f, 127.f)) : 0;
          int off_by_one = 0;
          for (int64_t i = 1, p = dim; i < count; ++i)
            for (int64_t j = 0; j < i; ++j, ++p) {
              const int8_t* vi = rp[size_t(i - 1)];
              const int8_t* vj = j == 0 ? qd.data() : rp[size_t(j - 1)];
              int64_t dot = 0;
              for (int64_t kk = 0; kk < dim; ++kk) dot += int64_t(vi[kk]) * vj[kk];
              const double x = double(dot) * scales[size_t(i - 1)] * (j == 0 ? ds : scales[size_t(j - 1)]);
              const double o = std::clamp(std::nearbyint(x / q.scale + q.zero_point), 0.0, 255.0);
              ASSERT_LE(std::abs(want[size_t(p)] - o), 1.0) << "pair " << i << "," << j << " seed " << seed;
              off_by_one += want[size_t(p)] != o;
            }
          EXPECT_LE(off_by_one, 2 + width / 50) << "seed " << seed;  // only where x lands on a rounding edge
          std::fill(scratch.begin(), scratch.end(), 0xC3);
          kr.s8_table_dot_interaction()(dense.data(), rp.data(), scales.data(), count, dim, q, got.data(),
                                        scratch.data() + 1);  // off the line, as a caller may pass it
          coverage::count_case(kr);
          EXPECT_EQ(got[size_t(width)], 0x5A) << kr.name << " wrote past the row";
          EXPECT_EQ(scratch.back(), 0xC3) << kr.name << " wrote past the scratch";
          int distinct = 0;
          for (int64_t p = 0; p < width; ++p) distinct += want[size_t(p)] != want[0];
          if (width > 8 && variant != 5) {  // variant 5: the dense row is zero
            EXPECT_GT(distinct, 0) << "degenerate case, seed " << seed;
          }
          for (int64_t p = 0; p < width; ++p)
            ASSERT_EQ(int(got[size_t(p)]), int(want[size_t(p)]))
                << kr.name << " count=" << count << " dim=" << dim << " variant=" << variant << " index=" << p
                << " seed=" << seed;
          ++checked;
        }
  }
  EXPECT_GE(checked, 11 * 11 * 6);
  std::cout << "checked " << checked << " cases; the operator runs " << int8_table_dot_interaction_kernel_name()
            << "\n";
}

// quantize_embedding_rows: each element dequantizes (float(q) * scale, as the kernels do) to within
// half a step of the f32 value; the bound is scale / 2 in real arithmetic, plus the f32 roundings
// of x / scale (relative 2^-24 of a value <= 127.5 steps) and of q * scale (2^-24 relative of |x|),
// so scale / 2 + 2^-22 * (scale * 128 + |x|) is a safe bound that a step off by one (a full scale)
// would still break. The largest |x| of each row must come back exactly as +-127 steps.
TEST(DotInteraction, RowQuantizationErrorIsHalfAStep) {
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.f, 1.f);
  for (int64_t dim : {1, 7, 128}) {
    const int64_t size = 300;
    std::vector<float> rows(size_t(size * dim));
    for (int64_t r = 0; r < size; ++r) {
      const float mag = std::exp2(float(int(rng() % 40) - 30));  // rows of very different magnitudes
      for (int64_t k = 0; k < dim; ++k) rows[size_t(r * dim + k)] = r == 5 ? 0.f : mag * n(rng);
    }
    std::vector<int8_t> q(rows.size());
    std::vector<float> scales(static_cast<size_t>(size));
    quantize_embedding_rows(rows.data(), size, dim, q.data(), scales.data());
    EXPECT_EQ(scales[5], 0.f);
    int64_t worst_step = 0;
    for (int64_t r = 0; r < size; ++r) {
      float max_abs = 0.f;
      int max_q = 0;
      for (int64_t k = 0; k < dim; ++k) {
        const float x = rows[size_t(r * dim + k)], s = scales[size_t(r)];
        const int8_t v = q[size_t(r * dim + k)];
        ASSERT_GE(v, -127);
        const float back = float(v) * s;
        const double bound = 0.5 * double(s) + std::ldexp(1.0, -22) * (double(s) * 128 + std::abs(double(x)));
        ASSERT_LE(std::abs(double(back) - double(x)), bound)
            << "row " << r << " element " << k << " x " << x << " scale " << s;
        if (std::abs(x) > max_abs) max_abs = std::abs(x), max_q = std::abs(int(v));
        worst_step = std::max<int64_t>(worst_step, std::abs(int(v)));
      }
      if (max_abs > 0) {
        EXPECT_EQ(max_q, 127) << "row " << r;
        EXPECT_FLOAT_EQ(scales[size_t(r)], max_abs / 127.f);
      }
    }
    EXPECT_EQ(worst_step, 127);
  }
  const float bad[2] = {1.f, std::nanf("")};
  int8_t q2[2];
  float s2;
  EXPECT_THROW(quantize_embedding_rows(bad, 1, 2, q2, &s2), Error);
}

// The operator with int8_tables: byte for byte the kernel on each sample's gathered rows, over
// batch sizes that split unevenly between threads and strided inputs and outputs; close to the
// f32 operator on the dequantized tables (it differs by the dense row's INT8 rounding); the same
// id checks; mixing both kinds of tables is a usage error.
TEST(DotInteraction, OperatorWithInt8TablesRunsTheKernelPerSample) {
  std::mt19937 rng(5);
  std::normal_distribution<float> n(0.f, 1.f);
  for (int64_t dim : {20, 128}) {
    const int64_t tables = dim == 128 ? 26 : 4, width = interaction_width(dim, tables);
    std::vector<int64_t> sizes;
    for (int64_t f = 0; f < tables; ++f) sizes.push_back(1 + int64_t(rng() % 40));
    std::vector<std::vector<float>> f32_rows, deq_rows, row_scales;
    std::vector<std::vector<int8_t>> s8_rows;
    std::vector<EmbeddingTable> deq_tabs;
    std::vector<Int8EmbeddingTable> s8_tabs;
    for (int64_t sz : sizes) {
      f32_rows.emplace_back(size_t(sz * dim));
      for (auto& x : f32_rows.back()) x = 0.3f * n(rng);
      s8_rows.emplace_back(size_t(sz * dim));
      row_scales.emplace_back(size_t(sz));
      quantize_embedding_rows(f32_rows.back().data(), sz, dim, s8_rows.back().data(), row_scales.back().data());
      deq_rows.emplace_back(size_t(sz * dim));
      for (int64_t i = 0; i < sz * dim; ++i)
        deq_rows.back()[size_t(i)] = float(s8_rows.back()[size_t(i)]) * row_scales.back()[size_t(i / dim)];
    }
    for (size_t f = 0; f < sizes.size(); ++f) {
      deq_tabs.push_back({deq_rows[f].data(), sizes[f]});
      s8_tabs.push_back({s8_rows[f].data(), row_scales[f].data(), sizes[f]});
    }
    const U8Quant q = u8_quant_for_range(-3.f, 5.f);
    for (int64_t batch : {1, 2, 7, 33}) {
      const int64_t ld_dense = dim + 3, ld_ids = tables + 1, ld_out = width + 5;
      std::vector<float> dense(size_t(batch * ld_dense));
      for (auto& x : dense) x = n(rng);
      std::vector<int64_t> ids(size_t(batch * ld_ids), -1);
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t f = 0; f < tables; ++f) ids[size_t(b * ld_ids + f)] = int64_t(rng() % uint32_t(sizes[size_t(f)]));
      std::vector<uint8_t> got(size_t(batch * ld_out), 0xEE), want(size_t(batch * ld_out), 0xEE);
      DotInteractionArgs a;
      a.batch = batch, a.dim = dim, a.dense = dense.data(), a.ld_dense = ld_dense, a.int8_tables = s8_tabs;
      a.ids = ids.data(), a.ld_ids = ld_ids, a.quant = q, a.out = got.data(), a.ld_out = ld_out, a.threads = 2;
      dot_interaction_u8(a);
      const auto& kern = *dot_kernels(DType::S8).back();  // the reference
      std::vector<uint8_t> scratch(size_t(s8_table_scratch_bytes(tables + 1, dim)));
      for (int64_t b = 0; b < batch; ++b) {
        std::vector<const int8_t*> rp;
        std::vector<float> sc;
        for (int64_t f = 0; f < tables; ++f) {
          const int64_t id = ids[size_t(b * ld_ids + f)];
          rp.push_back(s8_tabs[size_t(f)].rows + id * dim), sc.push_back(s8_tabs[size_t(f)].scales[id]);
        }
        kern.s8_table_dot_interaction()(dense.data() + b * ld_dense, rp.data(), sc.data(), tables + 1, dim, q,
                                        want.data() + b * ld_out, scratch.data());
      }
      ASSERT_EQ(got, want) << "dim " << dim << " batch " << batch;
      int distinct = 0;
      for (int64_t p = dim; p < width; ++p) distinct += got[size_t(p)] != got[size_t(dim)];
      EXPECT_GT(distinct, 0) << "degenerate pairs";
      DotInteractionArgs w = a;
      std::vector<uint8_t> f32(got.size(), 0xEE);
      w.int8_tables = {}, w.tables = deq_tabs, w.out = f32.data();
      dot_interaction_u8(w);
      int64_t near = 0, total = 0;
      for (int64_t b = 0; b < batch; ++b)
        for (int64_t p = 0; p < width; ++p, ++total) {
          const int diff = std::abs(int(got[size_t(b * ld_out + p)]) - int(f32[size_t(b * ld_out + p)]));
          ASSERT_LE(diff, 3) << "sample " << b << " output " << p;
          near += diff <= 1;
        }
      EXPECT_GE(double(near), 0.98 * double(total)) << "dim " << dim << " batch " << batch;
      EXPECT_EQ(got[size_t(width)], 0xEE) << "wrote into the row's stride padding";

      DotInteractionArgs both = a;
      both.tables = deq_tabs;
      EXPECT_THROW(dot_interaction_u8(both), Error);
      ids[size_t((batch - 1) * ld_ids + 1)] = sizes[1];
      try {
        dot_interaction_u8(a);
        FAIL() << "an out-of-range id was accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::Data);
        EXPECT_NE(std::string(e.what()).find("[0, " + std::to_string(sizes[1]) + ")"), std::string::npos) << e.what();
      }
    }
  }
}

}  // namespace
}  // namespace spruce::kernels
