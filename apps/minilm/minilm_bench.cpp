#include "minilm/minilm_bench.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <ostream>

#include "minilm/corpus.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/error.hpp"
#include "spruce/spmm.hpp"
#include "spruce/torch/convert.hpp"
#include "spruce/torch/layer_stack.hpp"
#include "spruce/torch/threads.hpp"

namespace minilm {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

// Sequences of exactly `length` tokens ([CLS] ... [SEP]) cut from the held-out texts' tokens
// laid end to end: real words, and no padding.
Inputs full_length_inputs(const SentenceEncoder& e, const std::vector<std::string>& texts, int64_t rows,
                          int64_t length) {
  std::vector<int32_t> stream;
  for (const auto& t : texts) {
    const auto ids = e.tokenizer().tokenize(t);
    stream.insert(stream.end(), ids.begin(), ids.end());
    if (stream.size() >= static_cast<size_t>(rows * (length - 2))) break;
  }
  if (stream.size() < static_cast<size_t>(rows * (length - 2)))
    spruce::usage_error("--batches: a batch of " + std::to_string(rows) + " x " + std::to_string(length) +
                        " tokens needs " + std::to_string(rows * (length - 2)) +
                        " tokens of held-out text, and the held-out fortunes give " + std::to_string(stream.size()) +
                        "; give batches of at most " + std::to_string(int64_t(stream.size()) / (length - 2)) +
                        " (or a shorter --seq-length)");
  std::vector<int64_t> ids;
  for (int64_t r = 0; r < rows; ++r) {
    ids.push_back(e.tokenizer().cls_id());
    for (int64_t i = 0; i < length - 2; ++i) ids.push_back(stream[static_cast<size_t>(r * (length - 2) + i)]);
    ids.push_back(e.tokenizer().sep_id());
  }
  Inputs in;
  in.ids = ::torch::tensor(ids, ::torch::kInt64).view({rows, length});
  in.mask = ::torch::ones({rows, length}, ::torch::kInt64);
  return in;
}

double linear_sparsity(BertModelImpl& model) {
  int64_t zeros = 0, total = 0;
  for (const auto& host : spruce::torch::find_layer_hosts(model))
    for (size_t i = 0; i < host.host->size(); ++i)
      if (const auto w = host.host->gemm_weight(i); w.defined()) {
        zeros += (w == 0).sum().item<int64_t>();
        total += w.numel();
      }
  return total ? double(zeros) / double(total) : 0.0;
}

// One batch's time per stage of the encoder, the mean over `rounds` batches.
std::array<double, kStageCount> stage_ms(SentenceEncoder& e, const Inputs& in, int rounds) {
  ::torch::NoGradGuard no_grad;
  StageClock clock;
  for (int i = 0; i < rounds; ++i) e.embed(in);
  std::array<double, kStageCount> ms{};
  for (int s = 0; s < kStageCount; ++s) ms[s] = clock.ms(static_cast<Stage>(s)) / rounds;
  return ms;
}

// What each converted Linear runs for m rows (the operator's tuned choice), counted.
std::string runs_at(::torch::nn::Module& model, int64_t m) {
  std::map<std::string, int> count;
  for (const auto& h : spruce::torch::find_layer_hosts(model))
    for (size_t i = 0; i < h.host->size(); ++i)
      if (const auto* g = spruce::torch::converted_gemm(*h.host->layer(i))) ++count[g->op().impl(m)];
  std::string out;
  for (const auto& [kernel, n] : count) out += (out.empty() ? "" : ", ") + kernel + " x" + std::to_string(n);
  return out.empty() ? "libtorch" : out;
}

}  // namespace

