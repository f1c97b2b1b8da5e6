#!/usr/bin/env python3
"""Rewrites the fidelity table of docs/results-minilm.md (between its `minilm-table` markers) from
out/minilm/<config>.json (written by scripts/minilm_results.sh; --runs takes several folders, e.g. the
500-step runs and out/minilm-long's), and, with gnuplot, plots
docs/minilm_fidelity_vs_sparsity.png (held-out mean cosine and top-10 overlap against sparsity,
one line per pattern) and docs/minilm_fidelity_vs_steps.png (mean cosine during training). Standard library only."""
import argparse
import json
import os
import re
import subprocess

CONFIGS = ["2in4", "4x1-70", "4x1-80", "4x1-90", "16x1-80"]
TARGETS = {"2in4": (0.95, 0.8), "4x1-80": (0.95, 0.8)}  # the issue's: mean cosine, top-10 overlap


def load(folders):
    """{label: run}; the label is the config, prefixed by its folder's name when there are several."""
    runs = {}
    for folder in folders:
        for name in CONFIGS:
            path = os.path.join(folder, name + ".json")
            if os.path.exists(path):
                with open(path) as f:
                    r = json.load(f)
                r["config"] = name
                label = name if len(folders) == 1 else f"{os.path.basename(os.path.normpath(folder))}/{name}"
                runs[label] = r
    return runs


def losses(r):
    parts = ["cosine", f"hidden x{r.get('hidden_weight', 1):g}"]
    if r.get("similarity_weight", 0):
        parts.append(f"similarity x{r['similarity_weight']:g}")
    return " + ".join(parts)


def schedule(r):
    return "decayed" if r.get("lr_schedule", "constant") != "constant" else "constant"


def table(runs):
    rows = ["| Pattern | Sparsity | Steps | Learning rate | Loss | Held-out mean cosine | Top-10 overlap | Spearman | "
            "Target (cos / top-10) |",
            "|---|---|---|---|---|---|---|---|---|"]
    for r in runs.values():
        target = TARGETS.get(r["config"])
        verdict = "-" if not target else (
            f"{target[0]} / {target[1]}: " +
            ("met" if r["mean_cosine"] >= target[0] and r["top10_overlap"] >= target[1] else "**missed**"))
        rows.append(f"| {r['pattern']} | {100 * r['sparsity']:.1f}% | {r['steps']} | "
                    f"{r['learning_rate']:g}, {schedule(r)} | {losses(r)} | {r['mean_cosine']:.4f} | "
                    f"{r['top10_overlap']:.3f} | {r['spearman']:.4f} | {verdict} |")
    return "\n".join(rows)


def plot(runs, png):
    longest = {}  # one point per config: its longest run
    for r in runs.values():
        if r["config"] not in longest or r["steps"] > longest[r["config"]]["steps"]:
            longest[r["config"]] = r
    lines = {}
    for r in longest.values():
        lines.setdefault(r["pattern"], []).append((r["sparsity"], r["mean_cosine"], r["top10_overlap"]))
    if not lines:
        return False
    data, plots = "", []
    for i, (pattern, points) in enumerate(sorted(lines.items())):
        block = "\n".join(f"{100 * s:.2f} {c:.5f} {t:.5f}" for s, c, t in sorted(points))
        data += f"$p{i} << EOD\n{block}\nEOD\n"
        plots.append(f"$p{i} using 1:2 with linespoints lw 2 pt 7 title '{pattern}: mean cosine'")
        plots.append(f"$p{i} using 1:3 with linespoints lw 2 pt 5 dt 2 title '{pattern}: top-10 overlap'")
    gp = (f"set terminal pngcairo size 900,520 font ',11'\nset output '{png}'\n{data}"
          "set title 'all-MiniLM-L6-v2 pruned by distillation: held-out fidelity to the dense model'\n"
          "set xlabel 'sparsity of the encoder Linear layers (%)'\nset ylabel 'fidelity'\n"
          "set yrange [0:1]\nset xrange [40:95]\nset key bottom left\nset grid\n"
          "set arrow from 40,0.95 to 95,0.95 nohead dt 3\nset arrow from 40,0.8 to 95,0.8 nohead dt 3\n"
          "plot " + ", ".join(plots) + "\n")
    subprocess.run(["gnuplot"], input=gp, text=True, check=True)
    return True


def plot_steps(runs, png):
    """Held-out mean cosine at each evaluation during training, one line per run."""
    data, plots = "", []
    for i, (name, r) in enumerate(runs.items()):
        points = [(0, 1.0)] + [(h["step"], h["mean_cosine"]) for h in r.get("history", [])]
        data += f"$r{i} << EOD\n" + "\n".join(f"{s} {c:.5f}" for s, c in points) + "\nEOD\n"
        plots.append(f"$r{i} using 1:2 with linespoints lw 2 pt 7 title '{name}'")
    gp = (f"set terminal pngcairo size 900,480 font ',11'\nset output '{png}'\n{data}"
          "set title 'all-MiniLM-L6-v2 distillation: held-out mean cosine to the dense model during training'\n"
          "set xlabel 'step (32 texts each)'\nset ylabel 'mean cosine'\nset yrange [0:1]\nset key bottom right\n"
          "set grid\nset arrow from graph 0, first 0.95 to graph 1, first 0.95 nohead dt 3\n"
          "plot " + ", ".join(plots) + "\n")
    subprocess.run(["gnuplot"], input=gp, text=True, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", nargs="+", default=["out/minilm"])
    ap.add_argument("--doc", default="docs/results-minilm.md")
    ap.add_argument("--png", default="docs/minilm_fidelity_vs_sparsity.png")
    ap.add_argument("--steps-png", default="docs/minilm_fidelity_vs_steps.png")
    a = ap.parse_args()
    runs = load(a.runs)
    if not runs:
        raise SystemExit(f"minilm_report: no runs in {a.runs}; run scripts/minilm_results.sh first")
    with open(a.doc) as f:
        doc = f.read()
    new = re.sub(r"(<!-- minilm-table -->\n).*?(<!-- /minilm-table -->)",
                 lambda m: m.group(1) + table(runs) + "\n" + m.group(2), doc, flags=re.S)
    if new == doc and "<!-- minilm-table -->" not in doc:
        raise SystemExit(f"minilm_report: {a.doc} has no minilm-table markers")
    tmp = a.doc + ".tmp"
    with open(tmp, "w") as f:
        f.write(new)
    os.replace(tmp, a.doc)
    plotted = plot(runs, a.png)
    if plotted:
        plot_steps(runs, a.steps_png)
    print(f"minilm_report: {len(runs)} runs -> {a.doc}" + (f", {a.png}, {a.steps_png}" if plotted else ""))


if __name__ == "__main__":
    main()
