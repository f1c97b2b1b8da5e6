#!/usr/bin/env bash
# all-MiniLM-L6-v2 on onnxruntime (fp32, int8) and DeepSparse 1.8 (fp32, int8), same weights as
# spruce: builds the ONNX graphs from the safetensors folders, checks them, times B x 128 tokens.
# Markdown table on stdout; progress, checks and DeepSparse's banner on stderr.
#
#   bash bench/minilm_peers/run.sh --sparse out/minilm/oneshot-4x1-90
#   bash bench/minilm_peers/run.sh --sparse DIR --batches "1 8" --seconds 0.2 --json /tmp/peers.json
#
# Flags: --sparse DIR (required: a `spruce distill --save` folder)
#   --dense DIR (third_party/all-MiniLM-L6-v2)  --batches "1 8 32"  --seconds N (5, per case)
#   --json FILE (out/minilm_peers/results.json)  -h | --help
#   Passed on to minilm_onnx.py: --threads N (2), --runs LIST, --calib N (256),
#   --keep-onnx DIR, --ds-diagnose, --ds-analysis (python minilm_onnx.py --help lists them).
# Environment: DS_VENV and PYTHON (for ../deepsparse/setup.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
sparse="" dense="$root/third_party/all-MiniLM-L6-v2" batches="1 8 32" seconds=5 json="$root/out/minilm_peers/results.json"
extra=()
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "run.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sparse) need "$@"; sparse="$2"; shift 2 ;;
    --dense) need "$@"; dense="$2"; shift 2 ;;
    --batches) need "$@"; batches="$2"; shift 2 ;;
    --seconds) need "$@"; seconds="$2"; shift 2 ;;
    --json) need "$@"; json="$2"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    --threads | --runs | --calib | --keep-onnx) need "$@"; extra+=("$1" "$2"); shift 2 ;;
    --ds-diagnose | --ds-analysis) extra+=("$1"); shift ;;
    *) echo "run.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
[[ -n "$sparse" ]] || { echo "run.sh: --sparse DIR is required (a spruce distill --save folder)" >&2; exit 2; }
for d in "$sparse" "$dense"; do
  [[ -f "$d/model.safetensors" ]] || { echo "run.sh: $d: no model.safetensors (not a model folder)" >&2; exit 2; }
done
[[ "$seconds" =~ ^[0-9]*\.?[0-9]+$ ]] || { echo "run.sh: --seconds: '$seconds' is not a number" >&2; exit 2; }

venv="${DS_VENV:-$here/../deepsparse/.venv}"
DS_VENV="$venv" bash "$here/../deepsparse/setup.sh" >&2

export NM_DISABLE_ANALYTICS=1 OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
exec "$venv/bin/python" "$here/minilm_onnx.py" --sparse "$sparse" --dense "$dense" --batches "$batches" \
  --seconds "$seconds" --json "$json" "${extra[@]}"
