// English text for pruning the encoder offline: Debian's fortune cookies (package `fortunes`),
// about 15k short texts of many kinds (quotations, jokes, definitions, verse, computing lore).
// Chosen over Debian's documentation, which is long, technical and repetitive: fortunes span
// everyday language in sentence-sized pieces, as sentence embeddings are used. More training
// text, optionally: WordNet's definitions and example sentences (package `wordnet-base`).
#pragma once
#include <string>
#include <vector>

namespace minilm {

struct Corpus {
  std::vector<std::string> train, held_out;  // disjoint; held_out is never trained on
  // Training text from a second source (add_wordnet), drawn beside `train` at a share of the
  // batches (DistillOptions::extra_share); none of it is in held_out.
  std::vector<std::string> extra;
};

// Every fortune in `dir` (the plain files, not .dat/.u8 indexes or ASCII art), whitespace
// collapsed, 3-80 words, deduplicated. A text is held out when a hash of it falls in
// `held_out_percent` of 100 buckets, so the split does not depend on the order files are read in.
// Throws spruce::Error (usage) naming the package when the folder is missing or empty.
Corpus read_fortunes(const std::string& dir = "/usr/share/games/fortunes", int held_out_percent = 10);

// Appends to corpus.extra every definition and example sentence of WordNet 3.0's database in
// `dir` (data.noun, data.verb, data.adj, data.adv): about 160k texts, each of 3-80 words,
// deduplicated, and none that is already in the corpus. Throws spruce::Error (usage) naming the
// package when the files are missing.
void add_wordnet(Corpus& corpus, const std::string& dir = "/usr/share/wordnet");

}  // namespace minilm
