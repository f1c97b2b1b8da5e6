#!/usr/bin/env bash
# Training speed, side by side on this host: `spruce train` against PyTorch 2.x (+ Intel Neural
# Compressor's pruner) on the same MLP, data, batch, optimizer and schedule, one after the other.
# Prints a Markdown table of median seconds per epoch (training plus the test-set evaluation).
#   bash bench/torch_training/run.sh [EPOCHS] [THREADS]      (defaults 3 and 2)
# TT_VENV names an existing environment made by setup.sh; SPRUCE the spruce binary.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$here/../.."
epochs="${1:-3}" threads="${2:-2}"
spruce="${SPRUCE:-$root/build/tools/spruce/spruce}"
venv="${TT_VENV:-$here/.venv}"
out="$root/out/torch_training"
[[ -x "$spruce" ]] || { echo "run.sh: $spruce is missing; build first (make build)" >&2; exit 1; }
TT_VENV="$venv" bash "$here/setup.sh"
mkdir -p "$out"

variants=("dense|" "4x1-90-magnitude|--pattern 4x1 --sparsity 0.9 --criterion magnitude"
  "4x1-90-snip_momentum|--pattern 4x1 --sparsity 0.9 --criterion snip_momentum")
for v in "${variants[@]}"; do
  name="${v%%|*}" flags="${v#*|}"
  echo "run.sh: $name: spruce" >&2
  # shellcheck disable=SC2086
  "$spruce" train --epochs "$epochs" --threads "$threads" --no-progress --json "$out/spruce-$name.json" $flags \
    >/dev/null
  echo "run.sh: $name: torch" >&2
  # shellcheck disable=SC2086
  "$venv/bin/python" "$here/train_mlp.py" --epochs "$epochs" --threads "$threads" $flags 2>/dev/null |
    grep '^{' >"$out/torch-$name.jsonl"
done

python3 - "$out" "$threads" <<'PY'
import json, statistics, sys, pathlib
out, threads = pathlib.Path(sys.argv[1]), sys.argv[2]
host = "AMX" if "amx_int8" in open("/proc/cpuinfo").read() else "AVX-512 (no AMX)"
print(f"| variant ({host} host, {threads} threads) | spruce s/epoch | PyTorch s/epoch | spruce / PyTorch | spruce acc | PyTorch acc |")
print("|---|---|---|---|---|---|")
for name in ("dense", "4x1-90-magnitude", "4x1-90-snip_momentum"):
    s = json.loads((out / f"spruce-{name}.json").read_text())
    t = [json.loads(l) for l in (out / f"torch-{name}.jsonl").read_text().splitlines()]
    ss = statistics.median(e["seconds"] for e in s["history"])
    ts = statistics.median(e["seconds"] for e in t if "epoch" in e)
    print(f"| {name} | {ss:.2f} | {ts:.2f} | {ss / ts:.2f}x | {100 * s['test_accuracy']:.2f}% | {100 * t[-1]['test_accuracy']:.2f}% |")
PY
