// `spruce embed`'s files: texts in (one per line, or JSONL), embeddings out (JSONL or .npy), with
// every refusal naming the line and the fix.
#pragma once
#include <torch/types.h>

#include <string>
#include <vector>

#include "minilm/options.hpp"  // the formats
#include "spruce/text/wordpiece.hpp"

namespace minilm {

// Reads texts: one per line (a line ends at \n, \r\n or a lone \r), or one JSON value per line,
// either a string or an object with a string "text". Throws spruce::Error (usage, exit 2) naming
// the line for an empty or blank line, ill-formed UTF-8, bad JSON, a line over 1 MiB, or no text
// at all. `path` "-" reads standard input. Text i is on line i + 1.
std::vector<std::string> read_texts(const std::string& path, TextFormat format);
// Throws spruce::Error (usage, exit 2) naming the line of the first text that `tokenizer` makes no
// token of (only control, format or whitespace characters, e.g. a lone byte-order mark): it would
// be embedded as the empty text, like the blank line read_texts refuses.
void refuse_empty_texts(const std::vector<std::string>& texts, const spruce::text::WordPieceTokenizer& tokenizer,
                        const std::string& path);

// JSONL: {"text": ..., "embedding": [...]} per line, as sentence-transformers users store them.
std::string to_jsonl(const std::vector<std::string>& texts, const ::torch::Tensor& embeddings);
// NumPy's .npy (version 1.0): little-endian float32, C order, shape [N][H]; numpy.load reads it.
std::string to_npy(const ::torch::Tensor& embeddings);

}  // namespace minilm
