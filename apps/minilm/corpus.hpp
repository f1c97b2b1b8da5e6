// English text for pruning the encoder offline: Debian's fortune cookies (package `fortunes`),
// about 15k short texts of many kinds (quotations, jokes, definitions, verse, computing lore).
// Chosen over Debian's documentation, which is long, technical and repetitive: fortunes span
// everyday language in sentence-sized pieces, as sentence embeddings are used.
#pragma once
#include <string>
#include <vector>

namespace minilm {

struct Corpus {
  std::vector<std::string> train, held_out;  // disjoint; held_out is never trained on
};

// Every fortune in `dir` (the plain files, not .dat/.u8 indexes or ASCII art), whitespace
// collapsed, 3-80 words, deduplicated. A text is held out when a hash of it falls in
// `held_out_percent` of 100 buckets, so the split does not depend on the order files are read in.
// Throws spruce::Error (usage) naming the package when the folder is missing or empty.
Corpus read_fortunes(const std::string& dir = "/usr/share/games/fortunes", int held_out_percent = 10);

}  // namespace minilm
