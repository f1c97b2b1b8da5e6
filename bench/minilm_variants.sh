#!/usr/bin/env bash
# The MiniLM encoder's variants, each in a process of its own, in interleaved rounds; prints the
# median seq/s per variant and batch and the ratios to INT8 dense. One process running variant
# after variant saw the later ones up to 1.3x slower, and this VM drifts between minutes, so
# ratios are taken from rounds that ran side by side.
#
#   bash bench/minilm_variants.sh --sparse out/minilm/4x1-90-quick
#   bash bench/minilm_variants.sh --sparse DIR --rounds 3 --variants int8-dense,int8-sparse \
#       --extra "--tokens-per-pass 0" --out out/minilm/variants
#
# Flags: --sparse DIR (required)  --rounds N (3)  --variants LIST (all four)  --batches "1 8 32"
#   --seconds N (2)  --extra "ARGS" (more bench-model arguments)  --spruce BIN (build/tools/spruce/spruce)
#   --out DIR (out/minilm/variants: one JSON and log per run, and summary.md)  -h | --help
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sparse="" rounds=3 variants="fp32-dense,int8-dense,fp32-sparse,int8-sparse" batches="1 8 32" seconds=2 extra=""
spruce="$root/build/tools/spruce/spruce" out="$root/out/minilm/variants"
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "minilm_variants.sh: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --sparse) need "$@"; sparse="$2"; shift 2 ;;
    --rounds) need "$@"; rounds="$2"; shift 2 ;;
    --variants) need "$@"; variants="$2"; shift 2 ;;
    --batches) need "$@"; batches="$2"; shift 2 ;;
    --seconds) need "$@"; seconds="$2"; shift 2 ;;
    --extra) need "$@"; extra="$2"; shift 2 ;;
    --spruce) need "$@"; spruce="$2"; shift 2 ;;
    --out) need "$@"; out="$2"; shift 2 ;;
    -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "minilm_variants.sh: unknown argument '$1' (--help lists them)" >&2; exit 2 ;;
  esac
done
[[ -n "$sparse" ]] || { echo "minilm_variants.sh: --sparse DIR is required (a spruce distill --save folder)" >&2; exit 2; }
[[ -f "$sparse/model.safetensors" ]] || { echo "minilm_variants.sh: $sparse: no model.safetensors (not a model folder)" >&2; exit 2; }
[[ "$rounds" =~ ^[1-9][0-9]*$ ]] || { echo "minilm_variants.sh: --rounds: '$rounds' is not a positive integer" >&2; exit 2; }
[[ -x "$spruce" ]] || { echo "minilm_variants.sh: $spruce is not built (make build)" >&2; exit 2; }
mkdir -p "$out"
IFS=, read -r -a list <<< "$variants"
for ((r = 1; r <= rounds; r++)); do
  for v in "${list[@]}"; do
    echo "minilm_variants.sh: round $r of $rounds, $v" >&2
    # shellcheck disable=SC2086  # --extra is split into arguments on purpose
    "$spruce" bench-model minilm --sparse-model "$sparse" --variants "$v" --batches $batches --seconds "$seconds" \
      $extra --json "$out/$v-r$r.json" > "$out/$v-r$r.log" 2>&1 ||
      { echo "minilm_variants.sh: $v failed, see $out/$v-r$r.log" >&2; exit 1; }
  done
done
python3 - "$out" "$rounds" "${list[@]}" <<'EOF' | tee "$out/summary.md"
import json, statistics, sys
out, rounds, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
seqs = {}  # (variant, batch) -> [seq/s per round]
host = ""
for v in variants:
    for r in range(1, rounds + 1):
        for rec in json.load(open(f"{out}/{v}-r{r}.json")):
            seqs.setdefault((v, rec["batch"]), []).append(rec["sequences_per_second"])
            host = rec["host"]
batches = sorted({b for _, b in seqs})
print(f"host {host}; {rounds} rounds, each variant in its own process; median seq/s (min-max),")
print("and the median over rounds of the ratio to INT8 dense in the same round\n")
print("| variant | " + " | ".join(f"batch {b}" for b in batches) + " |")
print("|---|" + "---|" * len(batches))
for v in variants:
    cells = []
    for b in batches:
        s = seqs.get((v, b), [])
        if not s:
            cells.append("-")
            continue
        cell = f"{statistics.median(s):.0f} ({min(s):.0f}-{max(s):.0f})"
        base = seqs.get(("int8-dense", b))
        if base and v != "int8-dense" and len(base) == len(s):  # the median of per-round ratios
            cell += f", {statistics.median(x / y for x, y in zip(s, base)):.2f}x INT8 dense"
        cells.append(cell)
    print(f"| {v} | " + " | ".join(cells) + " |")
EOF
