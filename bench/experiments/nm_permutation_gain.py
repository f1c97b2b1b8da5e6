"""How much weight magnitude a 2:4 mask keeps, with and without an input-channel permutation.

A permutation of a layer's input channels (Pool & Yu, "Channel Permutations for N:M Sparsity",
NeurIPS 2021) regroups the channels before 2:4 picks 2 of every 4, so that large weights share a
group less often. spruce could apply one for free when it packs the activations; this measures
what it would buy on all-MiniLM-L6-v2, against unstructured 50% (the bound for any 2:4 mask).
Greedy channel swaps: every pair of groups tries its 16 single swaps, keeping the best gain.

    bench/deepsparse/.venv/bin/python bench/experiments/nm_permutation_gain.py \
        third_party/all-MiniLM-L6-v2/model.safetensors --layers 0 --sweeps 2

Needs numpy (the DeepSparse benchmark's environment has it). Magnitude only: wanda's scores
scale each input channel by its activations' RMS, which moves the gain a little either way.
"""
import argparse
import itertools
import json
import struct

import numpy as np


def tensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    for name, h in header.items():
        if name == "__metadata__" or h["dtype"] != "F32":
            continue
        a, b = h["data_offsets"]
        yield name, np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(h["shape"])


def kept_2of4(a):
    """a: (batch, rows, cols): per batch entry, the sum of the 2 largest of each row's groups of 4."""
    return np.sort(a.reshape(*a.shape[:-1], -1, 4), axis=-1)[..., 2:].sum(axis=(-1, -2, -3))


def permute(a, sweeps):
    """A permutation of a's columns (|w|, rows x cols) that keeps more under 2:4, by greedy swaps."""
    perm = np.arange(a.shape[1])
    groups = a.shape[1] // 4
    kept = np.array([kept_2of4(a[None, :, 4 * g:4 * g + 4])[0] for g in range(groups)])
    swaps = list(itertools.product(range(4), range(4)))
    for _ in range(sweeps):
        for g in range(groups):
            for h in range(g + 1, groups):
                cg, ch = perm[4 * g:4 * g + 4], perm[4 * h:4 * h + 4]
                new_g, new_h = np.tile(cg, (16, 1)), np.tile(ch, (16, 1))
                for k, (i, j) in enumerate(swaps):
                    new_g[k, i], new_h[k, j] = ch[j], cg[i]
                kg = kept_2of4(a[:, new_g].transpose(1, 0, 2))  # the 16 candidates' kept sums
                kh = kept_2of4(a[:, new_h].transpose(1, 0, 2))
                best = int(np.argmax(kg + kh))
                if kg[best] + kh[best] > (kept[g] + kept[h]) * (1 + 1e-9):
                    perm[4 * g:4 * g + 4], perm[4 * h:4 * h + 4] = new_g[best], new_h[best]
                    kept[g], kept[h] = kg[best], kh[best]
    return perm


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("weights")
    p.add_argument("--layers", default="0", help="encoder layers to measure, e.g. 0,3,5, or all (the pooler too)")
    p.add_argument("--sweeps", type=int, default=2, help="passes of swaps (0: no permutation, quick)")
    o = p.parse_args()
    layers = [""] if o.layers == "all" else [f"layer.{i}." for i in o.layers.split(",")]
    print("| matrix | shape | 2:4 keeps | permuted 2:4 keeps | unstructured 50% keeps | share of the gap closed |")
    print("|---|---|---|---|---|---|")
    for name, w in tensors(o.weights):
        if w.ndim != 2 or "embeddings" in name or not any(l in name for l in layers) or w.shape[1] % 4:
            continue
        a = np.abs(w).astype(np.float64)
        total = a.sum()
        plain = kept_2of4(a[None])[0] / total
        permuted = kept_2of4(a[None, :, permute(a, o.sweeps)])[0] / total
        free = np.sort(a.ravel())[a.size // 2:].sum() / total
        short = name.replace("encoder.", "").replace(".weight", "")
        print(f"| {short} | {w.shape[0]}x{w.shape[1]} | {plain:.4f} | {permuted:.4f} | {free:.4f} | "
              f"{(permuted - plain) / (free - plain):.0%} |", flush=True)


if __name__ == "__main__":
    main()
