// The tokenizer gives Hugging Face's token ids on the reference sentences (varied on purpose:
// accents, CJK, emoji, control characters, overlong words, truncation), and refuses bad input.
#include "spruce/text/wordpiece.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "spruce/error.hpp"

namespace {

using spruce::text::WordPieceTokenizer;
const std::string kModelDir = std::string(SPRUCE_SOURCE_DIR) + "/third_party/all-MiniLM-L6-v2";

const WordPieceTokenizer& minilm() {
  static const WordPieceTokenizer tokenizer = WordPieceTokenizer::load(kModelDir + "/vocab.txt");
  return tokenizer;
}

std::vector<std::string> pieces(std::string_view text) {
  std::vector<std::string> out;
  for (int32_t id : minilm().tokenize(text)) out.push_back(minilm().token(id));
  return out;
}

TEST(WordPiece, MatchesTheReferenceIdsOnEverySentence) {
  std::ifstream in(std::string(SPRUCE_SOURCE_DIR) + "/tests/apps/data/minilm_reference.json");
  ASSERT_TRUE(in) << "tests/apps/data/minilm_reference.json is missing";
  const auto reference = nlohmann::json::parse(in);
  const auto max_length = reference.at("max_seq_length").get<size_t>();
  ASSERT_GE(reference.at("sentences").size(), 30u);
  for (const auto& sentence : reference.at("sentences")) {
    const auto text = sentence.at("text").get<std::string>();
    const auto want = sentence.at("input_ids").get<std::vector<int32_t>>();
    EXPECT_EQ(minilm().encode(text, max_length).ids, want) << "text: " << text;
  }
}

TEST(WordPiece, SplitsPunctuationAndLongestMatchesPieces) {
  EXPECT_EQ(pieces("Hello, World!"), (std::vector<std::string>{"hello", ",", "world", "!"}));
  EXPECT_EQ(pieces("don't"), (std::vector<std::string>{"don", "'", "t"}));
  EXPECT_EQ(pieces("$5+3"), (std::vector<std::string>{"$", "5", "+", "3"}));  // ASCII symbols split
  const auto unaffable = pieces("unaffable");
  ASSERT_GT(unaffable.size(), 1u);
  for (size_t i = 1; i < unaffable.size(); ++i) EXPECT_EQ(unaffable[i].substr(0, 2), "##");
}

TEST(WordPiece, StripsAccentsLowercasesAndSplitsCjk) {
  EXPECT_EQ(pieces("CAFÉ"), pieces("cafe"));
  EXPECT_EQ(pieces("cafe\xCC\x81"), pieces("cafe"));                                      // decomposed accent
  EXPECT_EQ(pieces("\xE4\xB8\xAD\xE6\x96\x87"), (std::vector<std::string>{"中", "文"}));  // 中文
  EXPECT_EQ(pieces("a\xE2\x80\x8B"
                   "b"),
            pieces("ab"));  // zero-width space dropped
  EXPECT_EQ(pieces("a\xC2\xA0"
                   "b"),
            pieces("a b"));  // no-break space splits
  EXPECT_EQ(pieces("a\tb\r\nc"), pieces("a b c"));
  EXPECT_EQ(pieces(std::string("a\0b", 3)), pieces("ab"));  // NUL dropped
}

TEST(WordPiece, KeepsTypedSpecialTokensAndUnassignedCodePoints) {
  // As Hugging Face: exact "[SEP]" / "[MASK]" are special tokens; "[cls]" is text.
  EXPECT_EQ(pieces("hello [SEP] world [MASK] x [cls] [UNK]"),
            (std::vector<std::string>{"hello", "[SEP]", "world", "[MASK]", "x", "[", "cl", "##s", "]", "[UNK]"}));
  EXPECT_EQ(pieces("a\xCD\xB8"
                   "b"),
            (std::vector<std::string>{"[UNK]"}));  // U+0378 is kept, not dropped
  EXPECT_EQ(pieces("soft\xC2\xAD"
                   "hyphen"),
            pieces("softhyphen"));  // U+00AD (Cf) is dropped
}

TEST(WordPiece, UnknownWordsBecomeOneUnk) {
  EXPECT_EQ(pieces(std::string(WordPieceTokenizer::kMaxCharsPerWord + 1, 'a')), (std::vector<std::string>{"[UNK]"}));
  EXPECT_EQ(pieces("\xF0\x9F\x98\x80"), (std::vector<std::string>{"[UNK]"}));  // an emoji
  EXPECT_TRUE(minilm().tokenize("").empty());
  EXPECT_TRUE(minilm().tokenize(" \t\n").empty());
}

TEST(WordPiece, TruncatesToTheMaximumLengthWithSpecialTokens) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += "word ";
  const auto encoding = minilm().encode(text, 16);
  EXPECT_TRUE(encoding.truncated);
  ASSERT_EQ(encoding.ids.size(), 16u);
  EXPECT_EQ(encoding.ids.front(), minilm().cls_id());
  EXPECT_EQ(encoding.ids.back(), minilm().sep_id());
  EXPECT_FALSE(minilm().encode("short", 16).truncated);
  EXPECT_EQ(minilm().encode("", 16).ids, (std::vector<int32_t>{minilm().cls_id(), minilm().sep_id()}));
  EXPECT_THROW(minilm().encode("x", 1), spruce::Error);
}

TEST(WordPiece, PadsBatchesToTheLongestWithAMask) {
  const auto batch = minilm().encode_batch({"a b c d", "a"}, 128);
  ASSERT_EQ(batch.rows, 2);
  ASSERT_EQ(batch.max_length, 6);
  EXPECT_EQ(std::vector<int64_t>(batch.mask.begin(), batch.mask.end()),
            (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(batch.ids[9], minilm().pad_id());
  EXPECT_EQ(batch.truncated, 0);
}

TEST(WordPiece, RefusesIllFormedUtf8NamingTheByte) {
  for (std::string bad : {std::string("ab\xC3"), std::string("\xC0\xAF"), std::string("x\xED\xA0\x80"),
                          std::string("\xFF"), std::string("ok \x80 no")}) {
    try {
      minilm().tokenize(bad);
      ADD_FAILURE() << "accepted ill-formed UTF-8";
    } catch (const spruce::Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      EXPECT_NE(std::string(e.what()).find("invalid UTF-8 at byte"), std::string::npos) << e.what();
    }
  }
}

TEST(WordPiece, RefusesAMissingOrForeignVocabulary) {
  try {
    WordPieceTokenizer::load("/nonexistent/vocab.txt");
    ADD_FAILURE();
  } catch (const spruce::Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("install-deps"), std::string::npos) << e.what();
  }
  EXPECT_THROW(WordPieceTokenizer({"[CLS]", "[SEP]", "[PAD]", "hello"}), spruce::Error);  // no [UNK]
  const auto error_of = [](std::vector<std::string> vocabulary) {
    try {
      WordPieceTokenizer{std::move(vocabulary)};
    } catch (const spruce::Error& e) {
      return std::string(e.what());
    }
    return std::string("(accepted)");
  };
  // A token twice took the first line's id, where Hugging Face takes the last.
  EXPECT_EQ(error_of({"[PAD]", "[UNK]", "[CLS]", "[SEP]", "hello", "hello"}),
            "has 'hello' on lines 5 and 6; a token may appear once: the vocabulary is damaged");
  EXPECT_EQ(error_of({"\xef\xbb\xbf[PAD]", "[UNK]", "[CLS]", "[SEP]"}),
            "begins with a byte-order mark, which hides its first token; remove it");
}

}  // namespace
