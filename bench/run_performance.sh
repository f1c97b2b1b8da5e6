#!/usr/bin/env bash
# Reproduces every figure in docs/PERFORMANCE.md and docs/performance/. Usage: bench/run_performance.sh [BUILD_DIR]
# Writes tables and JSON records to out/perf/ (out/perf-avx2/, out/perf-zen5/ on those hosts; a
# suffix -active with WAIT_POLICY=active). Run it on a quiet machine; each case times
# sparse and oneDNN alternately in one process and reports medians, so ratios survive noise
# better than absolute times do.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
B="$BUILD/tools/spruce/spruce"
OUT=out/perf
# A host without AVX-512 (AVX2 only, e.g. AMD Zen 3) is a class of its own: its figures go apart,
# and so do AMD Zen 5's (family 26), whose full-width AVX-512 makes oneDNN 2.4x Zen 4's.
grep -qw avx512f /proc/cpuinfo || OUT=out/perf-avx2
grep -q '^cpu family[[:space:]]*: 26$' /proc/cpuinfo && grep -q AuthenticAMD /proc/cpuinfo && OUT=out/perf-zen5
# On an idle machine, OMP_WAIT_POLICY=active measures the code rather than the VM's wake-up of a
# sleeping worker (docs/performance/zen5.md and amx.md, "Waiting policy"); WAIT_POLICY=active bench/run_performance.sh.
# Sleeping (not spinning) OpenMP waits: on a machine shared with other jobs, spinning workers
# that lose their core make every parallel region, oneDNN's and ours, many times slower.
export OMP_WAIT_POLICY=${WAIT_POLICY:-passive}
[[ "$OMP_WAIT_POLICY" == passive ]] || OUT="$OUT-$OMP_WAIT_POLICY"
mkdir -p "$OUT"
run() {  # name, then spruce bench arguments
  local name=$1
  shift
  echo "== $name: spruce bench $*"
  "$B" bench "$@" --json "$OUT/$name.json" | tee "$OUT/$name.txt"
}
run int8-4x1-bert-t2 --suite bert-base --pattern 4x1 --sparsity 0.9 --dtype int8 --threads 2
run int8-4x1-bert-t1 --suite bert-base --pattern 4x1 --sparsity 0.9 --dtype int8 --threads 1
run int8-4x16-dlrm-t2 --suite dlrm-top --pattern 4x16 --sparsity 0.85 --dtype int8 --threads 2
run int8-2of4-bert-t2 --suite bert-base --pattern 2:4 --dtype int8 --threads 2
run f32-4x1-bert-t2 --suite bert-base --pattern 4x1 --sparsity 0.9 --dtype f32 --threads 2
run f32-4x1-bert-t1 --suite bert-base --pattern 4x1 --sparsity 0.9 --dtype f32 --threads 1
run f32-1x1-bert-t2 --suite bert-base --pattern 1x1 --sparsity 0.9 --dtype f32 --threads 2
run int8-4x1-small-t2 --suite small-batch --pattern 4x1 --sparsity 0.9 --dtype int8 --threads 2
run int8-4x1-bertlarge-t2 --suite bert-large --pattern 4x1 --sparsity 0.9 --dtype int8 --threads 2
run int8-4x16-dlrmb-t2 --suite dlrm-bottom --pattern 4x16 --sparsity 0.85 --dtype int8 --threads 2
run sweep-int8 --shape 384x768x3072 --pattern 4x1,4x16,1x4,1x1,16x1,2:4 --sparsity 0.5,0.6,0.7,0.8,0.85,0.9,0.95 --dtype int8 --threads 2
run sweep-f32 --shape 384x768x3072 --pattern 4x1,4x16,1x4,1x1,16x1,2:4 --sparsity 0.5,0.6,0.7,0.8,0.85,0.9,0.95 --dtype f32 --threads 2
# An AMX host (Intel Xeon with AMX-INT8) measures both classes of host: the AMX-friendly patterns
# at its best (spruce amx, oneDNN avx512_core_amx), then spruce and oneDNN both capped to AVX-512
# VNNI. Into out/perf/amx-*, with spinning OpenMP waits (GOMP's default): on that idle VM a
# sleeping worker took ~80 us to wake, longer than many of these layers take (docs/performance/amx.md).
if grep -qw amx_int8 /proc/cpuinfo; then
  amx() { OMP_WAIT_POLICY=active run "$@"; }
  amx amx-int8-bert-t2 --suite bert-base --pattern 4x1,16x1,16x4,16x64 --sparsity 0.9 --dtype int8 --threads 2
  amx amx-int8-bert-t1 --suite bert-base --pattern 4x1,16x64 --sparsity 0.9 --dtype int8 --threads 1
  amx amx-int8-dlrm-t2 --suite dlrm-top --pattern 4x16,16x4,16x64 --sparsity 0.85 --dtype int8 --threads 2
  amx amx-int8-small-t2 --suite small-batch --pattern 4x1,16x4 --sparsity 0.9 --dtype int8 --threads 2
  amx amx-int8-2of4-bert-t2 --suite bert-base --pattern 2:4 --dtype int8 --threads 2
  amx amx-f32-4x1-bert-t2 --suite bert-base --pattern 4x1 --sparsity 0.9 --dtype f32 --threads 2
  amx amx-sweep-int8 --shape 384x768x3072 --pattern 4x1,16x1,16x4,16x64,1x4,1x1 --sparsity 0.5,0.7,0.8,0.9,0.95 --dtype int8 --threads 2
  for c in "int8-4x1-bert-t2 --suite bert-base --pattern 4x1 --sparsity 0.9" \
           "int8-4x16-dlrm-t2 --suite dlrm-top --pattern 4x16 --sparsity 0.85" \
           "int8-4x1-small-t2 --suite small-batch --pattern 4x1 --sparsity 0.9" \
           "int8-2of4-bert-t2 --suite bert-base --pattern 2:4"; do
    # shellcheck disable=SC2086
    SPRUCE_MAX_ISA=avx512_vnni amx vnnicap-$c --dtype int8 --threads 2
  done
  python3 bench/plot_sweep.py "$OUT/amx-sweep-int8.json" --metric raw --ymax 4 --out docs/speedup_vs_sparsity_amx.png \
    --title "INT8 384x768x3072, 2 threads, AMX host: sparse kernel / oneDNN AMX dense"
fi
"$BUILD/bench/spruce_microbench" --benchmark_repetitions=3 --benchmark_report_aggregates_only=true | tee "$OUT/microbench.txt"
