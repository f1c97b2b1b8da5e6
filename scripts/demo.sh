#!/usr/bin/env bash
# The main job until sparse training lands: prune a checkpoint written from a fixed seed, then
# inspect it.
set -euo pipefail
spruce=${1:-build/tools/spruce/spruce}
out=${DEMO_DIR:-out/demo}
mkdir -p "$out"
"$spruce" make-checkpoint --seed 42 -o "$out/mlp.safetensors"
"$spruce" prune "$out/mlp.safetensors" -o "$out/mlp-4x1-90.safetensors" --pattern 4x1 --sparsity 0.9
"$spruce" inspect "$out/mlp-4x1-90.safetensors" --pattern 4x1
