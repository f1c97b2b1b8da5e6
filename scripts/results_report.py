#!/usr/bin/env python3
"""Rewrites docs/RESULTS.md's table and plots from the runs of scripts/results.sh.

Reads <results>/<model>-<config>-s<seed>.json (spruce train --json), writes the table between the
`<!-- results:begin -->` and `<!-- results:end -->` markers of docs/RESULTS.md, the runs of
scripts/experiments.sh between the `experiments` markers, and, with gnuplot,
docs/accuracy_vs_sparsity_4x1.png and docs/mask_heatmap_4x1.png (from seed 0's saved masks).
The `amx` markers get the same table for dense, 4x1, 4x16, 16x1, 16x4 and 16x64 from --same-build
(scripts/results.sh run with RESULTS_DIR=out/amx ONLY="dense 4x1-90 4x16-85 16x1-90 16x4-90 16x64-90"):
every row from one build, so its Δ compares like with like.
With --keep-missing, a row whose runs are not in the folders is kept as the document has it (and
Δ vs dense falls back to the document's dense row), so rows can be added without rerunning all.
Standard library only.
"""
import argparse
import glob
import json
import os
import re
import statistics
import struct
import subprocess
import tempfile

CONFIGS = [  # name in the file, pattern, target sparsity, flags
    ("dense", "dense", None, ""),
    ("4x1-90", "4x1", 0.90, "--pattern 4x1 --sparsity 0.9 --criterion magnitude"),
    ("2x1-80", "2x1", 0.80, "--pattern 2x1 --sparsity 0.8 --criterion magnitude"),
    ("4x16-85", "4x16", 0.85, "--pattern 4x16 --sparsity 0.85 --criterion magnitude"),
    ("2in4", "2:4", 0.50, "--pattern 2:4 --criterion magnitude"),
    ("1x1-90", "1x1", 0.90, "--pattern 1x1 --sparsity 0.9 --criterion magnitude"),
    ("16x1-90", "16x1", 0.90, "--pattern 16x1 --sparsity 0.9 --criterion magnitude"),
    ("16x4-90", "16x4", 0.90, "--pattern 16x4 --sparsity 0.9 --criterion magnitude"),
    ("16x64-90", "16x64", 0.90, "--pattern 16x64 --sparsity 0.9 --criterion magnitude"),
]
SAME_BUILD = ["dense", "4x1-90", "4x16-85", "16x1-90", "16x4-90", "16x64-90"]  # the amx block's configs
MODELS = [("mlp", "MLP 784-1024-1024-10"), ("cnn", "CNN 2 conv + 2 linear")]


def load_runs(folder):
    runs = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        m = re.match(r"(mlp|cnn)-(.+)-s(\d+)\.json$", os.path.basename(path))
        if m:
            runs.setdefault((m.group(1), m.group(2)), []).append(json.load(open(path)))
    return runs


def mean_std(values):
    if len(values) < 2:
        return values[0], float("nan")
    return statistics.mean(values), statistics.stdev(values)


def fmt(mean, std, scale=100, digits=2):
    s = f"{scale * mean:.{digits}f}"
    return s + (f" ± {scale * std:.{digits}f}" if std == std else "")


