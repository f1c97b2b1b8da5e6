#!/usr/bin/env bash
# Runs the distillations behind docs/results-minilm.md: all-MiniLM-L6-v2's encoder pruned to 2:4 and
# 4x1 at 70/80/90% (and the AMX-friendly 16x1 at 80%, and unstructured 1x1 at 50% and 80%), one run at a
# time (each uses both cores).
# Each writes out/minilm/<config>.{json,log} and the pruned model folder out/minilm/<config>/;
# runs whose JSON exists are skipped, so an interrupted sweep resumes. Then
# `python3 scripts/minilm_report.py` rewrites the table and the plot.
#   STEPS=500 LR=3e-4 ONLY="2in4 4x1-80" scripts/minilm_results.sh [build/tools/spruce/spruce]
# DECAY=1 decays the learning rate linearly to 0 after the last mask update; SIMILARITY=W adds the
# in-batch pairwise-similarity loss at weight W; NEIGHBOUR=W adds the loss on similarities to the
# teacher's embeddings of every training text (temperature NEIGHBOUR_T, default 0.05);
# CRITERION=wanda|sparsegpt scores by |W| x input RMS, or prunes with reconstruction, instead of
# magnitude (the default here); CROP=P replaces a share P of the training texts by random runs of
# their words; HIDDEN=W weighs the hidden-state loss (default 1 here); ATTENTION=W adds
# self-attention transfer at weight W; WORDNET=S also trains on WordNet's definitions and examples,
# a share S of the steps; DROPOUT=P trains the student with dropout P; EMA=D returns (and checks)
# the average of the weights from the last mask update on, decaying by D per step; STE=D lets pruned weights
# learn through the masked forward until 70% of the steps (straight-through, mask updates may bring
# them back), shrinking them by a fraction D per step; SPREAD=W adds the embedding error weighted by
# how the training texts vary; EMBEDDINGS=1 trains the embeddings too; GRADUAL_NM=1 grows an N:M
# pattern on the schedule (--gradual-nm) instead of setting it whole at the start; PERMUTE=1 first
# reorders the channels an N:M mask groups (--permute-channels); FORTUNES=DIR reads the fortunes from
# DIR (e.g. a copy without some collections, to repeat an older run's texts); THREADS (default 2);
# EVALUATIONS (default 8) held-out checks. RESUMABLE=1 keeps each run in out/.../<config>.run/ and
# resumes it from there when run again (STOP_AFTER=N ends a sitting after step N).
set -euo pipefail
spruce=${1:-build/tools/spruce/spruce}
out=${MINILM_DIR:-out/minilm}
steps=${STEPS:-500}
lr=${LR:-3e-4}
threads=${THREADS:-2}
# Every setting is passed, so that `spruce distill`'s own defaults (the best known recipe) can move
# without changing what these commands reproduce.
extra=(--criterion "${CRITERION:-magnitude}" --hidden-weight "${HIDDEN:-1}" --attention-weight "${ATTENTION:-0}")
if [ "${DECAY:-0}" = 1 ]; then extra+=(--decay-lr); else extra+=(--no-decay-lr); fi
[ -n "${SIMILARITY:-}" ] && extra+=(--similarity-weight "$SIMILARITY")
[ -n "${CROP:-}" ] && extra+=(--crop "$CROP")
[ -n "${WORDNET:-}" ] && extra+=(--wordnet /usr/share/wordnet --wordnet-share "$WORDNET")
[ -n "${DROPOUT:-}" ] && extra+=(--dropout "$DROPOUT")
[ -n "${EMA:-}" ] && extra+=(--ema "$EMA")
[ -n "${STE:-}" ] && extra+=(--straight-through --straight-through-decay "$STE")
[ -n "${SPREAD:-}" ] && extra+=(--spread-weight "$SPREAD")
[ -n "${EMBEDDINGS:-}" ] && extra+=(--train-embeddings)
[ -n "${GRADUAL_NM:-}" ] && extra+=(--gradual-nm)
[ -n "${PERMUTE:-}" ] && extra+=(--permute-channels)
[ -n "${FORTUNES:-}" ] && extra+=(--fortunes "$FORTUNES")
[ -n "${NEIGHBOUR:-}" ] && extra+=(--neighbour-weight "$NEIGHBOUR" --neighbour-temperature "${NEIGHBOUR_T:-0.05}")
configs=(
  "2in4|--pattern 2:4"
  "4x1-70|--pattern 4x1 --sparsity 0.7"
  "4x1-80|--pattern 4x1 --sparsity 0.8"
  "4x1-90|--pattern 4x1 --sparsity 0.9"
  "16x1-80|--pattern 16x1 --sparsity 0.8"  # 16 output channels per block: the AMX kernel's tile height
  "1x1-50|--pattern 1x1 --sparsity 0.5"  # unstructured at 2:4's sparsity: the bound for any 2:4 mask choice
  "1x1-80|--pattern 1x1 --sparsity 0.8"  # unstructured at 80%: the bound for 4x1 @ 80%
)
only=${ONLY:-}
mkdir -p "$out"
for c in "${configs[@]}"; do
  name=${c%%|*}
  [ -n "$only" ] && [[ " $only " != *" $name "* ]] && continue
  [ -f "$out/$name.json" ] && continue
  echo "minilm: $name ($steps steps, lr $lr${extra[*]:+, ${extra[*]}})"
  resume=()
  [ "${RESUMABLE:-0}" = 1 ] || : > "$out/$name.log"
  if [ "${RESUMABLE:-0}" = 1 ]; then
    resume=(--checkpoint "$out/$name.run")
    [ -f "$out/$name.run/checkpoint.pt" ] && resume+=(--resume)
    [ -n "${STOP_AFTER:-}" ] && resume+=(--stop-after "$STOP_AFTER")
  fi
  # shellcheck disable=SC2086
  "$spruce" distill ${c#*|} --steps "$steps" --lr "$lr" "${extra[@]}" --threads "$threads" --evaluations "${EVALUATIONS:-8}" \
    --no-progress "${resume[@]}" --save "$out/$name" --json "$out/$name.json" >> "$out/$name.log" 2>&1 ||
    echo "failed: $name (see $out/$name.log)" >&2
done
echo "minilm: done; now run python3 scripts/minilm_report.py"
