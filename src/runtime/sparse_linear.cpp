#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sparse_linear_impl.hpp"
#include "spruce/cpu.hpp"
#include "spruce/error.hpp"
#include "spruce/mask.hpp"

namespace spruce {

using kernels::DType;

namespace {

// Fallback choices are made per bucket of m, not per m: 1-8 alone, then (2^(j-1), 2^j]. A server
// that sees every batch size from 1 to 256 is then tuned for 13 buckets, not 256 sizes.
int64_t decision_bucket(int64_t m) {
  if (m <= 8) return m;
  int64_t b = 16;
  while (b < m) b *= 2;
  return b;
}

// Overwrites `junk` (4 MiB, twice this host class's L2, per core that runs a thread), split among
// `threads` OpenMP workers.
void evict_caches(std::vector<uint8_t>& junk, int threads) {
#pragma omp parallel num_threads(threads)
  {
    const size_t per = junk.size() / size_t(omp_get_num_threads());
    std::memset(junk.data() + per * size_t(omp_get_thread_num()), omp_get_thread_num() + 1, per);
  }
}

// Times two paths (0 and 1) on random inputs of m rows, interleaved so that drift on a shared
// machine hits both alike, until each has run 15 rounds and 50 ms (at most 400 rounds). Before
// each run the caches are evicted, as a layer inside a model finds them after the other layers:
// timed warm, a sparse path whose gain depends on L2 won here and then ran 2x slower than oneDNN
// in spruce bench's rounds. Returns the median per-round ratio time(1) / time(0).
double time_ratio(const SparseLinear::Impl& s, int64_t m,
                  const std::function<void(const void*, void*, uint8_t*, int)>& run) {
  std::mt19937 rng{uint32_t(m)};
  const bool s8 = s.dtype == DType::S8;
  std::vector<uint8_t> x(size_t(m * s.ic) * (s8 ? 1 : 4)), y(size_t(m * s.oc) * 4);
  // Whichever route the paths take: main (0), low (1) or few rows (2, the default where it applies).
  std::vector<uint8_t> scratch(std::max({s.scratch_bytes(m, 0), s.scratch_bytes(m, 1), s.scratch_bytes(m, 2)}));
  if (s8) {
    for (auto& v : x) v = uint8_t(rng());
  } else {
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (size_t i = 0; i < x.size() / 4; ++i) reinterpret_cast<float*>(x.data())[i] = d(rng);
  }
  using clock = std::chrono::steady_clock;
  // Caches belong to cores: more threads than cores share them, and must not multiply the buffer.
  const int cores = std::max(1, int(std::thread::hardware_concurrency()));
  std::vector<uint8_t> junk(size_t(std::min(s.nthreads(), cores)) << 22);
  auto seconds = [&](int path) {
    evict_caches(junk, s.nthreads());
    const auto t0 = clock::now();
    run(x.data(), y.data(), scratch.data(), path);
    return std::chrono::duration<double>(clock::now() - t0).count();
  };
  for (int warm = 0; warm < 2; ++warm) seconds(0), seconds(1);
  std::vector<double> ratios;
  double total0 = 0, total1 = 0;
  for (int r = 0; r < 400 && (r < 15 || std::min(total0, total1) < 0.05); ++r) {
    const int first = r % 2;
    const double a = seconds(first), b = seconds(1 - first);
    const double t0 = first == 0 ? a : b, t1 = first == 0 ? b : a;
    total0 += t0;
    total1 += t1;
    ratios.push_back(t1 / std::max(t0, 1e-9));
  }
  std::nth_element(ratios.begin(), ratios.begin() + ratios.size() / 2, ratios.end());
  return ratios[ratios.size() / 2];
}

// Whether dense wins at m: sparse must be at least 3% faster, so a near tie goes to dense.
bool dense_wins(const SparseLinear::Impl& s, int64_t m) {
  const double sparse_over_dense = time_ratio(s, m, [&](const void* x, void* y, uint8_t* xt, int path) {
    if (path == 0)
      s.run_dense(x, m, s.ic, y, s.oc);
    else
      s.run_sparse(x, m, s.ic, y, s.oc, xt);
  });
  return !(sparse_over_dense < 0.97);
}

// Whether the low (VNNI) route beats the main (AMX) route at m.
bool low_wins(const SparseLinear::Impl& s, int64_t m) {
  return time_ratio(s, m, [&](const void* x, void* y, uint8_t* xt, int path) {
           s.run_sparse(x, m, s.ic, y, s.oc, xt, path);
         }) < 1.0;
}

}  // namespace

namespace runtime {

template <typename T>
bool fits_pattern(const Pattern& p, const T* w, int64_t oc, int64_t ic) {
  if (!p.is_nm()) return true;
  Mask keep(oc, ic);
  for (int64_t i = 0; i < oc * ic; ++i) keep.data[size_t(i)] = w[i] != T(0);
  return follows_pattern(p, keep);
}
template bool fits_pattern(const Pattern&, const float*, int64_t, int64_t);
template bool fits_pattern(const Pattern&, const int8_t*, int64_t, int64_t);

std::string breaks_pattern(const Pattern& p) {
  return "the weights break the pattern " + p.str() + " (a group of " + std::to_string(p.m()) +
         " input channels holds more than " + std::to_string(p.n()) + " nonzeros): prune them to it first";
}

const kernels::Kernel& choose_kernel(DType dtype, const Pattern& p, int64_t oc, int64_t ic, const std::string& forced) {
  const kernels::Problem problem{kernels::Op::Spmm, dtype, p, 0, ic, oc};
  if (forced.empty()) return kernels::select(problem);
  const kernels::Kernel* k = kernels::find(forced);
  if (!k || k->op != kernels::Op::Spmm) usage_error("SparseLinear: no sparse GEMM kernel named '" + forced + "'");
  if (!k->accepts(problem) || k->isa > max_isa())
    usage_error("SparseLinear: kernel '" + forced + "' cannot run this problem on this CPU");
  return *k;
}

void init(SparseLinear::Impl& s, PackedWeights weights, const Pattern& p, const float* bias, const QuantParams* q) {
  s.oc = weights.rows();
  s.ic = weights.cols();
  s.pattern = p;
  s.weights = std::move(weights);
  s.kernel = s.weights.impl().kernel;
  s.small = nullptr;
  if (s.opt.kernel.empty()) {
    const kernels::Problem one{kernels::Op::Spmm, s.dtype, p, 1, s.ic, s.oc, s.kernel};
    const kernels::Kernel& k1 = kernels::select(one);
    if (&k1 != s.kernel) s.small = &k1;
  }
  // The second and third packings start from W, unpacked once.
  Matrix<int8_t> w;
  auto unpacked = [&]() {
    if (w.data.empty()) w = s.weights.unpack_s8();
    return MatrixView<const int8_t>(std::as_const(w).view());
  };
  s.low = s.low_small = nullptr;
  s.low_weights = PackedWeights();
  if (s.opt.kernel.empty() && s.kernel->isa == Isa::Amx) {
    const kernels::Kernel& lk = kernels::select({kernels::Op::Spmm, s.dtype, p, 0, s.ic, s.oc}, Isa::Avx512Vnni);
    s.low = &lk;
    s.low_weights = kernels::pack_weights(lk, unpacked());
    const kernels::Kernel& k1 = kernels::select({kernels::Op::Spmm, s.dtype, p, 1, s.ic, s.oc, &lk}, Isa::Avx512Vnni);
    if (&k1 != &lk) s.low_small = &k1;
  }
  s.few = nullptr;
  s.few_weights = PackedWeights();
  if (s.opt.kernel.empty() && s.dtype == DType::S8) {
    const kernels::Kernel& fk = kernels::select({kernels::Op::Spmm, s.dtype, p, 1, s.ic, s.oc});
    using WF = kernels::WeightFormat;
    if (fk.weights == WF::Windows || fk.weights == WF::LaneWindows || fk.weights == WF::RowLanes ||
        fk.weights == WF::QuadMasks) {
      s.few = &fk;
      // The 4-high window kernels reread the rows of X for every chunk of weights: keep them in 24
      // KiB of L1 (32 KiB on Zen 4; at k = 3072 and m = 16, 50 KiB of rows ran 1.5x slower than
      // the strip kernel). Past that many rows they leave few rows to the main kernel. The lane
      // windows take their rows in blocks within L1 themselves; beside an AMX main kernel they
      // keep m <= 16, as far as they were measured there (as RowWindows, docs/performance/amx.md).
      const int64_t row_bytes = kernels::xt_ld(s.dtype, 1, fk.layout, s.ic);
      s.few_max_m = fk.weights == WF::Windows ? std::clamp<int64_t>((24 << 10) / row_bytes, 4, fk.max_m) : fk.max_m;
      if (s.kernel->isa == Isa::Amx) s.few_max_m = std::min<int64_t>(s.few_max_m, 16);
      s.few_weights = kernels::pack_weights(fk, unpacked());
    }
  }
  if (bias) s.bias.assign(bias, bias + s.oc);
  s.ep.act = s.opt.activation;
  s.ep.bias = bias ? s.bias.data() : nullptr;
  if (q) {
    s.q = *q;
    const std::vector<int32_t>& wsum = s.weights.impl().wsum;
    s.scale.resize(size_t(s.oc));
    s.comp.resize(size_t(s.oc));
    for (int64_t n = 0; n < s.oc; ++n) {
      s.scale[size_t(n)] = q->x.scale * q->w_scales[size_t(n)];
      s.comp[size_t(n)] = q->x.zero_point * wsum[size_t(n)];
    }
    s.ep.scale = s.scale.data();
    s.ep.comp = s.comp.data();
    s.ep.out = q->out;
    s.ep.y_inv_scale = 1.0f / q->y_scale;
    s.ep.y_zero_point = float(q->y_zero_point);
  }
  // oneDNN's INT8 saturates where it lacks VNNI: there INT8 always runs spruce's exact kernels,
  // even under Fallback::Always, so that every route gives the reference's bytes.
  if (s.opt.fallback != Fallback::Never && (!q || DenseMatmul::int8_exact()))
    s.dense = std::make_unique<DenseMatmul>(s.weights, s.bias.empty() ? nullptr : s.bias.data(), s.opt.activation,
                                            q ? &s.q : nullptr);
}

void check_shape(int64_t oc, int64_t ic, const void* w) {
  if (oc <= 0 || ic <= 0)
    usage_error("SparseLinear: weight shape must be positive, got " + std::to_string(oc) + "x" + std::to_string(ic));
  if (!w) usage_error("SparseLinear: weight pointer is null");
  if (oc > (int64_t(1) << 31) || ic > (int64_t(1) << 31)) usage_error("SparseLinear: weight dimension too large");
}

void check_quant(const QuantParams& q, int64_t oc) {
  if (int64_t(q.w_scales.size()) != oc)
    usage_error("SparseLinear: " + std::to_string(q.w_scales.size()) + " weight scales for " + std::to_string(oc) +
                " output channels");
  if (q.x.zero_point < 0 || q.x.zero_point > 255) usage_error("SparseLinear: u8 activation zero point must be 0..255");
  if (!(q.x.scale > 0.0f) || !(q.y_scale > 0.0f)) usage_error("SparseLinear: quantization scales must be positive");
  for (float ws : q.w_scales)
    if (!(ws > 0.0f) || !std::isfinite(ws)) usage_error("SparseLinear: weight scales must be positive and finite");
  if (q.out != OutType::F32 &&
      (q.y_zero_point < (q.out == OutType::U8 ? 0 : -128) || q.y_zero_point > (q.out == OutType::U8 ? 255 : 127)))
    usage_error("SparseLinear: output zero point out of range for its type");
}

}  // namespace runtime

SparseLinear::SparseLinear(const float* w, int64_t oc, int64_t ic, const Pattern& p, const float* bias,
                           SparseLinearOptions opt)
    : impl_(std::make_unique<Impl>()) {
  runtime::check_shape(oc, ic, w);
  if (!runtime::fits_pattern(p, w, oc, ic)) usage_error("SparseLinear: " + runtime::breaks_pattern(p));
  impl_->opt = std::move(opt);
  impl_->dtype = DType::F32;
  const kernels::Kernel& k = runtime::choose_kernel(DType::F32, p, oc, ic, impl_->opt.kernel);
  runtime::init(*impl_, kernels::pack_weights(k, MatrixView<const float>(w, oc, ic)), p, bias, nullptr);
  tune(impl_->opt.tune_m);
}

SparseLinear::SparseLinear(const int8_t* w, int64_t oc, int64_t ic, const Pattern& p, const QuantParams& q,
                           const float* bias, SparseLinearOptions opt)
    : impl_(std::make_unique<Impl>()) {
  runtime::check_shape(oc, ic, w);
  runtime::check_quant(q, oc);
  if (!runtime::fits_pattern(p, w, oc, ic)) usage_error("SparseLinear: " + runtime::breaks_pattern(p));
  impl_->opt = std::move(opt);
  impl_->dtype = DType::S8;
  const kernels::Kernel& k = runtime::choose_kernel(DType::S8, p, oc, ic, impl_->opt.kernel);
  runtime::init(*impl_, kernels::pack_weights(k, MatrixView<const int8_t>(w, oc, ic)), p, bias, &q);
  tune(impl_->opt.tune_m);
}

SparseLinear::~SparseLinear() = default;
SparseLinear::SparseLinear(SparseLinear&&) noexcept = default;
SparseLinear& SparseLinear::operator=(SparseLinear&&) noexcept = default;

namespace {

// What makes two operators alike for tuning (TuningCache): everything their timings depend on.
std::string tuning_key(const SparseLinear::Impl& s) {
  auto name = [](const kernels::Kernel* k) { return std::string(k ? k->name : "-"); };
  const double dense_bytes = double(s.oc * s.ic) * (s.dtype == DType::S8 ? 1 : 4);
  // Half-point buckets of the zeros and of the packed size against dense.
  const long zeros = std::lround(s.weights.sparsity() * 200);
  const long packed = std::lround(double(s.weights.size_bytes()) / dense_bytes * 200);
  return std::to_string(int(s.dtype)) + " " + std::to_string(s.oc) + "x" + std::to_string(s.ic) + " " +
         s.pattern.str() + " " + name(s.kernel) + " " + name(s.small) + " " + name(s.low) + " " + name(s.low_small) +
         " " + name(s.few) + " " + std::to_string(s.few_max_m) + " act " + std::to_string(int(s.opt.activation)) +
         " out " + std::to_string(int(s.q.out)) + " threads " + std::to_string(s.nthreads()) + " fallback " +
         std::to_string(int(s.opt.fallback)) + " staging " + std::to_string(int(s.opt.staging)) + " zeros " +
         std::to_string(zeros) + " packed " + std::to_string(packed) + " dense " + std::to_string(s.dense != nullptr) +
         " bias " + std::to_string(!s.bias.empty());
}

}  // namespace

void SparseLinear::tune(std::span<const int64_t> ms) {
  TuningCache own;
  tune(ms, own);
}

void SparseLinear::tune(std::span<const int64_t> ms, TuningCache& cache) {
  Impl& s = *impl_;
  if (s.opt.fallback == Fallback::Always || (s.opt.fallback == Fallback::Never && !s.low)) return;
  std::map<int64_t, int64_t> buckets;  // bucket -> the m timed for it
  for (int64_t m : ms) {
    if (m < 1) usage_error("SparseLinear::tune: batch sizes must be at least 1, not " + std::to_string(m));
    buckets.emplace(decision_bucket(m), m);
  }
  const bool tunes_dense = s.opt.fallback == Fallback::Auto && s.dense;
  if (!s.low && !tunes_dense) return;  // nothing to time (INT8 without an exact oneDNN)
  const std::string key = tuning_key(s);
  for (const auto& [bucket, m] : buckets) {
    auto& c = cache.choices_[{key, bucket}];
    const bool known = (!s.low || c.low) && (!tunes_dense || c.dense);
    if (s.low) {
      if (!c.low) c.low = low_wins(s, m);
      s.low_for_m[bucket] = *c.low;  // before the dense timing, whose sparse path takes this route
    }
    if (tunes_dense) {
      if (!c.dense) c.dense = dense_wins(s, m);
      s.dense_for_m[bucket] = *c.dense;
    }
    ++(known ? cache.shared_ : cache.timed_);
  }
}

bool SparseLinear::Impl::runs_low(int64_t m) const {
  if (!low) return false;
  if (const auto it = low_for_m.find(decision_bucket(m)); it != low_for_m.end()) return it->second;
  return m < kLowM;
}

bool SparseLinear::Impl::runs_dense(int64_t m) const {
  if (!dense) return false;
  if (opt.fallback != Fallback::Auto) return opt.fallback == Fallback::Always;
  if (dense_for_m.empty()) return false;
  const int64_t b = decision_bucket(m);
  if (const auto it = dense_for_m.find(b); it != dense_for_m.end()) return it->second;
  // Untuned: the tuned bucket nearest on a log scale; the smaller one on a tie.
  auto distance = [&](int64_t t) { return std::abs(std::log2(double(t)) - std::log2(double(b))); };
  auto best = dense_for_m.begin();
  for (auto it = dense_for_m.begin(); it != dense_for_m.end(); ++it)
    if (distance(it->first) < distance(best->first)) best = it;
  return best->second;
}

namespace {

// How run_sparse shares m rows x the strips among T threads. Every thread packs the activations it
// reads into its own scratch: with one packing shared, each thread read half of it from the other
// core's cache, and at 128 x 1536 -> 384 two threads ran 2.6x slower than one on a VM whose vCPUs
// sat far apart (and 1.6x slower at m = 1024).
//  - Split rows (m >= 128 T, or 64 T where the weights are fewer bytes than 1.5x the activations):
//    each thread takes whole blocks of rows, round robin, and runs every strip on them, so each
//    reads all the weights.
//  - Split strips (fewer rows): every thread packs each block, and takes a share of the strips,
//    so that blocks keep enough rows to amortize the weights (at 128 x 384 -> 1536, two threads
//    with a block of 64 rows each took 74-78 us; sharing the strips of one 128-row block, 40).
//    Between 64 T and 128 T rows the cheaper duplicate decides: every thread packing all of X,
//    or every thread reading all the weights (Zen 5, 4x1 @ 90%, m = 128, two threads: rows won at
//    768 -> 768, 3072 -> 768 and 1536 -> 384, weights 0.6-1.2x X, by 10-20%; strips at 768 ->
//    3072 and 384 -> 1536, 2.4-4.8x X).
// A block's packed activations (k rows of mb) should stay in L2 while every panel reads them:
// about 192 KiB, so 256 rows at k = 768 (u8) and 64 at k = 3072. Multiples of 64 keep every
// kernel's m chunk whole. A block's stripe of Y stays within 1 MiB per strip range, or its stream
// of outputs evicts the activations it keeps re-reading (at 1024x768x3072, tiles of 3 MiB ran 1.5x
// slower than tiles of 0.75 MiB).
struct Tiling {
  bool split_rows;
  int threads;          // that get work
  int64_t mb, nm;       // rows per block, blocks
  int64_t per, ns;      // strips per range, ranges
  size_t xt_stride;     // bytes of one thread's packing, a multiple of 64
  int64_t band;         // output channels per staged band (0: Y is never staged at this m)
  size_t stage_stride;  // bytes of one thread's staging buffer
  // Whether Y, with rows `row_bytes` apart, goes through the staging buffer (below).
  bool stages(int64_t row_bytes) const { return band > 0 && row_bytes % 4096 == 0; }
};

// Staged output. A kernel finishes 16 output channels (a panel) for every row of its block before
// the next 16, so it writes Y 64 bytes a row, down hundreds of rows. Where Y's rows lie a multiple
// of 4 KiB apart, every line of such a walk falls into the same set of the L1 cache (64 sets on
// Zen 4 and 5 and on Sapphire Rapids), and on AMD the stores crawl: 9 GB/s on Zen 5 for rows 4, 8
// or 12 KiB apart, 37 at 3 KiB, 115 GB/s for 512 bytes a row (a throwaway store loop). There the
// operator has the kernel write a band of kBandBytes per row into a buffer, and copies each row's
// band to Y in one burst (docs/performance/zen5.md, "Staged output": 384x768x3072, one thread, 2.82-2.88x
// -> 3.12-3.27x oneDNN INT8). An Intel Xeon (family 6 model 207) walked at 17 GB/s 4-16 KiB apart
// and 21 at 3 KiB, and the copy made its layers 10-25% slower while a thread's share of Y stayed
// within twice its L2 (1.5-4 MB of FP32 on its 2 MiB), 15-35% faster past it (docs/performance/xeon.md).
constexpr int64_t kBandBytes = 512;

bool staging_wanted(OutputStaging s, double y_bytes_per_thread) {
  if (s != OutputStaging::Auto) return s == OutputStaging::Always;
  return cpu_vendor() == CpuVendor::Amd || y_bytes_per_thread > 2.0 * double(l2_cache_bytes());
}

Tiling tiling(const SparseLinear::Impl& s, const kernels::Kernel& k, const kernels::StripView& w, size_t weight_bytes,
              int64_t m) {
  const int T = s.call_threads();
  const int64_t es = s.dtype == DType::F32 ? 4 : k.layout == kernels::Layout::Words ? 2 : 1;
  const int64_t mb_cache = std::clamp<int64_t>((192 * 1024 / (s.ic * es)) / 64 * 64, 64, 256);
  Tiling t{};
  t.split_rows = T > 1 && (m >= 128 * T || (m >= 64 * T && double(weight_bytes) <= 1.5 * double(m * s.ic * es)));
  t.mb = std::min(m, mb_cache);
  if (t.split_rows) {  // m / T rows per thread in blocks of 64 multiples, the best balanced
    const int64_t rounds = (m + T * mb_cache - 1) / (T * mb_cache), even = (m + T * rounds - 1) / (T * rounds);
    auto busiest = [&](int64_t mb) {  // rows of the busiest thread
      int64_t most = 0;
      for (int th = 0; th < T; ++th) {
        int64_t rows = 0;
        for (int64_t m0 = th * mb; m0 < m; m0 += T * mb) rows += std::min(mb, m - m0);
        most = std::max(most, rows);
      }
      return most;
    };
    const int64_t down = std::max<int64_t>(64, even / 64 * 64), up = kernels::round_up(even, 64);
    t.mb = busiest(up) <= busiest(down) ? up : down;
    // Below 128 T rows only where the blocks share the rows evenly: at 200 rows (128 + 72) FP32
    // ran 10% slower than with the strips shared.
    const bool uneven = double(busiest(t.mb) * T) > 1.15 * double(m);
    if (uneven && m < 128 * T) {
      t.split_rows = false;
      t.mb = std::min(m, mb_cache);
    }
  }
  t.nm = (m + t.mb - 1) / t.mb;
  const int64_t strips = (w.rows + w.h - 1) / w.h;
  const int64_t y_ranges = (t.mb * s.oc * 4 + (1 << 20) - 1) >> 20;
  // Split strips: a multiple of T ranges, whole panels of 16 output channels each.
  const int64_t want = t.split_rows ? y_ranges : kernels::round_up(y_ranges, T);
  const int64_t panel = std::max(1, 16 / w.h);
  t.per = kernels::round_up(std::max<int64_t>(1, (strips + want - 1) / want), panel);
  t.ns = (strips + t.per - 1) / t.per;
  t.threads = int(std::min<int64_t>(T, t.split_rows ? t.nm : t.ns));
  // The last block may be shorter, and a few rows can need the longer row stride (xt_ld pads).
  const size_t xt = std::max(kernels::xt_bytes(s.dtype, t.mb, s.ic, k.layout),
                             kernels::xt_bytes(s.dtype, m - (t.nm - 1) * t.mb, s.ic, k.layout));
  t.xt_stride = size_t(kernels::round_up(int64_t(xt), 64));
  const int64_t ys = s.ep.out == OutType::F32 ? 4 : 1;
  // Blocks under 64 rows walk short enough to write Y directly.
  const double y_per_thread = double(m) * double(s.oc * ys) / double(t.threads);
  const bool stage = staging_wanted(s.opt.staging, y_per_thread) && t.mb >= 64 && s.oc * ys > kBandBytes;
  t.band = stage ? kBandBytes / ys : 0;
  t.stage_stride = stage ? size_t(t.mb * kBandBytes) : 0;
  return t;
}

}  // namespace

size_t SparseLinear::Impl::scratch_bytes(int64_t m, int route) const {
  if (m < 1) return 0;
  const PackedWeights& pw = weights_for(m, route);
  const Tiling t = tiling(*this, kernel_for(m, route), pw.impl().view, pw.size_bytes(), m);
  return (t.xt_stride + t.stage_stride) * size_t(t.threads) + 64;  // + 64: the packings start on a cache line
}

void SparseLinear::Impl::run_sparse(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy, uint8_t* xt,
                                    int route) const {
  const kernels::Kernel& k = kernel_for(m, route);
  const PackedWeights& pw = weights_for(m, route);
  const kernels::StripView& w = pw.impl().view;
  xt += (64 - reinterpret_cast<uintptr_t>(xt) % 64) % 64;
  const Tiling t = tiling(*this, k, w, pw.size_bytes(), m);
  const int64_t strips = (w.rows + w.h - 1) / w.h, kblocks = (ic + 63) / 64;
  const int64_t ys = ep.out == OutType::F32 ? 4 : 1, x_row = ldx * (dtype == DType::F32 ? 4 : 1), y_row = ldy * ys;
  const bool staged = t.stages(y_row);
  const kernels::SpmmFn run = k.spmm();
  // Strips [a.s0, a.s1) of a block a band of output channels at a time (see kBandBytes): the
  // kernel writes the band into `stage`, and each row's part goes to Y in one copy.
  auto run_banded = [&](const kernels::SpmmArgs& a, uint8_t* stage) {
    kernels::SpmmArgs b = a;
    b.y = stage, b.ldy = t.band;
    for (b.s0 = a.s0; b.s0 < a.s1; b.s0 += t.band / w.h) {
      b.s1 = std::min(a.s1, b.s0 + t.band / w.h);
      b.y_col0 = b.s0 * w.h;
      run(w, b);
      const size_t bytes = size_t((std::min(oc, b.s1 * w.h) - b.y_col0) * ys);
      for (int64_t r = a.m0; r < a.m1; ++r)
        std::memcpy(static_cast<uint8_t*>(a.y) + r * y_row + b.y_col0 * ys, stage + r * t.band * ys, bytes);
    }
  };
#pragma omp parallel num_threads(t.threads)
  {
    const int th = omp_get_thread_num();
    uint8_t* own = xt + t.xt_stride * size_t(th);
    uint8_t* stage = xt + t.xt_stride * size_t(t.threads) + t.stage_stride * size_t(th);
    for (int64_t i = t.split_rows ? th : 0; i < t.nm; i += t.split_rows ? t.threads : 1) {
      const int64_t m0 = i * t.mb, rows = std::min(m, m0 + t.mb) - m0;
      kernels::SpmmArgs a;
      a.xt = own, a.ldxt = kernels::xt_ld(dtype, rows, k.layout, ic), a.m_total = rows, a.m0 = 0, a.m1 = rows;
      a.y = static_cast<uint8_t*>(y) + m0 * y_row, a.ldy = ldy, a.ep = &ep;
      const uint8_t* xb = static_cast<const uint8_t*>(x) + m0 * x_row;
      for (int64_t b = 0; b < kblocks; ++b) k.pack(xb, rows, ldx, b * 64, std::min(ic, b * 64 + 64), own, a.ldxt);
      for (int64_t j = t.split_rows ? 0 : th; j < t.ns; j += t.split_rows ? 1 : t.threads) {
        a.s0 = j * t.per;
        a.s1 = std::min(strips, a.s0 + t.per);
        if (staged)
          run_banded(a, stage);
        else
          run(w, a);
      }
    }
  }
}

bool SparseLinear::Impl::stages_output(int64_t m, int64_t ldy) const {
  if (m < 1 || runs_dense(m)) return false;
  const Tiling t = tiling(*this, kernel_for(m), weights_for(m).impl().view, weights_for(m).size_bytes(), m);
  return t.stages(ldy * (ep.out == OutType::F32 ? 4 : 1));
}

// oneDNN (OpenMP build) runs on the calling thread's OpenMP thread count, a per-thread setting:
// set it for the call and restore it, so other threads and later calls are unaffected.
void SparseLinear::Impl::run_dense(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy) const {
  const int saved = omp_get_max_threads();
  omp_set_num_threads(call_threads());
  dense->run(x, m, ldx, y, ldy);
  omp_set_num_threads(saved);
}

void SparseLinear::Impl::run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy,
                             std::span<uint8_t> scratch) const {
  if (m < 0) usage_error("SparseLinear::run: m must be >= 0");
  if (m == 0) return;
  if (!x || !y) usage_error("SparseLinear::run: null input or output pointer");
  if (ldx == 0) ldx = ic;
  if (ldy == 0) ldy = oc;
  if (ldx < ic)
    usage_error("SparseLinear::run: ldx " + std::to_string(ldx) + " is below in_features " + std::to_string(ic));
  if (ldy < oc)
    usage_error("SparseLinear::run: ldy " + std::to_string(ldy) + " is below out_features " + std::to_string(oc));
  if (runs_dense(m)) return run_dense(x, m, ldx, y, ldy);
  const size_t need = scratch_bytes(m);
  if (scratch.data()) {
    if (scratch.size() < need)
      usage_error("SparseLinear::run: scratch of " + std::to_string(scratch.size()) + " bytes, " +
                  std::to_string(need) + " needed");
    return run_sparse(x, m, ldx, y, ldy, scratch.data());
  }
  thread_local std::vector<uint8_t> own;
  if (own.size() < need) own.resize(need);
  run_sparse(x, m, ldx, y, ldy, own.data());
}

