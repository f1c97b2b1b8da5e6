// spruce embed --input texts.txt --output embeddings.jsonl: sentence embeddings with
// all-MiniLM-L6-v2 (or a pruned copy of it), one text per line or JSONL in, JSONL or .npy out.
// Its flags; the work is in run_embed.cpp.
#include "cmd_embed.hpp"

#include <memory>

#include "command.hpp"
#include "flags.hpp"

namespace spruce::cli {
namespace {

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
  cmd->add_option("--output", a->output, "Write here (atomically); - (or no --output): standard output (JSONL only)")
      ->check(non_empty());
  cmd->add_option("--format", a->format,
                  "jsonl ({\"text\", \"embedding\"} per line), npy (float32 [N][H]), or auto (npy for *.npy)")
      ->capture_default_str();
  cmd->add_option("--batch", a->batch, "Texts per forward pass")->check(int_in(1, 4096))->capture_default_str();
  cmd->add_option("--max-length", a->max_length,
                  "Tokens per text, [CLS] and [SEP] included (so at least 3, or every text embeds alike); longer "
                  "texts are truncated")
      ->check(int_in(3, 512))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads")->check(thread_count())->capture_default_str();
  cmd->callback([a] { run_embed(*a); });
}

const Command reg{"embed", add};

}  // namespace
}  // namespace spruce::cli