std::vector<MinilmBenchRecord> bench_minilm(const MinilmBenchOptions& o, std::ostream& log) {
  auto is_sparse = [](const std::string& variant) { return variant.find("sparse") != std::string::npos; };
  const bool any_sparse = std::any_of(o.variants.begin(), o.variants.end(), is_sparse);
  if (any_sparse && o.sparse_dir.empty())
    spruce::usage_error("bench-model minilm needs --sparse-model DIR, a folder written by `spruce distill --save`");
  if (o.batches.empty()) spruce::usage_error("bench-model minilm needs at least one batch size");
  for (const auto& v : o.variants)
    if (v != "fp32-dense" && v != "int8-dense" && v != "fp32-sparse" && v != "int8-sparse")
      spruce::usage_error("unknown variant " + spruce::in_quotes(v) +
                          ": valid are fp32-dense, int8-dense, fp32-sparse and int8-sparse");
  if (o.variants.empty()) spruce::usage_error("bench-model minilm needs at least one variant");
  for (size_t i = 0; i < o.variants.size(); ++i)
    if (std::find(o.variants.begin(), o.variants.begin() + static_cast<ptrdiff_t>(i), o.variants[i]) !=
        o.variants.begin() + static_cast<ptrdiff_t>(i))
      spruce::usage_error("variant " + spruce::in_quotes(o.variants[i]) + " is given twice; name each once");
  if (o.seq_length < 3 || o.seq_length > 512) spruce::usage_error("--seq-length must be 3..512");
  spruce::torch::set_threads(o.threads);
  // A bad folder fails now, not after the dense timing.
  int64_t sparse_width = 0;
  double sparse_zeros = 1;
  if (any_sparse) {
    auto sparse = SentenceEncoder::load(o.sparse_dir);
    sparse_width = sparse.model()->config().hidden_size;
    sparse_zeros = linear_sparsity(*sparse.model());
  }
  const Corpus corpus = read_fortunes(o.fortunes);
  std::vector<std::string> calibration(
      corpus.train.begin(), corpus.train.begin() + std::min<int64_t>(o.calibration_texts, corpus.train.size()));
  auto teacher = SentenceEncoder::load(o.dense_dir);
  if (any_sparse && sparse_width != teacher.model()->config().hidden_size)
    spruce::usage_error("--sparse-model " + spruce::in_quotes(o.sparse_dir) + " embeds in " +
                        std::to_string(sparse_width) + " dimensions, --dense-model " + spruce::in_quotes(o.dense_dir) +
                        " in " + std::to_string(teacher.model()->config().hidden_size) +
                        ": give a pruned copy of the dense model");
  // A dense model timed under the sparse columns looked like sparsity that bought nothing.
  if (any_sparse && sparse_zeros < 1e-3)
    spruce::usage_error("--sparse-model " + spruce::in_quotes(o.sparse_dir) + " has no pruned Linear weights (" +
                        std::to_string(sparse_zeros * 100).substr(0, 4) +
                        "% zeros); give the --save folder of spruce distill --pattern ...");
  // A pruned model as the dense one: its "dense" baselines would time pruned weights.
  if (const double dense_zeros = linear_sparsity(*teacher.model()); dense_zeros > 0.05)
    spruce::usage_error(
        "--dense-model " + spruce::in_quotes(o.dense_dir) + " is pruned (" +
        std::to_string(dense_zeros * 100).substr(0, 4) +
        "% zeros in its Linear weights); give the unpruned model, and the pruned one as --sparse-model");
  const auto teacher_held_out = teacher.encode(corpus.held_out, 64);
  std::vector<MinilmBenchRecord> records;
  std::vector<std::pair<std::string, std::string>> variants;  // name, weights folder
  for (const auto& v : o.variants) variants.emplace_back(v, is_sparse(v) ? o.sparse_dir : o.dense_dir);
  if (o.tokens_per_pass < 0) spruce::usage_error("--tokens-per-pass must be >= 0 (0: the whole batch at once)");
  // The sequences each Linear layer sees at once: one pass of the batch.
  const auto pass_rows = [&](int64_t batch) {
    return SentenceEncoder::plan_passes(o.tokens_per_pass, o.seq_length, batch, o.threads, o.parallel_passes).sequences;
  };
  std::map<std::string, ::torch::Tensor> own_fp32;  // per weights folder
  for (const auto& [variant, dir] : variants) {
    auto e = SentenceEncoder::load(dir);
    if (!own_fp32.count(dir)) own_fp32[dir] = e.encode(corpus.held_out, 64);
    const double sparsity = linear_sparsity(*e.model());
    e.set_tokens_per_pass(o.tokens_per_pass);
    e.set_parallel_passes(o.parallel_passes);
    if (variant != "fp32-dense") log << "bench-model minilm: converting " << variant << " (calibrating and tuning)\n";
    const auto served = e.serve(variant, calibration, o.batches, o.seq_length, o.threads, o.fallback, o.int8_attention);
    const std::string kernels = served.kernels();
    const std::string& attention = served.attention;
    const auto held_out = e.encode(corpus.held_out, 64);
    const double to_own = (held_out * own_fp32[dir]).sum(1).mean().item<double>();
    const double to_teacher = (held_out * teacher_held_out).sum(1).mean().item<double>();
    for (int64_t batch : o.batches) {
      const Inputs in = full_length_inputs(e, corpus.held_out, batch, o.seq_length);
      ::torch::NoGradGuard no_grad;
      for (int i = 0; i < 2; ++i) e.embed(in);  // warm-up
      std::vector<double> ms;
      const auto start = Clock::now();
      while (ms.size() < 10 || ms_since(start) < 1000 * o.min_seconds) {
        const auto t = Clock::now();
        e.embed(in);
        ms.push_back(ms_since(t));
      }
      std::sort(ms.begin(), ms.end());
      MinilmBenchRecord r;
      r.variant = variant;
      r.batch = batch;
      r.seq_length = o.seq_length;
      r.iterations = static_cast<int64_t>(ms.size());
      double total = 0;
      for (double v : ms) total += v;
      r.sequences_per_second = 1000.0 * double(batch) * double(ms.size()) / total;
      r.p50_ms = ms[ms.size() / 2];
      r.p99_ms = ms[std::min(ms.size() - 1, static_cast<size_t>(0.99 * double(ms.size())))];
      r.stage_ms = stage_ms(e, in, 3);
      double linear = 0, staged = 0;
      for (int s = 0; s < kStageCount; ++s) {
        staged += r.stage_ms[s];
        if (is_linear(static_cast<Stage>(s))) linear += r.stage_ms[s];
      }
      r.linear_share = staged > 0 ? linear / staged : 0.0;
      r.sparsity = sparsity;
      r.cosine_to_own_fp32 = to_own;
      r.cosine_to_teacher = to_teacher;
      r.kernels = kernels;
      r.attention = attention;
      r.runs = runs_at(*e.model(), pass_rows(batch) * o.seq_length);
      log << "bench-model minilm: " << variant << " batch " << batch << " x " << o.seq_length << ": "
          << static_cast<int64_t>(r.sequences_per_second) << " seq/s, p99 " << r.p99_ms << " ms (" << r.iterations
          << " runs; " << r.runs << ")\n";
      records.push_back(r);
    }
  }
  return records;
}

}  // namespace minilm