void SparseLinear::run(const float* x, int64_t m, float* y, int64_t ldx, int64_t ldy) const {
  run(x, m, y, ldx, ldy, {});
}

void SparseLinear::run(const uint8_t* x, int64_t m, void* y, int64_t ldx, int64_t ldy) const {
  run(x, m, y, ldx, ldy, {});
}

void SparseLinear::run(const float* x, int64_t m, float* y, int64_t ldx, int64_t ldy,
                       std::span<uint8_t> scratch) const {
  if (impl_->dtype != DType::F32) usage_error("SparseLinear::run: this operator is INT8; pass u8 activations");
  impl_->run(x, m, ldx, y, ldy, scratch);
}

void SparseLinear::run(const uint8_t* x, int64_t m, void* y, int64_t ldx, int64_t ldy,
                       std::span<uint8_t> scratch) const {
  if (impl_->dtype != DType::S8) usage_error("SparseLinear::run: this operator is FP32; pass f32 activations");
  impl_->run(x, m, ldx, y, ldy, scratch);
}

size_t SparseLinear::scratch_bytes(int64_t m) const { return impl_->scratch_bytes(m); }

std::string SparseLinear::impl(int64_t m) const {
  const Impl& s = *impl_;
  if (s.runs_dense(m)) return "onednn:" + s.dense->impl(m);
  return s.kernel_for(m).name;
}

