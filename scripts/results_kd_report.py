"""Table of scripts/results_kd.sh's runs for docs/RESULTS.md: each missed row without and with
distillation from the same seed's dense model, mean ± std over seeds, Δ against dense.
    python3 scripts/results_kd_report.py [out/results-kd]
"""
import json
import pathlib
import statistics
import sys

out = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "out/results-kd")
names = {"mlp": "MLP 784-1024-1024-10", "cnn": "CNN"}
configs = {"mlp": ["4x1-90", "4x16-85"], "cnn": ["4x1-90", "4x16-85", "2in4"]}


def accuracies(model, config):
    runs = sorted(out.glob(f"{model}-{config}-s*.json"))
    return [100 * json.loads(p.read_text())["test_accuracy"] for p in runs]


def summary(values):
    if not values:
        return "-", None
    mean = statistics.mean(values)
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.2f} ± {std:.2f}", mean


print("| Model | Config | Seeds | Dense % | Without distillation % | Δ | With distillation % | Δ | Gain (points) |")
print("|---|---|---|---|---|---|---|---|---|")
for model, cs in configs.items():
    dense_text, dense = summary(accuracies(model, "dense"))
    for c in cs:
        plain_values, kd_values = accuracies(model, c), accuracies(model, f"{c}-kd")
        plain_text, plain = summary(plain_values)
        kd_text, kd = summary(kd_values)
        delta = lambda v: f"{v - dense:+.2f}" if v is not None and dense is not None else "-"
        gain = f"{kd - plain:+.2f}" if kd is not None and plain is not None else "-"
        label = c.replace("2in4", "2:4").replace("-", " @ ") + ("%" if "-" in c else "")
        print(f"| {names[model]} | {label} | {len(kd_values)} | {dense_text} | {plain_text} | {delta(plain)} | "
              f"{kd_text} | {delta(kd)} | {gain} |")
