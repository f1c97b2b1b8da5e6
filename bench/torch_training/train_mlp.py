"""The Fashion-MNIST MLP of `spruce train`, trained by PyTorch 2.x (and pruned by Intel Neural
Compressor's pruner): the same model, data, normalization, batch, Adam with per-step cosine
learning rate, and schedule (prune from 10% to 60% of the steps in 20 updates, global scope).

Prints one JSON line per epoch and a final one, as `spruce train --json` reports it.
    python train_mlp.py --epochs 3 --threads 2 [--pattern 4x1 --sparsity 0.9 --criterion magnitude]
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
from torch import nn

MEAN, STD = 0.2860, 0.3530  # spruce's Fashion-MNIST normalization


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir, prefix):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(images.copy()).float().div(255.0) - MEAN) / STD
    return x.view(-1, 1, 28, 28), torch.from_numpy(labels.astype(np.int64))


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.head = nn.Linear(784, 1024), nn.Linear(1024, 1024), nn.Linear(1024, 10)

    def forward(self, x):
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.head(torch.relu(self.fc2(x)))


def accuracy(model, x, y):
    was = model.training
    model.eval()
    with torch.no_grad():
        correct = sum(int((model(x[i : i + 1000]).argmax(1) == y[i : i + 1000]).sum()) for i in range(0, len(y), 1000))
    model.train(was)
    return correct / len(y)


def sparsity(model):
    w = [model.fc1.weight, model.fc2.weight]
    return sum(int((t == 0).sum()) for t in w) / sum(t.numel() for t in w)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pattern", default="", help="INC pattern, e.g. 4x1; empty: dense")
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--criterion", default="magnitude", help="magnitude or snip_momentum")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    a = p.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    train_x, train_y = load(a.data, "train")
    test_x, test_y = load(a.data, "t10k")
    model = Mlp()
    optimizer = torch.optim.Adam(model.parameters(), lr=a.lr)
    per_epoch = math.ceil(len(train_y) / a.batch_size)
    total = a.epochs * per_epoch
    if a.pattern:
        from neural_compressor import WeightPruningConfig
        from neural_compressor.compression.pruner import prepare_pruning

        start, end = total // 10, max(total // 10, total * 6 // 10)
        config = WeightPruningConfig(
            [{"op_names": ["fc1", "fc2"], "pattern": a.pattern, "target_sparsity": a.sparsity}],
            pruning_type=a.criterion, pruning_scope="global", start_step=start, end_step=end,
            pruning_frequency=max(1, (end - start) // 20), sparsity_decay_type="exp",
        )
        prepare_pruning(model, config, optimizer)

    step = 0
    for epoch in range(1, a.epochs + 1):
        began = time.perf_counter()
        order = torch.randperm(len(train_y))
        loss_sum, correct = 0.0, 0
        for i in range(0, len(train_y), a.batch_size):
            for g in optimizer.param_groups:
                g["lr"] = a.lr * 0.5 * (1 + math.cos(math.pi * step / total))
            index = order[i : i + a.batch_size]
            x, y = train_x[index], train_y[index]
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            loss_sum += float(loss) * len(y)
            correct += int((logits.argmax(1) == y).sum())
            step += 1
        record = {"epoch": epoch, "loss": loss_sum / len(train_y), "train_accuracy": correct / len(train_y),
                  "test_accuracy": accuracy(model, test_x, test_y), "sparsity": sparsity(model),
                  "seconds": time.perf_counter() - began}
        print(json.dumps(record), flush=True)
    print(json.dumps({"runtime": f"torch {torch.__version__}", "threads": a.threads, "pattern": a.pattern or "dense",
                      "test_accuracy": accuracy(model, test_x, test_y), "sparsity": sparsity(model)}))


if __name__ == "__main__":
    sys.exit(main())
