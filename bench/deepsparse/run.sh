#!/usr/bin/env bash
# spruce's INT8 sparse linear layer against DeepSparse 1.8 on the same weights, 1 thread each;
# prints a markdown table on stdout (progress and DeepSparse's own output go to stderr).
#
#   bash bench/deepsparse/run.sh                       # all 36 cases (3 patterns x 3 shapes x 4 m)
#   bash bench/deepsparse/run.sh --patterns 1x4 --shapes 768x768 --ms 16     # one case
#
# Flags (comma lists): --patterns 1x4,1x1,4x1  --shapes 768x768,768x3072,3072x768 (in x out)
#   --ms 1,16,128,384  --min-time S (1.0)  --min-reps N (101)  --warmup-time S (0.2)  --seed N (0)
#   --kernel NAME (force a spruce kernel)  --fallback never|auto|always (never)
#   --out DIR (out/deepsparse: the case files)  --diagnose (DeepSparse's log at level diagnose)
# Environment: BUILD_DIR (build; configured Release without LibTorch if it has no CMakeCache.txt),
#   SKIP_BUILD=1, DS_VENV and PYTHON (for setup.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
patterns=1x4,1x1,4x1 shapes=768x768,768x3072,3072x768 ms=1,16,128,384
min_time=1.0 min_reps=101 warmup=0.2 seed=0 kernel="" fallback=never out="$root/out/deepsparse" diagnose=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --patterns) patterns="$2"; shift 2 ;;
    --shapes) shapes="$2"; shift 2 ;;
    --ms) ms="$2"; shift 2 ;;
    --min-time) min_time="$2"; shift 2 ;;
    --min-reps) min_reps="$2"; shift 2 ;;
    --warmup-time) warmup="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --kernel) kernel="$2"; shift 2 ;;
    --fallback) fallback="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --diagnose) diagnose=--diagnose; shift ;;
    -h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done

venv="${DS_VENV:-$here/.venv}"
DS_VENV="$venv" bash "$here/setup.sh" >&2

build="${BUILD_DIR:-$root/build}"
if [[ -z "${SKIP_BUILD:-}" ]]; then
  if [[ ! -f "$build/CMakeCache.txt" ]]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DSPRUCE_WITH_TORCH=OFF >&2
  fi
  cmake --build "$build" -j"${JOBS:-2}" --target spruce_deepsparse_layer >&2
fi
bin="$build/bench/deepsparse/spruce_deepsparse_layer"

export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive NM_DISABLE_ANALYTICS=1
timing=(--min-time "$min_time" --min-reps "$min_reps" --warmup-time "$warmup")
spruce_args=("${timing[@]}" --threads 1 --fallback "$fallback")
[[ -n "$kernel" ]] && spruce_args+=(--kernel "$kernel")

echo "$(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //'), $(getconf _NPROCESSORS_ONLN) cores; load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
"$bin" --header
status=0
IFS=, read -ra P <<<"$patterns"
IFS=, read -ra S <<<"$shapes"
IFS=, read -ra M <<<"$ms"
# One case at a time, DeepSparse then spruce, so that both see about the same machine load.
for p in "${P[@]}"; do
  for s in "${S[@]}"; do
    for m in "${M[@]}"; do
      "$venv/bin/python" "$here/ds_layer.py" --out "$out" --patterns "$p" --shapes "$s" --ms "$m" --seed "$seed" \
        "${timing[@]}" $diagnose >&2
      "$bin" "${spruce_args[@]}" "$out/${p}_${s/x/-}_m${m}.safetensors" || status=1
    done
  done
done
echo
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
