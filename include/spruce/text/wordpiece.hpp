// BERT's uncased tokenizer: the basic tokenizer (clean, split CJK characters, strip accents,
// lowercase, split on whitespace and punctuation) then greedy longest-match WordPiece, with
// [CLS]/[SEP], truncation and padding. It matches Hugging Face's BertNormalizer +
// BertPreTokenizer + WordPiece, as all-MiniLM-L6-v2's tokenizer.json configures them; the tests
// check token ids against that reference (tests/apps/data/minilm_reference.json).
//
//   auto tokenizer = spruce::text::WordPieceTokenizer::load("third_party/all-MiniLM-L6-v2/vocab.txt");
//   spruce::text::Encoding e = tokenizer.encode("Crème brûlée!", 128);  // [CLS] creme br ##ule ##e ! [SEP]
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace spruce::text {

// The byte offset of the first ill-formed UTF-8 sequence in `text`, or npos when it is all valid.
size_t first_invalid_utf8(std::string_view text);

struct Encoding {
  std::vector<int32_t> ids;  // [CLS] pieces... [SEP]
  bool truncated = false;    // pieces were dropped to fit max_length
};

// A padded batch: ids and attention mask, both [rows][max_length] row-major; mask 1 = real token.
struct Batch {
  int64_t rows = 0, max_length = 0;
  std::vector<int64_t> ids, mask;
  int64_t truncated = 0;  // how many texts were truncated
};

class WordPieceTokenizer {
 public:
  // Reads a vocabulary with one token per line, the line number being the id. Throws
  // spruce::Error (usage) when the file is missing or lacks [CLS], [SEP], [PAD] or [UNK].
  static WordPieceTokenizer load(const std::string& vocab_path);
  explicit WordPieceTokenizer(std::vector<std::string> vocabulary);

  // The word pieces of a text, without special tokens. Throws spruce::Error (usage) on
  // ill-formed UTF-8, naming the byte offset.
  std::vector<int32_t> tokenize(std::string_view utf8) const;
  // [CLS] + the first max_length - 2 pieces + [SEP]. max_length must be at least 2.
  Encoding encode(std::string_view utf8, size_t max_length) const;
  // Encodes every text, padded with [PAD] to the longest one (at most max_length).
  Batch encode_batch(const std::vector<std::string>& texts, size_t max_length) const;
  // Pads encodings made by encode() into a batch.
  Batch pad(const std::vector<const Encoding*>& encodings) const;

  const std::string& token(int32_t id) const { return vocabulary_.at(static_cast<size_t>(id)); }
  size_t vocabulary_size() const { return vocabulary_.size(); }
  int32_t id_of(const std::string& token) const {  // -1 when the token is not in the vocabulary
    const auto it = ids_.find(token);
    return it == ids_.end() ? -1 : it->second;
  }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }

  static constexpr size_t kMaxCharsPerWord = 100;  // a longer word becomes [UNK]

 private:
  void word_pieces(const std::u32string& word, std::vector<int32_t>& out) const;
  void tokenize_plain(std::string_view utf8, std::vector<int32_t>& ids) const;

  std::vector<std::string> vocabulary_;
  std::unordered_map<std::string, int32_t> ids_;
  std::vector<std::pair<std::string, int32_t>> specials_;  // [CLS], [SEP], ... as typed in text
  int32_t cls_ = -1, sep_ = -1, pad_ = -1, unk_ = -1;
};

}  // namespace spruce::text
