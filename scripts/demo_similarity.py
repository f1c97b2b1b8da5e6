"""Cosine similarities between `spruce embed` JSONL embeddings, as a Markdown table.
    python3 scripts/demo_similarity.py out/demo/minilm.jsonl
"""
import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1], encoding="utf-8")]
texts = [r["text"] for r in rows]
vectors = [r["embedding"] for r in rows]  # L2-normalized by the encoder: dot product is cosine
short = [t if len(t) <= 38 else t[:35] + "..." for t in texts]
print("| | " + " | ".join(f"{i + 1}" for i in range(len(texts))) + " |")
print("|---" * (len(texts) + 1) + "|")
for i, a in enumerate(vectors):
    cells = [f"{sum(x * y for x, y in zip(a, b)):.2f}" for b in vectors]
    print(f"| {i + 1}. {short[i]} | " + " | ".join(cells) + " |")
