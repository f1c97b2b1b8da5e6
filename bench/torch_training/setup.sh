#!/usr/bin/env bash
# Makes the pinned Python environment for the training-speed comparison (default
# bench/torch_training/.venv, git-ignored): PyTorch and Intel Neural Compressor per requirements.txt.
# PyPI's Linux torch wheel pulls NVIDIA's CUDA wheels too (a few GB, once); the CPU run ignores them.
# Idempotent: a venv made from the same requirements and Python is left as it is.
#   PYTHON=python3.11 TT_VENV=/some/where bash bench/torch_training/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${TT_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
reqs="$here/requirements.txt"
ver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
stamp="$venv/.spruce-setup"
want="$(sha256sum "$reqs" | cut -d' ' -f1) python$ver"
check='import torch, neural_compressor.compression.pruner as p; assert torch.__version__.startswith("2.15.0")'
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$venv/bin/python" -c "$check" 2>/dev/null; then
  echo "setup.sh: $venv is up to date"
  exit 0
fi
if [[ -e "$venv" ]]; then
  [[ -f "$venv/pyvenv.cfg" ]] || { echo "setup.sh: $venv exists and is not a virtual environment" >&2; exit 1; }
  rm -rf -- "$venv"
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --no-input --disable-pip-version-check --only-binary=:all: -r "$reqs"
"$venv/bin/python" -c "$check; print('setup.sh: torch', torch.__version__)"
echo "$want" >"$stamp"
echo "setup.sh: made $venv"