def doc_rows(text, marker, key_columns):
    """The table rows between `marker`'s markers, by the tuple of their first key_columns cells."""
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in text or end not in text:
        return {}
    rows = {}
    for line in text.split(begin, 1)[1].split(end, 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and not line.startswith("|---") and len(cells) > key_columns:
            rows[tuple(cells[:key_columns])] = line
    return rows


def doc_dense_mean(kept, label):
    """The dense mean (a fraction) of `label`'s dense row in the document, or None."""
    line = kept.get((label, "dense", "-"))
    if line is None:
        return None
    m = re.match(r"\s*([0-9.]+)", line.strip().strip("|").split("|")[4])
    return float(m.group(1)) / 100 if m else None


def table(runs, kept=None, configs=CONFIGS):
    kept = kept or {}
    lines = [
        "| Model | Sparsity Pattern | Target | Achieved Sparsity | Test Accuracy % (mean ± std) | Δ vs dense (points) | Seeds | Epochs | Command |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for model, label in MODELS:
        dense = runs.get((model, "dense"))
        dense_mean = mean_std([r["test_accuracy"] for r in dense])[0] if dense else doc_dense_mean(kept, label)
        for name, pattern, target, flags in configs:
            rs = runs.get((model, name))
            old = kept.get((label, pattern, '-' if target is None else f'{target:.0%}'))
            if not rs and old and "not run yet" not in old:
                lines.append(old)
                continue
            if not rs:
                lines.append(f"| {label} | {pattern} | {'-' if target is None else f'{target:.0%}'} | not run yet | | | 0 | | |")
                continue
            acc = mean_std([r["test_accuracy"] for r in rs])
            sparsity = statistics.mean(r["sparsity"] for r in rs)
            delta = "" if dense_mean is None or name == "dense" else f"{100 * (acc[0] - dense_mean):+.2f}"
            epochs = sorted({r["epochs"] for r in rs})
            command = (f"`spruce train --dataset fashion-mnist --model {model} {flags} --epochs {epochs[0]} "
                       f"--seed S`").replace("  ", " ")
            lines.append(f"| {label} | {pattern} | {'-' if target is None else f'{target:.0%}'} | {100 * sparsity:.2f}% | "
                         f"{fmt(*acc)} | {delta} | {len(rs)} | {'/'.join(map(str, epochs))} | {command} |")
    return "\n".join(lines)


EXPERIMENTS = {  # name: what changed against the table's row
    "mlp-4x1-90-lasso1e-4": "4x1@90%, group lasso on (reg_coeff 1e-4)",
    "mlp-4x1-90-lasso1e-3": "4x1@90%, group lasso on (reg_coeff 1e-3)",
    "mlp-4x1-90-snipmom": "4x1@90%, snip_momentum criterion (INC's default) instead of magnitude",
    "mlp-4x1-90-early": "4x1@90%, ramp ends at 40% of training instead of 60% (longer fine-tuning)",
    "mlp-4x1-90-late": "4x1@90%, ramp from 30% to 70% of training instead of 10% to 60% (longer dense start)",
    "mlp-4x1-90-local": "4x1@90%, local scope (each layer at 90%) instead of global",
    "mlp-dense-8ep": "dense, 8 epochs",
    "mlp-4x1-90-8ep": "4x1@90%, 8 epochs",
    "mlp-4x16-85-8ep": "4x16@85%, 8 epochs",
    "cnn-dense-6ep": "dense, 6 epochs",
    "cnn-4x1-90-6ep": "4x1@90%, 6 epochs",
    "cnn-4x16-85-6ep": "4x16@85%, 6 epochs",
    "cnn-2in4-6ep": "2:4, 6 epochs",
    # Straight-through pruning beside the table's recipe and dense, all on one host (three seeds).
    "mlp-dense-4ep": "dense, 4 epochs (Zen 5 host)",
    "mlp-4x1-90-4ep": "4x1@90%, the table's recipe (Zen 5 host)",
    "mlp-4x1-90-ste": "4x1@90%, straight-through (SR-STE, decay 0.002)",
    "mlp-4x1-90-ste02": "4x1@90%, straight-through (SR-STE, decay 0.02)",
    "mlp-4x16-85-4ep": "4x16@85%, the table's recipe (Zen 5 host)",
    "mlp-4x16-85-ste": "4x16@85%, straight-through (SR-STE, decay 0.002)",
    "mlp-16x1-90-4ep": "16x1@90%, the table's recipe (Zen 5 host)",
    "mlp-16x1-90-ste": "16x1@90%, straight-through (SR-STE, decay 0.002)",
    "cnn-dense-3ep": "dense, 3 epochs (Zen 5 host)",
    "cnn-2in4-3ep": "2:4, the table's recipe (Zen 5 host)",
    "cnn-2in4-ste": "2:4, straight-through (SR-STE, decay 0.002)",
    "cnn-2in4-ste02": "2:4, straight-through (SR-STE, decay 0.02)",
    "cnn-4x1-90-3ep": "4x1@90%, the table's recipe (Zen 5 host)",
    "cnn-4x1-90-ste": "4x1@90%, straight-through (SR-STE, decay 0.002)",
    "cnn-4x16-85-3ep": "4x16@85%, the table's recipe (Zen 5 host)",
    "cnn-4x16-85-ste": "4x16@85%, straight-through (SR-STE, decay 0.002)",
    "cnn-16x1-90-3ep": "16x1@90%, the table's recipe (Zen 5 host)",
    "cnn-16x1-90-ste": "16x1@90%, straight-through (SR-STE, decay 0.002)",
    # Gradual 2:4 beside the table's recipe and dense, on a Zen 4 host (three seeds).
    "mlp-dense-4ep-zen4": "dense, 4 epochs (Zen 4 host)",
    "mlp-2in4-4ep-zen4": "2:4, the table's recipe (Zen 4 host)",
    "mlp-2in4-gradual": "2:4, gradual (groups pruned to 2:4 along the ramp)",
    "cnn-dense-3ep-zen4": "dense, 3 epochs (Zen 4 host)",
    "cnn-2in4-3ep-zen4": "2:4, the table's recipe (Zen 4 host)",
    "cnn-2in4-gradual": "2:4, gradual (groups pruned to 2:4 along the ramp)",
    "cnn-2in4-gradual-ste": "2:4, gradual and straight-through (decay 0.002)",
    # The ramp ending at 40% instead of 60% on the other block rows that miss (Zen 4 host, three seeds).
    "mlp-4x16-85-early": "4x16@85%, ramp ends at 40% of training instead of 60%",
    "cnn-4x1-90-early": "4x1@90%, ramp ends at 40% of training instead of 60%",
    "cnn-4x16-85-early": "4x16@85%, ramp ends at 40% of training instead of 60%",
    # Higher learning rates, each sparse row against dense at the same rate; local scope on the CNN
    # (Zen 4 host, three seeds).
    "mlp-lr2e-3-dense": "dense, learning rate 2e-3 instead of 1e-3",
    "mlp-lr2e-3-4x1-90": "4x1@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "mlp-lr2e-3-4x16-85": "4x16@85%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "mlp-lr3e-3-dense": "dense, learning rate 3e-3 instead of 1e-3",
    "mlp-lr3e-3-4x1-90": "4x1@90%, learning rate 3e-3 (Δ vs dense at 3e-3)",
    "cnn-lr2e-3-dense": "dense, learning rate 2e-3 instead of 1e-3",
    "cnn-lr2e-3-4x1-90": "4x1@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "cnn-lr2e-3-4x16-85": "4x16@85%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "cnn-lr3e-3-dense": "dense, learning rate 3e-3 instead of 1e-3",
    "cnn-lr3e-3-4x1-90": "4x1@90%, learning rate 3e-3 (Δ vs dense at 3e-3)",
    "mlp-lr2e-3-16x1-90": "16x1@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "mlp-lr2e-3-16x4-90": "16x4@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "mlp-lr2e-3-16x64-90": "16x64@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "cnn-lr2e-3-16x1-90": "16x1@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "cnn-lr2e-3-16x4-90": "16x4@90%, learning rate 2e-3 (Δ vs dense at 2e-3)",
    "cnn-lr3e-3-4x16-85": "4x16@85%, learning rate 3e-3 (Δ vs dense at 3e-3)",
    "cnn-lr3e-3-16x4-90": "16x4@90%, learning rate 3e-3 (Δ vs dense at 3e-3)",
    # Distillation from the dense model trained at 3e-3 (the teacher is the dense run of each seed).
    "cnn-lr3e-3-4x1-90-kd": "4x1@90%, learning rate 3e-3, distilled from the dense model at 3e-3",
    "cnn-lr3e-3-4x16-85-kd": "4x16@85%, learning rate 3e-3, distilled from the dense model at 3e-3",
    "cnn-lr3e-3-16x4-90-kd": "16x4@90%, learning rate 3e-3, distilled from the dense model at 3e-3",
    "cnn-4x1-90-local": "4x1@90%, local scope (each layer at 90%) instead of global",
    "cnn-4x16-85-local": "4x16@85%, local scope (each layer at 85%) instead of global",
}


def experiments_table(runs, folder, kept=None):
    kept = kept or {}
    found = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        m = re.match(r"(.+)-s(\d+)\.json$", os.path.basename(path))
        if m:
            found.setdefault(m.group(1), []).append(json.load(open(path)))
    lines = ["| Model | Run | Epochs | Seeds | Sparsity | Test Accuracy % | Δ vs dense, same epochs and seeds (points) |",
             "|---|---|---|---|---|---|---|"]
    for name, what in EXPERIMENTS.items():
        rs = found.get(name)
        if not rs:
            if (name.split("-")[0].upper(), what) in kept:
                lines.append(kept[(name.split("-")[0].upper(), what)])
            continue
        model = name.split("-")[0]
        seeds = sorted(r["seed"] for r in rs)
        epochs = rs[0]["epochs"]
        dense_name = next((n for n in found if n.startswith(model + "-dense") and found[n][0]["epochs"] == epochs), None)
        rate = re.match(r"[a-z]+-(lr[0-9.]+e-[0-9]+)-", name)  # a learning-rate row: against dense at that rate
        if rate:
            dense_name = f"{model}-{rate.group(1)}-dense"
        dense = found[dense_name] if dense_name else runs.get((model, "dense"), [])
        dense = [r for r in dense if r["seed"] in seeds and r["epochs"] == epochs]
        acc = mean_std([r["test_accuracy"] for r in rs])
        delta = "" if not dense or "dense" in name else \
            f"{100 * (acc[0] - statistics.mean(r['test_accuracy'] for r in dense)):+.2f}"
        lines.append(f"| {model.upper()} | {what} | {epochs} | {','.join(map(str, seeds))} | "
                     f"{100 * statistics.mean(r['sparsity'] for r in rs):.2f}% | {fmt(*acc)} | {delta} |")
    return "\n".join(lines)


def replace_block(text, marker, body, doc):
    begin, end = f"<!-- {marker}:begin -->", f"<!-- {marker}:end -->"
    if begin not in text or end not in text:
        raise SystemExit(f"{doc} lacks the {begin} / {end} markers")
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + "\n" + body + "\n" + end + tail


def write_atomic(path, text):
    with tempfile.NamedTemporaryFile("w", dir=os.path.dirname(os.path.abspath(path)), delete=False) as f:
        f.write(text)
    os.replace(f.name, path)


def sweep_plot(runs, docs, work):
    points = []
    for name in ["4x1-50", "4x1-70", "4x1-80", "4x1-90", "4x1-95"]:
        rs = [r for r in runs.get(("mlp", name), []) if r.get("seed") == 0]
        if rs:
            points.append((100 * rs[0]["sparsity"], 100 * rs[0]["test_accuracy"]))
    dense = [r for r in runs.get(("mlp", "dense"), []) if r.get("seed") == 0]
    if not points or not dense:
        return False
    data = os.path.join(work, "sweep.dat")
    with open(data, "w") as f:
        f.writelines(f"{s:.3f} {a:.3f}\n" for s, a in sorted(points))
    gp = f"""set terminal pngcairo size 720,440 font 'sans,11'
set output '{docs}/accuracy_vs_sparsity_4x1.png'
set title 'Fashion-MNIST MLP, 4x1 blocks pruned during training (seed 0, {dense[0]["epochs"]} epochs)'
set xlabel 'sparsity of fc1 + fc2 (% zeros)'
set ylabel 'test accuracy (%)'
set grid
set key bottom left
set xrange [45:100]
set offsets 0, 0, graph 0.08, graph 0.08
plot '{data}' using 1:2 with linespoints lw 2 pt 7 title '4x1 sparse', \\
     {100 * dense[0]["test_accuracy"]:.3f} with lines dt 2 lw 2 title 'dense', \\
     {100 * dense[0]["test_accuracy"] - 0.5:.3f} with lines dt 3 lw 2 lc rgb '#c03030' title 'dense - 0.5 points (target)'
"""
    subprocess.run(["gnuplot"], input=gp, text=True, check=True)
    return True


def read_safetensor_u8(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        info = header[name]
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        return info["shape"], f.read(end - begin)


def heatmap(folder, docs, work, rows=64, cols=128):
    path = os.path.join(folder, "mlp-4x1-90-s0", "masks.safetensors")
    if not os.path.exists(path):
        return False
    shape, data = read_safetensor_u8(path, "fc2.weight")
    zeros = 100 * data.count(0) / len(data)
    data_path = os.path.join(work, "mask.dat")
    with open(data_path, "w") as f:
        for r in range(rows):
            f.write(" ".join(str(data[r * shape[1] + c]) for c in range(cols)) + "\n")
    gp = f"""set terminal pngcairo size 900,520 font 'sans,11'
set output '{docs}/mask_heatmap_4x1.png'
set title "MLP pruned to 4x1 at 90%: fc2 mask ({zeros:.1f}% zeros), top-left {rows} x {cols} of [{shape[0]}][{shape[1]}]; black: kept"
set xlabel 'input channel (IC)'
set ylabel 'output channel (OC)'
set yrange [{rows - 0.5}:-0.5]
set xrange [-0.5:{cols - 0.5}]
set palette defined (0 'white', 1 'black')
unset colorbox
set size ratio {rows / cols}
plot '{data_path}' matrix with image notitle
"""
    subprocess.run(["gnuplot"], input=gp, text=True, check=True)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--results", default="out/results")
    ap.add_argument("--experiments", default="out/experiments")
    ap.add_argument("--same-build", default="out/amx",
                    help="runs of dense, 4x1, 4x16, 16x1, 16x4 and 16x64 from one build, for the amx block")
    ap.add_argument("--doc", default="docs/RESULTS.md")
    ap.add_argument("--keep-missing", action="store_true",
                    help="keep the document's rows whose runs are not in --results / --experiments")
    a = ap.parse_args()
    runs = load_runs(a.results)
    text = open(a.doc).read()
    kept = doc_rows(text, "results", 3) if a.keep_missing else {}
    kept_experiments = doc_rows(text, "experiments", 2) if a.keep_missing else {}
    text = replace_block(text, "results", table(runs, kept), a.doc)
    text = replace_block(text, "experiments", experiments_table(runs, a.experiments, kept_experiments), a.doc)
    same = load_runs(a.same_build)
    if "<!-- amx:begin -->" in text and (same or not a.keep_missing):
        kept_same = doc_rows(text, "amx", 3) if a.keep_missing else {}
        text = replace_block(text, "amx", table(same, kept_same, [c for c in CONFIGS if c[0] in SAME_BUILD]), a.doc)
    write_atomic(a.doc, text)
    docs = os.path.dirname(os.path.abspath(a.doc))
    with tempfile.TemporaryDirectory() as work:
        print("plot:", "written" if sweep_plot(runs, docs, work) else "skipped (runs missing)")
        print("heat map:", "written" if heatmap(a.results, docs, work) else "skipped (seed 0 masks missing)")
    print(f"table: {sum(len(v) for v in runs.values())} runs in {a.doc}")


if __name__ == "__main__":
    main()
