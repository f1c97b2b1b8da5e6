#include "minilm/corpus.hpp"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "spruce/checksum.hpp"
#include "spruce/error.hpp"
#include "spruce/file.hpp"
#include "spruce/text/wordpiece.hpp"

namespace minilm {
namespace {

std::string collapse_whitespace(const std::string& text, size_t& words) {
  std::istringstream in(text);
  std::string word, out;
  words = 0;
  while (in >> word) out += (words++ ? " " : "") + word;
  return out;
}

// The split's hash: FNV-1a from a basis one digit short of FNV's own. Kept as it is, since it
// defines which texts are held out (docs/results-minilm.md's figures).
uint64_t split_hash(const std::string& s) { return spruce::fnv1a(s.data(), s.size(), 1469598103934665603ull); }

}  // namespace

Corpus read_fortunes(const std::string& dir, int held_out_percent) {
  namespace fs = std::filesystem;
  if (held_out_percent < 1 || held_out_percent > 50) spruce::usage_error("the held-out share must be 1-50%");
  std::error_code ec;
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto name = entry.path().filename().string();
    if (entry.is_regular_file() && !entry.path().has_extension() && name != "ascii-art")  // pictures, not text
      files.push_back(entry.path());
  }
  if (ec || files.empty())
    spruce::usage_error("no fortunes in " + spruce::in_quotes(dir) +
                        "; install Debian's `fortunes` package (scripts/install-deps.sh does)");
  std::sort(files.begin(), files.end());
  std::set<std::string> seen;
  Corpus corpus;
  for (const auto& file : files) {
    std::ifstream in(file);
    std::string text, line;
    auto flush = [&] {
      size_t words = 0;
      std::string t = collapse_whitespace(text, words);
      text.clear();
      const bool fits = words >= 3 && words <= 80 && spruce::text::first_invalid_utf8(t) == std::string::npos;
      if (!fits || !seen.insert(t).second) return;
      (split_hash(t) % 100 < static_cast<uint64_t>(held_out_percent) ? corpus.held_out : corpus.train)
          .push_back(std::move(t));
    };
    while (std::getline(in, line)) {
      if (line == "%") {
        flush();
      } else {
        text += line + "\n";
      }
    }
    flush();
  }
  return corpus;
}

void add_wordnet(Corpus& corpus, const std::string& dir) {
  std::set<std::string> seen(corpus.train.begin(), corpus.train.end());
  seen.insert(corpus.held_out.begin(), corpus.held_out.end());
  seen.insert(corpus.extra.begin(), corpus.extra.end());
  auto add = [&](const std::string& text) {
    size_t words = 0;
    std::string t = collapse_whitespace(text, words);
    if (words >= 3 && words <= 80 && spruce::text::first_invalid_utf8(t) == std::string::npos && seen.insert(t).second)
      corpus.extra.push_back(std::move(t));
  };
  const size_t before = corpus.extra.size();
  for (const char* part : {"data.noun", "data.verb", "data.adj", "data.adv"}) {
    const std::string path = dir + "/" + part;
    if (!std::filesystem::exists(path))
      spruce::usage_error("no WordNet database at " + spruce::in_quotes(path) +
                          "; install Debian's `wordnet-base` package (scripts/install-deps.sh does)");
    std::istringstream in(spruce::read_file(path));  // a regular file: a FIFO or folder is refused, not waited on
    std::string line;
    while (std::getline(in, line)) {
      // A synset's line ends in "| gloss": its definition, then "; "-separated quoted examples.
      // Lines that begin with two spaces are the license.
      const size_t bar = line.find(" | ");
      if (line.rfind("  ", 0) == 0 || bar == std::string::npos) continue;
      const std::string gloss = line.substr(bar + 3);
      const size_t quote = gloss.find('"');
      std::string definition = gloss.substr(0, quote);
      while (!definition.empty() && (definition.back() == ' ' || definition.back() == ';')) definition.pop_back();
      add(definition);
      for (size_t open = quote; open != std::string::npos;) {
        const size_t close = gloss.find('"', open + 1);
        if (close == std::string::npos) break;
        add(gloss.substr(open + 1, close - open - 1));
        open = gloss.find('"', close + 1);
      }
    }
  }
  if (corpus.extra.size() == before)
    spruce::usage_error("no WordNet definitions or examples in " + spruce::in_quotes(dir) +
                        "; give the folder of Debian's `wordnet-base` (/usr/share/wordnet)");
}

}  // namespace minilm
