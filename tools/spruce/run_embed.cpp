// spruce embed --input texts.txt --output embeddings.jsonl: sentence embeddings with
// all-MiniLM-L6-v2 (or a pruned copy of it), one text per line or JSONL in, JSONL or .npy out.
// Its work, in spruce-torch; the flags are in cmd_embed.cpp.
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "cmd_embed.hpp"
#include "flags.hpp"
#include "minilm/embed_io.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/torch/threads.hpp"

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

}  // namespace

void run_embed(const EmbedArgs& a) {
  const std::string output = a.output == "-" ? "" : a.output;  // -: standard output, as --input - is stdin
  std::string lower = output;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  // auto: npy for an --output named *.npy (any case), as --input-format auto reads *.jsonl as JSONL.
  const auto out_format =
      minilm::parse_embedding_format(a.format == "auto" ? (lower.ends_with(".npy") ? "npy" : "jsonl") : a.format);
  if (a.format == "jsonl" && lower.ends_with(".npy"))
    usage_error("--format jsonl would write text into " + in_quotes(output) + ", named as NPY; drop --format, or " +
                "name a .jsonl file");
  if (a.format == "npy" && (lower.ends_with(".jsonl") || lower.ends_with(".json") || lower.ends_with(".txt")))
    usage_error("--format npy would write binary NPY into " + in_quotes(output) + ", named as text; drop --format, " +
                "or name a .npy file");
  // Embeddings written over a model's weights (a run's model.safetensors) under their name.
  for (const char* model_file : {".safetensors", ".pt"})
    if (lower.ends_with(model_file))
      usage_error("--output " + in_quotes(output) + " is named as a model file, and embed writes " +
                  (out_format == minilm::EmbeddingFormat::Npy ? "NPY" : "JSONL") + "; name a .jsonl or .npy file");
  if (out_format == minilm::EmbeddingFormat::Npy && output.empty())
    usage_error("--format npy writes a binary file: give it with --output FILE");
  if (a.input != "-") check_not_input("--output", output, a.input, "--input, the texts");
  check_not_inside("--output", output, a.model, "the model (--model)", kSentenceModelFiles);
  check_output_file("--output", output);
  spruce::torch::set_threads(a.threads);
  const auto texts = minilm::read_texts(a.input, minilm::parse_text_format(a.input_format, a.input));
  auto encoder = minilm::SentenceEncoder::load(a.model, a.max_length);
  minilm::refuse_empty_texts(texts, encoder.tokenizer(), a.input);
  const auto start = std::chrono::steady_clock::now();
  const auto embeddings = encoder.encode(texts, a.batch);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string bytes =
      out_format == minilm::EmbeddingFormat::Npy ? minilm::to_npy(embeddings) : minilm::to_jsonl(texts, embeddings);
  if (output.empty()) {
    std::cout << bytes << std::flush;
  } else {
    write_file_atomic(output, bytes);
  }
  std::cerr << "embed: " << texts.size() << " texts -> " << embeddings.size(1) << "-d embeddings in " << seconds
            << " s (" << static_cast<int64_t>(double(texts.size()) / seconds) << " texts/s, batch " << a.batch << ", "
            << a.threads << " threads, " << idle_wait() << ")" << (output.empty() ? "" : ", written to " + output)
            << "\n";
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
