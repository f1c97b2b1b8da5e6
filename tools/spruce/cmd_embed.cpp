// spruce embed --input texts.txt --output embeddings.jsonl: sentence embeddings with
// all-MiniLM-L6-v2 (or a pruned copy of it), one text per line or JSONL in, JSONL or .npy out.
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "command.hpp"
#include "flags.hpp"
#include "minilm/embed_io.hpp"
#include "minilm/sentence_encoder.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/torch/threads.hpp"

namespace spruce::cli {
namespace {

struct EmbedArgs {
  std::string model = minilm::default_model_dir(), input = "-", output, input_format = "auto", format = "auto";
  int64_t batch = 32, max_length = minilm::SentenceEncoder::kMaxLength;
  int threads = 2;
};

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

void run(const EmbedArgs& a) {
  const std::string output = a.output == "-" ? "" : a.output;  // -: standard output, as --input - is stdin
  // auto: npy for an --output named *.npy, as --input-format auto reads *.jsonl as JSONL.
  const auto out_format =
      minilm::parse_embedding_format(a.format == "auto" ? (output.ends_with(".npy") ? "npy" : "jsonl") : a.format);
  if (a.format == "jsonl" && output.ends_with(".npy"))
    usage_error("--format jsonl would write text into " + in_quotes(output) + ", named as NPY; drop --format, or " +
                "name a .jsonl file");
  if (out_format == minilm::EmbeddingFormat::Npy && output.empty())
    usage_error("--format npy writes a binary file: give it with --output FILE");
  if (a.input != "-") check_not_input("--output", output, a.input, "--input, the texts");
  check_not_inside("--output", output, a.model, "the model (--model)");
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
  if (encoder.truncated() > 0)
    std::cerr << "embed: note: " << encoder.truncated() << " of " << texts.size() << " texts were longer than "
              << a.max_length << " tokens and were truncated, as sentence-transformers truncates them\n";
}

void add(CLI::App& app) {
  auto a = std::make_shared<EmbedArgs>();
  auto* cmd =
      app.add_subcommand("embed", "Sentence embeddings with all-MiniLM-L6-v2 (or a pruned copy), JSONL or .npy");
  cmd->add_option("--model", a->model, "A sentence-transformers folder (config.json, model.safetensors, vocab.txt)")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--input", a->input,
                  "Texts, one per line (\\n, \\r\\n or a lone \\r ends a line), or JSONL (a string or "
                  "{\"text\": ...} per line); - is stdin")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--input-format", a->input_format, "text, jsonl, or auto (jsonl for *.jsonl)")->capture_default_str();
  cmd->add_option("--output", a->output, "Write here (atomically); - or none: standard output (JSONL only)")
      ->check(non_empty());
  cmd->add_option("--format", a->format,
                  "jsonl ({\"text\", \"embedding\"} per line), npy (float32 [N][H]), or auto (npy for *.npy)")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "Texts per forward pass")->check(int_in(1, 4096))->capture_default_str();
  cmd->add_option("--max-length", a->max_length,
                  "Tokens per text, [CLS] and [SEP] included; longer texts are truncated")
      ->check(int_in(2, 512))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads")->check(thread_count())->capture_default_str();
  cmd->callback([a] { run(*a); });
}

const Command reg{"embed", add};

}  // namespace
}  // namespace spruce::cli
