#!/usr/bin/env python3
"""Prints the demo's validated-models table in the seed's form and writes the report (Markdown)."""
import argparse
import json
import os
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dense", required=True, help="JSON of the dense run (spruce train --json)")
    ap.add_argument("--sparse", required=True, help="JSON of the pruned run")
    ap.add_argument("--dense-command", default="")
    ap.add_argument("--sparse-command", default="")
    ap.add_argument("--report", required=True, help="Markdown report to write")
    a = ap.parse_args()
    dense, sparse = (json.load(open(p)) for p in (a.dense, a.sparse))

    rows = [
        "| Model | Sparsity Pattern | Sparsity Ratio | Dataset | Accuracy (Sparse Model) | Accuracy (Dense Model) | Epochs |",
        "|---|---|---|---|---|---|---|",
        f"| MLP 784-1024-1024-10 | {sparse['pattern']} | {100 * sparse['sparsity']:.2f}% | Fashion-MNIST | "
        f"{100 * sparse['test_accuracy']:.2f}% | {100 * dense['test_accuracy']:.2f}% | {sparse['epochs']} |",
    ]
    table = "\n".join(rows)
    gap = 100 * (dense["test_accuracy"] - sparse["test_accuracy"])
    print(table)
    where = f"{abs(gap):.2f} points {'below' if gap > 0 else 'above'} dense"
    print(f"\nThe sparse model is {where}; training took {dense['seconds']:.0f} s dense and "
          f"{sparse['seconds']:.0f} s pruned.")

    report = f"""# spruce demo report

Fashion-MNIST, MLP 784-1024-1024-10, pruned during training to 4x1 blocks (4 output channels x 1
input channel) at 90% zeros over fc1 and fc2 (the 10-way head stays dense), seed 0.

{table}

The sparse model is {where}. Training time: {dense['seconds']:.0f} s dense,
{sparse['seconds']:.0f} s pruned, one core each.

Commands:

    {a.dense_command}
    {a.sparse_command}

Per-epoch history of the pruned run (test accuracy, sparsity):

""" + "\n".join(f"- epoch {h['epoch']}: {100 * h['test_accuracy']:.2f}%, {100 * h['sparsity']:.2f}% zeros"
               for h in sparse["history"]) + "\n"
    folder = os.path.dirname(os.path.abspath(a.report))
    with tempfile.NamedTemporaryFile("w", dir=folder, delete=False) as f:
        f.write(report)
    os.replace(f.name, a.report)
    print(f"report: {a.report}")


if __name__ == "__main__":
    main()
