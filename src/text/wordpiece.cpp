// BERT's basic tokenizer and WordPiece, on ICU's Unicode tables and normalizer.
#include "spruce/text/wordpiece.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/utf8.h>

#include <algorithm>
#include <climits>
#include <fstream>

#include "spruce/error.hpp"

namespace spruce::text {
namespace {

// Hugging Face's rule: Cc, Cf and Co, except the whitespace it keeps (unassigned code points stay).
bool is_control(UChar32 c) {
  if (c == '\t' || c == '\n' || c == '\r') return false;
  const int8_t type = u_charType(c);
  return type == U_CONTROL_CHAR || type == U_FORMAT_CHAR || type == U_PRIVATE_USE_CHAR || type == U_SURROGATE;
}

bool is_whitespace(UChar32 c) { return c == '\t' || c == '\n' || c == '\r' || u_isUWhiteSpace(c); }

bool is_punctuation(UChar32 c) {  // ASCII symbols count too ($, +, <, ^, `, |, ~), as in BERT
  const bool ascii = (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
  return ascii || u_ispunct(c);
}

bool is_cjk(UChar32 c) {  // the CJK Unified Ideograph blocks BERT splits into single characters
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// Code points of UTF-8 that first_invalid_utf8() has accepted.
std::u32string decode(std::string_view utf8) {
  std::u32string out;
  out.reserve(utf8.size());
  const auto* s = reinterpret_cast<const uint8_t*>(utf8.data());
  const auto length = static_cast<int32_t>(utf8.size());
  for (int32_t i = 0; i < length;) {
    UChar32 c = 0;
    U8_NEXT(s, i, length, c);
    out.push_back(static_cast<char32_t>(c));
  }
  return out;
}

std::string encode_utf8(const std::u32string& text, size_t begin, size_t end) {
  std::string out;
  for (size_t i = begin; i < end; ++i) {
    uint8_t buffer[U8_MAX_LENGTH];
    int32_t n = 0;
    U8_APPEND_UNSAFE(buffer, n, static_cast<UChar32>(text[i]));
    out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
  }
  return out;
}

// BertNormalizer: clean, isolate CJK, strip accents (NFD, drop nonspacing marks), lowercase.
std::u32string normalize(const std::u32string& text) {
  icu::UnicodeString cleaned;
  for (char32_t ch : text) {
    const auto c = static_cast<UChar32>(ch);
    if (c == 0 || c == 0xFFFD || is_control(c)) continue;
    if (is_whitespace(c)) {
      cleaned.append(static_cast<UChar32>(' '));
    } else if (is_cjk(c)) {
      cleaned.append(static_cast<UChar32>(' ')).append(c).append(static_cast<UChar32>(' '));
    } else {
      cleaned.append(c);
    }
  }
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  const icu::UnicodeString decomposed = U_SUCCESS(status) ? nfd->normalize(cleaned, status) : cleaned;
  if (U_FAILURE(status)) data_error(std::string("ICU's NFD normalizer failed: ") + u_errorName(status));
  std::u32string out;
  out.reserve(static_cast<size_t>(decomposed.length()));
  for (int32_t i = 0; i < decomposed.length(); i = decomposed.moveIndex32(i, 1)) {
    const UChar32 c = decomposed.char32At(i);
    if (u_charType(c) == U_NON_SPACING_MARK) continue;
    out.push_back(static_cast<char32_t>(u_tolower(c)));
  }
  return out;
}

}  // namespace

size_t first_invalid_utf8(std::string_view text) {
  if (text.size() > size_t{INT32_MAX}) return 0;  // ICU's offsets are 32-bit; nobody tokenizes 2 GiB
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  const auto length = static_cast<int32_t>(text.size());
  for (int32_t i = 0; i < length;) {
    const int32_t at = i;
    UChar32 c = 0;
    U8_NEXT(s, i, length, c);
    if (c < 0) return static_cast<size_t>(at);
  }
  return std::string_view::npos;
}

WordPieceTokenizer WordPieceTokenizer::load(const std::string& vocab_path) {
  std::ifstream in(vocab_path);
  if (!in)
    usage_error("cannot read the vocabulary " + in_quotes(vocab_path) +
                "; run scripts/install-deps.sh, which fetches all-MiniLM-L6-v2");
  std::vector<std::string> vocabulary;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    vocabulary.push_back(std::move(line));
  }
  try {
    return WordPieceTokenizer(std::move(vocabulary));
  } catch (const Error& e) {
    usage_error("the vocabulary " + in_quotes(vocab_path) + " " + e.what());
  }
}

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocabulary) : vocabulary_(std::move(vocabulary)) {
  // A token on two lines has two ids, and readers disagree on which (Hugging Face takes the last).
  for (size_t i = 0; i < vocabulary_.size(); ++i)
    if (const auto [at, added] = ids_.emplace(vocabulary_[i], static_cast<int32_t>(i)); !added)
      usage_error("has " + in_quotes(vocabulary_[i], 60) + " on lines " + std::to_string(at->second + 1) + " and " +
                  std::to_string(i + 1) + "; a token may appear once: the vocabulary is damaged");
  auto special = [&](const char* name) {
    auto it = ids_.find(name);
    if (it == ids_.end() && !vocabulary_.empty() && vocabulary_[0].starts_with("\xef\xbb\xbf"))
      usage_error("begins with a byte-order mark, which hides its first token; remove it");
    if (it == ids_.end()) usage_error(std::string("has no ") + name + " token; is it a BERT vocabulary?");
    return it->second;
  };
  cls_ = special("[CLS]");
  sep_ = special("[SEP]");
  pad_ = special("[PAD]");
  unk_ = special("[UNK]");
  for (const char* name : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"})
    if (auto it = ids_.find(name); it != ids_.end()) specials_.emplace_back(it->first, it->second);
}

void WordPieceTokenizer::word_pieces(const std::u32string& word, std::vector<int32_t>& out) const {
  if (word.size() > kMaxCharsPerWord) {
    out.push_back(unk_);
    return;
  }
  const size_t first = out.size();
  for (size_t start = 0; start < word.size();) {
    size_t end = word.size();
    int32_t found = -1;
    for (; end > start; --end) {  // the longest piece in the vocabulary wins
      const std::string piece = (start > 0 ? "##" : "") + encode_utf8(word, start, end);
      auto it = ids_.find(piece);
      if (it != ids_.end()) {
        found = it->second;
        break;
      }
    }
    if (found < 0) {  // one unmatchable remainder makes the whole word unknown
      out.resize(first);
      out.push_back(unk_);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

std::vector<int32_t> WordPieceTokenizer::tokenize(std::string_view utf8) const {
  if (const size_t bad = first_invalid_utf8(utf8); bad != std::string_view::npos)
    usage_error("invalid UTF-8 at byte " + std::to_string(bad) + "; convert the text to UTF-8");
  // Special tokens typed in the text ("[SEP]", "[MASK]", case-sensitive) are kept whole, as
  // Hugging Face keeps its added tokens; the text between them is tokenized as usual.
  std::vector<int32_t> ids;
  size_t begin = 0;
  while (begin < utf8.size()) {
    size_t at = std::string_view::npos, length = 0;
    int32_t special = -1;
    for (const auto& [token, id] : specials_) {
      const size_t found = utf8.find(token, begin);
      if (found < at) at = found, length = token.size(), special = id;
    }
    tokenize_plain(utf8.substr(begin, at == std::string_view::npos ? std::string_view::npos : at - begin), ids);
    if (at == std::string_view::npos) break;
    ids.push_back(special);
    begin = at + length;
  }
  return ids;
}

void WordPieceTokenizer::tokenize_plain(std::string_view utf8, std::vector<int32_t>& ids) const {
  const std::u32string text = normalize(decode(utf8));
  std::u32string word;
  auto flush = [&] {
    if (!word.empty()) word_pieces(word, ids);
    word.clear();
  };
  for (char32_t c : text) {
    if (is_whitespace(static_cast<UChar32>(c))) {
      flush();
    } else if (is_punctuation(static_cast<UChar32>(c))) {
      flush();
      word_pieces(std::u32string(1, c), ids);
    } else {
      word.push_back(c);
    }
  }
  flush();
}

Encoding WordPieceTokenizer::encode(std::string_view utf8, size_t max_length) const {
  if (max_length < 2) usage_error("the maximum sequence length must be at least 2 ([CLS] and [SEP])");
  std::vector<int32_t> pieces = tokenize(utf8);
  Encoding encoding;
  encoding.truncated = pieces.size() > max_length - 2;
  if (encoding.truncated) pieces.resize(max_length - 2);
  encoding.ids.reserve(pieces.size() + 2);
  encoding.ids.push_back(cls_);
  encoding.ids.insert(encoding.ids.end(), pieces.begin(), pieces.end());
  encoding.ids.push_back(sep_);
  return encoding;
}

Batch WordPieceTokenizer::encode_batch(const std::vector<std::string>& texts, size_t max_length) const {
  std::vector<Encoding> encodings;
  encodings.reserve(texts.size());
  for (const auto& text : texts) encodings.push_back(encode(text, max_length));
  std::vector<const Encoding*> pointers;
  for (const auto& e : encodings) pointers.push_back(&e);
  return pad(pointers);
}

Batch WordPieceTokenizer::pad(const std::vector<const Encoding*>& encodings) const {
  size_t longest = 0;
  for (const Encoding* e : encodings) longest = std::max(longest, e->ids.size());
  Batch batch;
  batch.rows = static_cast<int64_t>(encodings.size());
  batch.max_length = static_cast<int64_t>(longest);
  batch.ids.assign(encodings.size() * longest, pad_);
  batch.mask.assign(encodings.size() * longest, 0);
  for (size_t r = 0; r < encodings.size(); ++r) {
    const auto& ids = encodings[r]->ids;
    std::copy(ids.begin(), ids.end(), batch.ids.begin() + static_cast<ptrdiff_t>(r * longest));
    std::fill_n(batch.mask.begin() + static_cast<ptrdiff_t>(r * longest), ids.size(), 1);
    batch.truncated += encodings[r]->truncated ? 1 : 0;
  }
  return batch;
}

}  // namespace spruce::text
