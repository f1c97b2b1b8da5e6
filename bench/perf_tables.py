#!/usr/bin/env python3
"""Markdown tables for docs/performance/ from the JSON records of bench/run_performance.sh.

Usage: bench/perf_tables.py out/perf/NAME.json [...]    (one table per file)
       bench/perf_tables.py --sweep out/perf/sweep-int8.json   (speedup by pattern x sparsity)
       bench/perf_tables.py --rounds R1.json R2.json [...]   (one table: each case's range over
                                                              rounds of the same command)
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


def rounds(paths):
    """Each case's median and min-max over several runs of one command (rounds taken minutes apart
    on a noisy VM), raw sparse and operator, against oneDNN of the same dtype."""
    cases = {}
    for path in paths:
        for r in json.load(open(path)):
            key = (r["m"], r["k"], r["n"], r["pattern"], r["dtype"], r["threads"])
            cases.setdefault(key, []).append(r)
    print(f"{len(paths)} rounds: " + ", ".join(f"`{p}`" for p in paths) + "\n")
    print("| m | k | n | pattern | dtype | thr | sparse kernel | sparse us | dense us | **speedup** | operator runs | operator vs dense |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")

    def spread(values, fmt):
        values = sorted(values)
        median = values[len(values) // 2] if len(values) % 2 else 0.5 * (values[len(values) // 2 - 1] + values[len(values) // 2])
        return f"{fmt(median)} ({fmt(values[0])}-{fmt(values[-1])})" if len(values) > 1 else fmt(median)

    for (m, k, n, pattern, dtype, thr), rs in cases.items():
        kernels = sorted({r["sparse_impl"] for r in rs})
        ops = sorted({r["operator_impl"] for r in rs})
        us = lambda v: f"{v:.1f}"
        x = lambda v: f"{v:.2f}x"
        print(f"| {m} | {k} | {n} | {pattern} | {dtype} | {thr} | {', '.join(kernels)} | "
              f"{spread([r['sparse_us'] for r in rs], us)} | {spread([r['dense_us'] for r in rs], us)} | "
              f"**{spread([r['speedup'] for r in rs], x)}** | {', '.join(ops)} | "
              f"{spread([r['operator_speedup'] for r in rs], x)} |")
    print()


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "--sweep":
        for a in args[1:]:
            sweep(a)
    elif args and args[0] == "--rounds":
        rounds(args[1:])
    else:
        for a in args:
            table(a)
