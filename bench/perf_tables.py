#!/usr/bin/env python3
"""Markdown tables for docs/PERFORMANCE.md from the JSON records of bench/run_performance.sh.

Usage: bench/perf_tables.py out/perf/NAME.json [...]    (one table per file)
       bench/perf_tables.py --sweep out/perf/sweep-int8.json   (speedup by pattern x sparsity)
"""
import json
import sys


def table(path):
    recs = json.load(open(path))
    print(f"`{path}`\n")
    print("| m | k | n | pattern | sparsity | thr | sparse kernel | oneDNN | sparse us | dense us | **speedup** | vs FP32 dense | operator runs | operator vs dense |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in recs:
        print(f"| {r['m']} | {r['k']} | {r['n']} | {r['pattern']} | {100 * r['sparsity']:.1f}% | {r['threads']} | "
              f"{r['sparse_impl']} | {r['dense_impl']} | {r['sparse_us']:.1f} | {r['dense_us']:.1f} | "
              f"**{r['speedup']:.2f}x** | {r['speedup_vs_f32']:.2f}x | {r['operator_impl']} | {r['operator_speedup']:.2f}x |")
    print()


def sweep(path):
    recs = json.load(open(path))
    pats = []
    for r in recs:
        if r["pattern"] not in pats:
            pats.append(r["pattern"])
    levels = sorted({round(r["sparsity"], 2) for r in recs if ":" not in r["pattern"]})
    print(f"`{path}` (raw sparse kernel / operator, both against oneDNN dense {recs[0]['dtype']})\n")
    print("| pattern | " + " | ".join(f"{int(100 * s)}%" for s in levels) + " |")
    print("|---|" + "---|" * len(levels))
    for p in pats:
        cells = []
        for s in levels:
            rs = [r for r in recs if r["pattern"] == p and (":" in p or round(r["sparsity"], 2) == s)]
            if ":" in p and s != levels[0]:
                rs = []
            cells.append(" / ".join([f"{rs[0]['speedup']:.2f}x", f"{rs[0]['operator_speedup']:.2f}x"]) if rs else "")
        label = p + (f" ({100 * recs[[r['pattern'] for r in recs].index(p)]['sparsity']:.0f}%)" if ":" in p else "")
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--sweep":
        for a in args[1:]:
            sweep(a)
    else:
        for a in args:
            table(a)
