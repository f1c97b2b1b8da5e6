#!/usr/bin/env bash
# The main job: train the Fashion-MNIST MLP dense and pruned to 4x1 blocks at 90% during training,
# print the seed's validated-models table for it, check the export's pattern, and write the report.
# Then it converts both to FP32/INT8 inference, saves the INT8 sparse model as one file, and prints
# accuracy and throughput side by side, the loaded file included. Last, the seed's DLRM table
# through MLPerf LoadGen.
# The same setup as the MLP rows of docs/RESULTS.md (4 epochs, gradual magnitude pruning), seed 0:
# measured here: 91 s for training, conversion and timing, after a 5.5 min build from scratch
# (-j2, cores shared with other work). DEMO_EPOCHS changes the epochs.
set -euo pipefail
spruce=${1:-build/tools/spruce/spruce}
out=${DEMO_DIR:-out/demo}
epochs=${DEMO_EPOCHS:-4}
mkdir -p "$out"

common=(--dataset fashion-mnist --model mlp --epochs "$epochs" --seed 0 --threads 1 --no-progress)
dense_cmd=("$spruce" train "${common[@]}" --save "$out/mlp-dense" --overwrite --json "$out/mlp-dense.json")
sparse_cmd=("$spruce" train "${common[@]}" --pattern 4x1 --sparsity 0.9 --criterion magnitude --save "$out/mlp-4x1-90" --overwrite --json "$out/mlp-4x1-90.json")

echo "demo: training the MLP dense and 4x1@90% side by side ($epochs epochs each, one core each)"
"${dense_cmd[@]}" > "$out/mlp-dense.log" 2>&1 &
dense_pid=$!
"${sparse_cmd[@]}" 2>&1 | tee "$out/mlp-4x1-90.log"
wait "$dense_pid" || { cat "$out/mlp-dense.log"; exit 1; }
tail -n +2 "$out/mlp-dense.log" | grep '^epoch' | sed 's/^/dense: /'

echo
"$spruce" inspect "$out/mlp-4x1-90/model.safetensors" --pattern 4x1
echo
python3 scripts/demo_table.py --dense "$out/mlp-dense.json" --sparse "$out/mlp-4x1-90.json" \
  --dense-command "${dense_cmd[*]}" --sparse-command "${sparse_cmd[*]}" --report "$out/REPORT.md"

# The speed columns: the trained models converted for inference, measured in one process.
echo
echo "demo: saving the pruned model converted to INT8 sparse as one file"
"$spruce" convert --model mlp --checkpoint "$out/mlp-4x1-90" --variant int8-sparse --out "$out/mlp-4x1-90-int8.safetensors"
echo
echo "demo: converting both models (INT8: calibrated on 2048 training images), loading the file, timing all"
"$spruce" eval --model mlp --dense "$out/mlp-dense" --sparse "$out/mlp-4x1-90" --threads 2 \
  --converted "$out/mlp-4x1-90-int8.safetensors" --json "$out/eval.json" 2> "$out/eval.log" | tee "$out/eval.txt"
{ echo; echo "## Inference: FP32 and INT8, dense and sparse (2 threads, batch 1024)"; echo;
  echo '```'; cat "$out/eval.txt"; echo '```'; echo;
  echo "Commands: spruce convert --model mlp --checkpoint $out/mlp-4x1-90 --variant int8-sparse --out $out/mlp-4x1-90-int8.safetensors";
  echo "spruce eval --model mlp --dense $out/mlp-dense --sparse $out/mlp-4x1-90 --threads 2 --converted $out/mlp-4x1-90-int8.safetensors"; } >> "$out/REPORT.md"
# The seed's performance table: DLRM (MLPerf shapes, synthetic clicks) dense and pruned on equal
# budgets, measured Offline and Server through MLPerf LoadGen. Small data and runs shortened to
# 1 s (LoadGen's own minimum is 600 s), so about 70 s; the table says so.
echo
echo "demo: DLRM, FP32 dense / INT8 dense / INT8 sparse 4x16 @ 85%, Offline and Server through MLPerf LoadGen"
dlrm_cmd=("$spruce" bench-model dlrm --train-samples 16384 --test-samples 8192 --batches 1024 4096 --min-duration 1
          --server-probes 5 --work-dir "$out/dlrm" --json "$out/dlrm.json")
OMP_WAIT_POLICY=passive "${dlrm_cmd[@]}" 2> "$out/dlrm.log" | tee "$out/dlrm.txt"  # LoadGen needs its threads
{ echo; echo "## DLRM through MLPerf LoadGen (synthetic clicks, shortened runs)"; echo;
  echo '```'; cat "$out/dlrm.txt"; echo '```'; echo;
  echo "Command: OMP_WAIT_POLICY=passive ${dlrm_cmd[*]} (LoadGen's logs in $out/dlrm/loadgen/)"; } >> "$out/REPORT.md"
# The transformer: all-MiniLM-L6-v2 in C++ (WordPiece, BERT encoder, mean pooling), a few
# sentences embedded and compared. Pruning it (`spruce distill`) is docs/results-minilm.md's job.
echo
echo "demo: sentence embeddings with all-MiniLM-L6-v2, cosine similarity of each pair"
printf '%s\n' "A man is playing a guitar." "Someone strums an acoustic guitar on stage." \
  "The stock market fell sharply on Monday." "Shares dropped at the start of the week." \
  "A cat sleeps on the windowsill." > "$out/sentences.txt"
embed_cmd=("$spruce" embed --input "$out/sentences.txt" --output "$out/minilm.jsonl")
"${embed_cmd[@]}" 2> "$out/embed.log"
python3 scripts/demo_similarity.py "$out/minilm.jsonl" | tee "$out/similarity.md"
{ echo; echo "## all-MiniLM-L6-v2: cosine similarity of sentence embeddings"; echo;
  cat "$out/similarity.md"; echo; echo "Command: ${embed_cmd[*]}"; } >> "$out/REPORT.md"
echo "demo: report in $out/REPORT.md"
