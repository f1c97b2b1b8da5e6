#include "minilm/embed_io.hpp"

#include <torch/torch.h>

#include <cstring>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <vector>

#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/text/wordpiece.hpp"

namespace minilm {
namespace {

constexpr size_t kMaxLineBytes = size_t{1} << 20;

[[noreturn]] void line_error(const std::string& path, size_t line, const std::string& problem) {
  spruce::usage_error((path == "-" ? std::string("standard input") : spruce::in_quotes(path)) + ", line " +
                      std::to_string(line) + ": " + problem);
}

// Line ends before `end`, as read_texts counts them (\r\n is one), plus one: the line `end` is in.
size_t line_at(const std::string& data, size_t end) {
  size_t line = 1;
  for (size_t i = 0; i < end; ++i)
    if (data[i] == '\n' || (data[i] == '\r' && (i + 1 >= data.size() || data[i + 1] != '\n'))) ++line;
  return line;
}

// Standard input, refused as soon as a line outgrows kMaxLineBytes: a stream without line ends
// (/dev/zero, a binary file) must not grow without bound.
std::string read_standard_input() {
  std::string data;
  std::vector<char> chunk(size_t{1} << 16);
  size_t line_start = 0;
  while (std::cin.read(chunk.data(), std::streamsize(chunk.size())) || std::cin.gcount() > 0) {
    const size_t got = size_t(std::cin.gcount());
    data.append(chunk.data(), got);
    if (const size_t end = data.find_last_of("\r\n"); end != std::string::npos && end + 1 > line_start)
      line_start = end + 1;
    if (data.size() - line_start > kMaxLineBytes)
      line_error("-", line_at(data, line_start), "longer than 1 MiB; split the text");
  }
  return data;
}

bool blank(std::string_view s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string_view::npos; }

}  // namespace

std::vector<std::string> read_texts(const std::string& path, TextFormat format) {
  const std::string data = path == "-" ? read_standard_input() : spruce::read_file(path);
  std::vector<std::string> texts;
  size_t line_number = 0;
  for (size_t begin = 0; begin < data.size();) {
    // A line ends at \n, \r\n or a lone \r (old Mac files), as Python's universal newlines read it.
    const size_t newline = data.find_first_of("\r\n", begin);
    const size_t end = newline == std::string::npos ? data.size() : newline;
    std::string_view line(data.data() + begin, end - begin);
    begin = end + (data.compare(end, 2, "\r\n") == 0 ? 2 : 1);
    ++line_number;
    if (line.size() > kMaxLineBytes) line_error(path, line_number, "longer than 1 MiB; split the text");
    if (blank(line)) line_error(path, line_number, "empty; give one text per line, with no blank lines");
    if (const size_t bad = spruce::text::first_invalid_utf8(line); bad != std::string_view::npos)
      line_error(path, line_number, "invalid UTF-8 at byte " + std::to_string(bad) + "; convert the file to UTF-8");
    if (format == TextFormat::Lines) {
      texts.emplace_back(line);
      continue;
    }
    nlohmann::json value;
    int text_keys = 0;  // the parser keeps the last of repeated keys; a repeat is refused instead
    const auto count_text_keys = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
      if (event == nlohmann::json::parse_event_t::key && depth == 1 && parsed == "text") ++text_keys;
      return true;
    };
    try {
      value = nlohmann::json::parse(line, count_text_keys);
    } catch (const nlohmann::json::exception& e) {
      if (e.id == 406)  // valid JSON syntax, but a number beyond double's range
        line_error(path, line_number,
                   "holds a number too large for a double (such as 1e999); give a JSON string or "
                   "{\"text\": \"...\"}");
      if (std::string(e.what()).find("surrogate") != std::string::npos)  // valid syntax, not text
        line_error(path, line_number,
                   "holds a \\u escape of half a UTF-16 surrogate pair, which is no character; give the pair, or "
                   "the character itself");
      line_error(path, line_number,
                 "not JSON; JSONL needs a string or {\"text\": ...} per line (or use --input-format text)");
    }
    if (text_keys > 1) line_error(path, line_number, "has the key \"text\" more than once; keep one");
    if (value.is_object() && value.contains("text")) value = value["text"];
    if (!value.is_string()) line_error(path, line_number, "holds no text; give a JSON string or {\"text\": \"...\"}");
    auto text = value.get<std::string>();
    if (blank(text)) line_error(path, line_number, "its text is empty");
    texts.push_back(std::move(text));
  }
  if (texts.empty())
    spruce::usage_error((path == "-" ? std::string("standard input") : spruce::in_quotes(path)) + " holds no text");
  return texts;
}

void refuse_empty_texts(const std::vector<std::string>& texts, const spruce::text::WordPieceTokenizer& tokenizer,
                        const std::string& path) {
  for (size_t i = 0; i < texts.size(); ++i)
    if (tokenizer.tokenize(texts[i]).empty())
      line_error(path, i + 1,
                 "no text once control characters, format characters (such as a byte-order mark or a zero-width "
                 "space) and whitespace are removed; remove the line");
}

std::string to_jsonl(const std::vector<std::string>& texts, const ::torch::Tensor& embeddings) {
  const auto e = embeddings.contiguous();
  const int64_t width = e.size(1);
  std::string out;
  for (size_t i = 0; i < texts.size(); ++i) {
    const float* row = e.data_ptr<float>() + static_cast<int64_t>(i) * width;
    nlohmann::ordered_json j{{"text", texts[i]}, {"embedding", std::vector<float>(row, row + width)}};
    out += j.dump() + "\n";
  }
  return out;
}

std::string to_npy(const ::torch::Tensor& embeddings) {
  const auto e = embeddings.contiguous().to(::torch::kFloat);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(e.size(0)) + ", " +
                       std::to_string(e.size(1)) + "), }";
  const size_t preamble = 10;                                           // magic, version, header length
  header.append((64 - (preamble + header.size() + 1) % 64) % 64, ' ');  // data starts 64-byte aligned
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(e.data_ptr<float>()), static_cast<size_t>(e.numel()) * sizeof(float));
  return out;
}

}  // namespace minilm
