#!/usr/bin/env bash
# Knowledge distillation on the RESULTS.md rows that miss the 0.5-point goal: for each seed, the
# dense model (saved, it is the teacher), each missed config without and with --teacher, all with
# the same build, so the with/without comparison is like for like. Runs whose JSON exists are
# skipped. Then `python3 scripts/results_kd_report.py` prints the table for docs/RESULTS.md.
#   JOBS=2 SEEDS="0 1 2" scripts/results_kd.sh [build/tools/spruce/spruce]
set -euo pipefail
spruce=${1:-build/tools/spruce/spruce}
out=${RESULTS_DIR:-out/results-kd}
jobs=${JOBS:-2}
seeds=${SEEDS:-"0 1 2"}
declare -A epochs=([mlp]=4 [cnn]=3)
declare -A missed=(
  [mlp]="4x1-90|--pattern 4x1 --sparsity 0.9;4x16-85|--pattern 4x16 --sparsity 0.85"
  [cnn]="4x1-90|--pattern 4x1 --sparsity 0.9;4x16-85|--pattern 4x16 --sparsity 0.85;2in4|--pattern 2:4"
)
mkdir -p "$out"

run() {  # stem flags...: one training, skipped when its JSON exists
  local stem=$1
  shift
  [ -f "$stem.json" ] && return 0
  "$spruce" train --dataset fashion-mnist "$@" --threads 1 --no-progress --json "$stem.json.tmp" >"$stem.log" 2>&1
  mv "$stem.json.tmp" "$stem.json"
}

chain() {  # model seed: the dense teacher first, then the missed configs without and with it
  local model=$1 seed=$2 common
  common="--model $model --epochs ${epochs[$model]} --seed $seed --criterion magnitude"
  # shellcheck disable=SC2086
  run "$out/$model-dense-s$seed" --model "$model" --epochs "${epochs[$model]}" --seed "$seed" \
    --save "$out/$model-dense-s$seed"
  IFS=';' read -ra configs <<<"${missed[$model]}"
  for c in "${configs[@]}"; do
    # shellcheck disable=SC2086
    run "$out/$model-${c%%|*}-s$seed" $common ${c#*|}
    # shellcheck disable=SC2086
    run "$out/$model-${c%%|*}-kd-s$seed" $common ${c#*|} --teacher "$out/$model-dense-s$seed"
  done
}
export -f run chain
export spruce out

for seed in $seeds; do for model in mlp cnn; do echo "$model $seed"; done; done |
  xargs -P "$jobs" -L 1 bash -c "$(declare -p epochs missed); chain \$0 \$1"
echo "results_kd: done; now run python3 scripts/results_kd_report.py"
