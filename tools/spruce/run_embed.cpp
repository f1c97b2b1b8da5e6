// spruce embed --input texts.txt --output embeddings.jsonl: sentence embeddings with
// all-MiniLM-L6-v2 (or a pruned copy of it), one text per line or JSONL in, JSONL or .npy out.
// Its work, in spruce-torch; the flags are in cmd_embed.cpp.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <optional>

#include "cmd_embed.hpp"
#include "flags.hpp"
#include "minilm/corpus.hpp"
#include "minilm/embed_io.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/attention.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/spmm.hpp"
#include "spruce/torch/threads.hpp"
#include "table.hpp"

namespace spruce::cli {
namespace {

// How libgomp's and OpenBLAS's idle workers wait in this run (main.cpp shortens both spins
// unless the user chose).
std::string idle_wait() {
  std::string openmp = "libgomp's default spin";
  if (const char* policy = std::getenv("OMP_WAIT_POLICY"))
    openmp = std::string("OMP_WAIT_POLICY=") + policy;
  else if (const char* spin = std::getenv("GOMP_SPINCOUNT"))
    openmp = std::string("GOMP_SPINCOUNT=") + spin;
  const char* blas = std::getenv("OPENBLAS_THREAD_TIMEOUT");
  return openmp + ", " + (blas ? std::string("OPENBLAS_THREAD_TIMEOUT=") + blas : "OpenBLAS's default spin");
}

// On a terminal, a line drawn after the first batch and then at most 4 times a second: texts done, the rate, and the
// time left, estimated from the tokens (the longest texts go first). Cleared when the work ends.
std::function<void(const minilm::SentenceEncoder::Progress&)> progress_line(
    bool draw, std::chrono::steady_clock::time_point start) {
  if (!draw) return {};
  auto drawn = std::make_shared<std::optional<std::chrono::steady_clock::time_point>>();
  return [drawn, start](const minilm::SentenceEncoder::Progress& p) {
    const auto now = std::chrono::steady_clock::now();
    if (p.texts_done == p.texts) {
      if (*drawn) std::cerr << "\r\033[K" << std::flush;
      return;
    }
    if (*drawn && now - **drawn < std::chrono::milliseconds(250)) return;  // the first batch draws at once
    *drawn = now;
    const double seconds = std::chrono::duration<double>(now - start).count();
    const double left = p.tokens_done > 0 ? seconds * double(p.tokens - p.tokens_done) / double(p.tokens_done) : 0;
    std::cerr << "\rembed: " << p.texts_done << " / " << p.texts << " texts ("
              << fixed(100.0 * double(p.texts_done) / double(p.texts), 0) << "%), "
              << fixed(double(p.texts_done) / std::max(seconds, 1e-9), 0) << " texts/s, about " << fixed(left, 0)
              << " s left\033[K" << std::flush;
  };
}

}  // namespace

void run_embed(const EmbedArgs& a) {
  const auto out_format = check_embed_args(a);
  const std::string output = a.output == "-" ? "" : a.output;  // -: standard output, as --input - is stdin
  spruce::torch::set_threads(a.threads);
  const auto texts = minilm::read_texts(a.input, minilm::parse_text_format(a.input_format, a.input));
  auto encoder = minilm::SentenceEncoder::load(a.model, a.max_length);
  minilm::refuse_empty_texts(texts, encoder.tokenizer(), a.input);
  const auto converting = std::chrono::steady_clock::now();
  std::vector<std::string> calibration;
  if (a.variant.starts_with("int8")) {
    const minilm::Corpus corpus = minilm::read_fortunes(a.fortunes);
    calibration.assign(corpus.train.begin(),
                       corpus.train.begin() + std::min<ptrdiff_t>(a.calibration_texts, ptrdiff_t(corpus.train.size())));
  }
  const auto served = encoder.serve(a.variant, calibration, {a.batch}, a.max_length, a.threads,
                                    parse_fallback(a.fallback), parse_attention_precision(a.attention));
  if (!served.layers.empty()) {
    double zeros = 0, weights = 0;
    for (const auto& l : served.layers) {
      const double n = double(l.in_features) * double(l.out_features);
      zeros += l.sparsity * n;
      weights += n;
    }
    std::cerr << "embed: " << a.variant << ": " << served.layers.size() << " Linear layers converted ("
              << served.kernels() << "), " << fixed(100 * zeros / weights, 1) << "% zeros, attention "
              << served.attention
              << (calibration.empty() ? "" : ", calibrated on " + std::to_string(calibration.size()) + " fortunes")
              << ", in "
              << fixed(std::chrono::duration<double>(std::chrono::steady_clock::now() - converting).count(), 1)
              << " s\n";
    if (a.variant.ends_with("sparse") && zeros < 0.05 * weights)
      std::cerr << "embed: note: " << a.model << " is not pruned, and --variant " << a.variant
                << " gains from a pruned model (the --save folder of spruce distill)\n";
  }
  const auto start = std::chrono::steady_clock::now();
  const auto embeddings = encoder.encode(texts, a.batch, progress_line(a.progress && isatty(STDERR_FILENO), start));
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string bytes =
      out_format == minilm::EmbeddingFormat::Npy ? minilm::to_npy(embeddings) : minilm::to_jsonl(texts, embeddings);
  if (output.empty()) {
    std::cout << bytes << std::flush;
  } else {
    write_file_atomic(output, bytes);
  }
  std::cerr << "embed: " << texts.size() << " texts -> " << embeddings.size(1) << "-d embeddings (" << a.variant
            << ") in " << seconds << " s (" << static_cast<int64_t>(double(texts.size()) / seconds)
            << " texts/s, batch " << a.batch << ", " << a.threads << " threads, " << idle_wait() << ")"
            << (output.empty() ? "" : ", written to " + output) << "\n";
  if (encoder.truncated() > 0) {
    const int64_t own = minilm::SentenceEncoder::folder_max_length(a.model);
    std::cerr << "embed: note: " << encoder.truncated() << " of " << texts.size() << " texts were longer than "
              << a.max_length << " tokens (--max-length) and were truncated"
              << (own > a.max_length ? "; sentence-transformers keeps up to " + std::to_string(own) +
                                           " for this model (its sentence_bert_config.json)"
                                     : std::string())
              << "\n";
  }
}

}  // namespace spruce::cli
