// spruce embed --input texts.txt --output embeddings.jsonl: sentence embeddings with
// all-MiniLM-L6-v2 (or a pruned copy of it), one text per line or JSONL in, JSONL or .npy out.
// Its flags; the work is in run_embed.cpp.
#include "cmd_embed.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <memory>

#include "command.hpp"
#include "flags.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"

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
  cmd->add_flag("!--no-progress", a->progress, "No progress line (drawn only where standard error is a terminal)");
  cmd->add_option("--max-length", a->max_length,
                  "Tokens per text, [CLS] and [SEP] included (so at least 3, or every text embeds alike); longer "
                  "texts are truncated")
      ->check(int_in(3, 512))
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "Threads")->check(thread_count())->capture_default_str();
  cmd->add_option("--variant", a->variant,
                  "How the encoder runs: fp32-dense (LibTorch, the reference), int8-dense (oneDNN), or fp32-sparse "
                  "and int8-sparse (spruce's sparse kernels: give a pruned model, the --save folder of spruce distill)")
      ->check(CLI::IsMember({"fp32-dense", "int8-dense", "fp32-sparse", "int8-sparse"}))
      ->capture_default_str();
  add_fallback_option(cmd, a->fallback);
  cmd->add_option("--attention", a->attention,
                  "INT8 variants: the attention products in f32, bf16 (AVX512_BF16) or int8 (AVX512_VNNI), as in "
                  "bench-model minilm")
      ->check(CLI::IsMember({"f32", "bf16", "int8"}))
      ->capture_default_str();
  cmd->add_option("--fortunes", a->fortunes,
                  "INT8 variants: calibrate on the training texts of this folder of fortunes (Debian's fortunes), "
                  "so that a text's embedding does not depend on the others given")
      ->check(non_empty())
      ->capture_default_str();
  cmd->add_option("--calibration-texts", a->calibration_texts, "INT8 variants: how many fortunes calibrate")
      ->check(int_in(1, 100000))
      ->capture_default_str();
  a->cmd = cmd;
  cmd->callback([a] { run_embed(*a); });
}

const Command reg{"embed", add};

}  // namespace

minilm::EmbeddingFormat check_embed_args(const EmbedArgs& a) {
  const std::string output = a.output == "-" ? "" : a.output;  // -: standard output, as --input - is stdin
  std::string lower = output;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  // auto: npy for an --output named *.npy (any case), as --input-format auto reads *.jsonl as JSONL.
  const auto out_format =
      minilm::parse_embedding_format(a.format == "auto" ? (lower.ends_with(".npy") ? "npy" : "jsonl") : a.format);
  minilm::parse_text_format(a.input_format, a.input);
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
  const bool int8 = a.variant.starts_with("int8");
  if (a.cmd && !int8)
    for (const char* flag : {"--attention", "--fortunes", "--calibration-texts"})
      if (a.cmd->count(flag) > 0)
        usage_error(std::string(flag) + " acts only with an INT8 --variant (int8-dense, int8-sparse); add one, or " +
                    "drop it");
  if (a.cmd && a.cmd->count("--fallback") > 0 && !a.variant.ends_with("sparse"))
    usage_error("--fallback acts only with a sparse --variant (fp32-sparse, int8-sparse); add one, or drop it");
  if (a.input != "-") require_regular_file(a.input);
  minilm::require_model_folder(a.model);
  if (int8 && !std::filesystem::is_directory(a.fortunes))
    usage_error("--fortunes " + in_quotes(a.fortunes) + " is not a folder: --variant " + a.variant +
                " calibrates on fortunes; install Debian's fortunes (scripts/install-deps.sh does), or give a " +
                "folder of fortune files");
  return out_format;
}

}  // namespace spruce::cli
