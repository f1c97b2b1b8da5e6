#!/usr/bin/env bash
# Runs the trainings behind docs/RESULTS.md: both models x {dense, 4x1@90%, 2x1@80%, 4x16@85%, 2:4,
# 1x1@90%, 16x1@90%, 16x4@90%, 16x64@90%} x 3 seeds, then the MLP 4x1 sparsity sweep for the plot. Each run writes
# $out/<model>-<config>-s<seed>.{json,log}; runs whose JSON exists are skipped, so an interrupted
# sweep resumes. Then `python3 scripts/results_report.py` rewrites the table and plots.
#   JOBS=2 MLP_EPOCHS=4 CNN_EPOCHS=3 SEEDS="0 1 2" scripts/results.sh [build/tools/spruce/spruce]
# ONLY="16x1-90 16x4-90" runs just those configs (names as in `configs` below) and no sweep.
# The table uses gradual magnitude pruning (--criterion magnitude): snip_momentum, the default,
# re-scores every step and makes each run about 1.5-2x slower on this shared 2-core machine.
set -euo pipefail
spruce=${1:-build/tools/spruce/spruce}
out=${RESULTS_DIR:-out/results}
jobs=${JOBS:-2}
seeds=${SEEDS:-"0 1 2"}
declare -A epochs=([mlp]=${MLP_EPOCHS:-4} [cnn]=${CNN_EPOCHS:-3})
criterion=${CRITERION:-magnitude}
configs=(
  "dense|"
  "4x1-90|--pattern 4x1 --sparsity 0.9 --criterion $criterion"
  "2x1-80|--pattern 2x1 --sparsity 0.8 --criterion $criterion"
  "4x16-85|--pattern 4x16 --sparsity 0.85 --criterion $criterion"
  "2in4|--pattern 2:4 --criterion $criterion"
  "1x1-90|--pattern 1x1 --sparsity 0.9 --criterion $criterion"
  "16x1-90|--pattern 16x1 --sparsity 0.9 --criterion $criterion"  # 16 output channels per block:
  "16x4-90|--pattern 16x4 --sparsity 0.9 --criterion $criterion"  # the AMX kernel's tile height
  "16x64-90|--pattern 16x64 --sparsity 0.9 --criterion $criterion"  # one whole AMX tile per block
)
only=${ONLY:-}
sweep=(50 70 80 95)  # 4x1 on the MLP, seed 0; 90% comes from the table
mkdir -p "$out"

job() {  # model name seed flags...
  local model=$1 name=$2 seed=$3
  shift 3
  local stem="$out/$model-$name-s$seed"
  [ -f "$stem.json" ] && return 0
  local save=()
  [ "$seed" = 0 ] && save=(--save "$stem" --overwrite)  # checkpoints of seed 0 only: they feed the heat map
  echo "$spruce train --dataset fashion-mnist --model $model $* --epochs ${epochs[$model]} --seed $seed" \
       "--threads 1 --no-progress --json $stem.json ${save[*]} > $stem.log 2>&1"
}

{
  for seed in $seeds; do
    for c in "${configs[@]}"; do
      [ -n "$only" ] && [[ " $only " != *" ${c%%|*} "* ]] && continue
      for model in mlp cnn; do job "$model" "${c%%|*}" "$seed" ${c#*|}; done
    done
  done
  [ -n "$only" ] && sweep=()
  for s in "${sweep[@]}"; do job mlp "4x1-$s" 0 --pattern 4x1 --sparsity "0.$s" --criterion "$criterion"; done
} > "$out/jobs.txt"

echo "results: $(wc -l < "$out/jobs.txt") runs to do, $jobs at a time; logs in $out"
xargs -P "$jobs" -I{} -d '\n' bash -c '{} || echo "failed: {}" >&2' < "$out/jobs.txt"
echo "results: done; now run python3 scripts/results_report.py"
