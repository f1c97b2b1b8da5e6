#!/usr/bin/env bash
# Makes the pinned Python environment for the DeepSparse comparison (default bench/deepsparse/.venv,
# git-ignored): DeepSparse 1.8.0 and the exact versions in requirements.lock, wheels only.
# Idempotent: a venv already made from the same lock file and Python is left as it is.
#   PYTHON=python3.11 DS_VENV=/some/where bash bench/deepsparse/setup.sh
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${DS_VENV:-$here/.venv}"
python="${PYTHON:-python3}"
lock="$here/requirements.lock"

# DeepSparse 1.8.0 ships wheels for CPython 3.8 to 3.11 on x86-64 Linux only (1.9.0 is an
# end-of-life stub that does not install); requirements.lock was resolved on 3.11 (pandas 3 and
# numpy 1.26 need >= 3.11 and >= 3.9), so 3.11 it is.
ver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [[ "$ver" != 3.11 ]]; then
  echo "setup.sh: requirements.lock is for CPython 3.11 (DeepSparse 1.8.0: 3.8-3.11); $python is $ver (set PYTHON=python3.11)" >&2
  exit 2
fi
[[ "$(uname -m)" == x86_64 ]] || { echo "setup.sh: DeepSparse 1.8.0 has wheels for x86-64 only" >&2; exit 2; }

stamp="$venv/.spruce-setup"
want="$(sha256sum "$lock" | cut -d' ' -f1) python$ver"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] &&
  NM_DISABLE_ANALYTICS=1 "$venv/bin/python" -c 'import deepsparse, onnx, safetensors, numpy' 2>/dev/null; then
  echo "setup.sh: $venv is up to date"
  exit 0
fi
if [[ -e "$venv" ]]; then
  # Only a folder that is a virtual environment is replaced.
  [[ -f "$venv/pyvenv.cfg" ]] || { echo "setup.sh: $venv exists and is not a virtual environment" >&2; exit 1; }
  rm -rf -- "$venv"
fi
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --no-input --disable-pip-version-check --only-binary=:all: -r "$lock"
NM_DISABLE_ANALYTICS=1 "$venv/bin/python" - <<'PY'
import deepsparse, numpy, onnx, safetensors
assert deepsparse.__version__ == "1.8.0" and numpy.__version__.startswith("1."), (deepsparse.__version__, numpy.__version__)
print(f"setup.sh: deepsparse {deepsparse.__version__}, numpy {numpy.__version__}, onnx {onnx.__version__}, safetensors {safetensors.__version__}")
PY
echo "$want" >"$stamp"
echo "setup.sh: made $venv"
