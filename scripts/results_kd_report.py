"""Table of scripts/results_kd.sh's runs for docs/RESULTS.md: each missed row with magnitude scores
and without distillation, and with the change (--compare kd: distillation from the same seed's
dense model; --compare wanda: the wanda criterion), mean ± std over seeds, Δ against dense.
    python3 scripts/results_kd_report.py [--compare kd|wanda] [out/results-kd]
"""
import argparse
import json
import pathlib
import statistics

ap = argparse.ArgumentParser(description=__doc__)
ap.add_argument("--compare", choices=["kd", "wanda"], default="kd")
ap.add_argument("out", nargs="?", default="out/results-kd")
args = ap.parse_args()
out = pathlib.Path(args.out)
without, with_ = {"kd": ("Without distillation", "With distillation"),
                  "wanda": ("Magnitude", "Wanda")}[args.compare]
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


print(f"| Model | Config | Seeds | Dense % | {without} % | Δ | {with_} % | Δ | Gain (points) |")
print("|---|---|---|---|---|---|---|---|---|")
for model, cs in configs.items():
    dense_text, dense = summary(accuracies(model, "dense"))
    for c in cs:
        plain_values, kd_values = accuracies(model, c), accuracies(model, f"{c}-{args.compare}")
        if not plain_values and not kd_values:
            continue  # a model left out of the run (MODELS=mlp)
        plain_text, plain = summary(plain_values)
        kd_text, kd = summary(kd_values)
        delta = lambda v: f"{v - dense:+.2f}" if v is not None and dense is not None else "-"
        gain = f"{kd - plain:+.2f}" if kd is not None and plain is not None else "-"
        label = c.replace("2in4", "2:4").replace("-", " @ ") + ("%" if "-" in c else "")
        print(f"| {names[model]} | {label} | {len(kd_values)} | {dense_text} | {plain_text} | {delta(plain)} | "
              f"{kd_text} | {delta(kd)} | {gain} |")
