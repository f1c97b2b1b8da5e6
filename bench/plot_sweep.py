#!/usr/bin/env python3
"""Plots the operator's speedup over oneDNN dense against sparsity, one line per pattern, from the
JSON records of `spruce bench --json` (a sweep over --sparsity), or the raw sparse kernel's with
--metric raw. Writes a PNG with gnuplot."""
import argparse
import collections
import json
import os
import subprocess
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("json", help="records from spruce bench --json")
    ap.add_argument("--out", required=True, help="PNG to write")
    ap.add_argument("--title", default="")
    ap.add_argument("--metric", choices=["operator", "raw"], default="operator",
                    help="the operator's speedup (with its fallback) or the raw sparse kernel's")
    ap.add_argument("--ymax", type=float, default=12)
    a = ap.parse_args()
    key = "operator_speedup" if a.metric == "operator" else "speedup"
    rows = collections.defaultdict(list)
    for r in json.load(open(a.json)):
        rows[r["pattern"]].append((100 * r["sparsity"], r[key]))
    with tempfile.TemporaryDirectory() as tmp:
        plots = []
        for pattern, points in rows.items():
            path = os.path.join(tmp, pattern.replace(":", "of") + ".dat")
            with open(path, "w") as f:
                f.writelines(f"{s:.2f} {x:.4f}\n" for s, x in sorted(points))
            plots.append(f"'{path}' using 1:2 with linespoints lw 2 pt 7 title '{pattern}'")
        plots.append("1/(1-x/100) with lines dt 2 lc rgb 'gray' title 'ideal 1/(1-s)'")
        plots.append("1 with lines dt 3 lc rgb 'black' title 'oneDNN dense'")
        script = f"""
set terminal pngcairo size 760,460 font 'DejaVu Sans,10'
set output '{a.out}.tmp'
set title '{a.title}'
set xlabel 'sparsity (% zero weights)'
set ylabel '{"operator" if a.metric == "operator" else "sparse kernel"} speedup over oneDNN dense (x)'
set xrange [48:97]
set yrange [0:{a.ymax:g}]
set key top left
set grid
plot {', '.join(plots)}
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)
    os.replace(a.out + ".tmp", a.out)  # never a half-written picture


if __name__ == "__main__":
    main()
