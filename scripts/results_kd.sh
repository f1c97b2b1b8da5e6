#!/usr/bin/env bash
# Knowledge distillation (COMPARE=kd, the default) or the wanda criterion (COMPARE=wanda) on the
# RESULTS.md rows that miss the 0.5-point goal: for each seed, the dense model (saved, it is the
# teacher), each missed config with magnitude scores and without distillation, and the same with
# the change, all with the same build, so the comparison is like for like. Runs whose JSON exists
# are skipped. Then `python3 scripts/results_kd_report.py [--compare wanda]` prints the table.
#   JOBS=2 SEEDS="0 1 2" [COMPARE=wanda] [MODELS="mlp cnn"] scripts/results_kd.sh [build/tools/spruce/spruce]
set -euo pipefail
spruce=${1:-build/tools/spruce/spruce}
out=${RESULTS_DIR:-out/results-kd}
jobs=${JOBS:-2}
seeds=${SEEDS:-"0 1 2"}
compare=${COMPARE:-kd}
models=${MODELS:-"mlp cnn"}
case $compare in kd | wanda) ;; *) echo "results_kd: COMPARE is kd or wanda, not '$compare'" >&2; exit 2 ;; esac
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

chain() {  # model seed: the dense teacher first, then the missed configs without and with the change
  local model=$1 seed=$2 common change
  common="--model $model --epochs ${epochs[$model]} --seed $seed"
  change="--criterion magnitude --teacher $out/$model-dense-s$seed"
  [ "$compare" = wanda ] && change="--criterion wanda"
  # shellcheck disable=SC2086
  run "$out/$model-dense-s$seed" --model "$model" --epochs "${epochs[$model]}" --seed "$seed" \
    --save "$out/$model-dense-s$seed" --overwrite
  IFS=';' read -ra configs <<<"${missed[$model]}"
  for c in "${configs[@]}"; do
    # shellcheck disable=SC2086
    run "$out/$model-${c%%|*}-s$seed" $common ${c#*|} --criterion magnitude
    # shellcheck disable=SC2086
    run "$out/$model-${c%%|*}-$compare-s$seed" $common ${c#*|} $change
  done
}
export -f run chain
export spruce out compare

for seed in $seeds; do for model in $models; do echo "$model $seed"; done; done |
  xargs -P "$jobs" -L 1 bash -c "$(declare -p epochs missed); chain \$0 \$1"
echo "results_kd: done; now run python3 scripts/results_kd_report.py --compare $compare"