const std::map<int64_t, bool>& SparseLinear::dense_for_m() const { return impl_->dense_for_m; }
const std::map<int64_t, bool>& SparseLinear::vnni_for_m() const { return impl_->low_for_m; }
std::string SparseLinear::sparse_kernel() const { return impl_->kernel->name; }
bool SparseLinear::stages_output(int64_t m, int64_t ldy) const {
  return impl_->stages_output(m, ldy > 0 ? ldy : impl_->oc);
}
bool SparseLinear::has_dense_fallback() const { return impl_->dense != nullptr; }
int SparseLinear::threads() const { return impl_->nthreads(); }
void SparseLinear::set_threads(int t) { impl_->opt.threads = t <= 0 ? 0 : checked_threads(t, "SparseLinear threads"); }
bool SparseLinear::is_int8() const { return impl_->dtype == DType::S8; }
int64_t SparseLinear::in_features() const { return impl_->ic; }
int64_t SparseLinear::out_features() const { return impl_->oc; }
const Pattern& SparseLinear::pattern() const { return impl_->pattern; }
double SparseLinear::sparsity() const { return impl_->weights.sparsity(); }
size_t SparseLinear::packed_bytes() const { return impl_->weights.size_bytes(); }
size_t SparseLinear::memory_bytes() const {
  const size_t low = impl_->low ? impl_->low_weights.size_bytes() : 0;
  const size_t few = impl_->few ? impl_->few_weights.size_bytes() : 0;
  return packed_bytes() + low + few + (impl_->dense ? impl_->dense->weight_bytes() : 0);
}
size_t SparseLinear::dense_bytes() const { return size_t(impl_->oc * impl_->ic) * (is_int8() ? 1 : 4); }
const PackedWeights& SparseLinear::weights() const { return impl_->weights; }

}  // namespace spruce
