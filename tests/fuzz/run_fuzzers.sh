#!/usr/bin/env bash
# Runs each libFuzzer target (built by `make fuzz` in BUILD) for FUZZ_SECONDS on a scratch copy of
# its committed seed corpus, and fails if any target finds a crash, a UB report, a leak, a timeout
# (an input slower than FUZZ_TIMEOUT seconds) or an out-of-memory (over FUZZ_RSS_MB). The
# committed corpus, crash-* regression inputs included, is replayed first, so an old bug that
# comes back fails at once. Inputs that failed are left in BUILD/fuzz-artifacts/<target>/; add one
# to tests/fuzz/corpus/<target>/ as crash-<what> once it is fixed.
#
#   usage: run_fuzzers.sh BUILD [TARGET...]      (default: every target BUILD has and a corpus is for)
set -euo pipefail
build=$(realpath "$1")
shift
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
timeout=${FUZZ_TIMEOUT:-10}
rss=${FUZZ_RSS_MB:-2048}
jobs=${FUZZ_JOBS:-1}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for t in $(ls corpus); do [ -x "$build/tests/fuzz/$t" ] && targets+=("$t"); done
  [ ${#targets[@]} -gt 0 ] || { echo "fuzz: no fuzz target is built in $build"; exit 1; }
fi

# abort_on_error: a report ends the process with a signal, which libFuzzer records as a crash
# and saves the input of. (With GCC, UBSan is a runtime apart from ASan's, and exits otherwise.)
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:check_initialization_order=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-abort_on_error=1:print_stacktrace=1:halt_on_error=1}

run_one() {
  local t=$1 bin="$build/tests/fuzz/$1"
  local work="$build/fuzz-corpus/$t" artifacts="$build/fuzz-artifacts/$t/"
  rm -rf "$work" "$artifacts" && mkdir -p "$work" "$artifacts"
  local args=(-max_total_time="$seconds" -timeout="$timeout" -rss_limit_mb="$rss" -malloc_limit_mb="$rss"
              -artifact_prefix="$artifacts" -print_final_stats=1)
  [ -f "$t.dict" ] && args+=(-dict="$t.dict")
  # Built with GCC (LibTorch): comparison feedback only, which libFuzzer reads as value profile.
  [ "$t" = model_file_fuzz ] && args+=(-use_value_profile=1)
  local start=$SECONDS rc=0
  "$bin" "${args[@]}" "$work" "corpus/$t" > "$build/fuzz-$t.log" 2>&1 || rc=$?
  local execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$build/fuzz-$t.log" | grep -o '[0-9]*$' || echo "?")
  if [ $rc -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
    echo "fuzz: $t FAILED (exit $rc) after $((SECONDS - start)) s; inputs in $artifacts, log $build/fuzz-$t.log:"
    grep -E -m 8 'ERROR:|runtime error:|property failed|terminate called|SUMMARY:|Test unit written' "$build/fuzz-$t.log" | sed 's/^/  /'
    return 1
  fi
  echo "fuzz: $t ok: $execs inputs in $((SECONDS - start)) s, $(ls "$work" | wc -l) in its corpus"
}

failed=0
running=0
for t in "${targets[@]}"; do
  [ -x "$build/tests/fuzz/$t" ] || { echo "fuzz: $t is not built in $build"; failed=1; continue; }
  run_one "$t" &
  running=$((running + 1))
  if [ $running -ge "$jobs" ]; then wait -n || failed=1; running=$((running - 1)); fi
done
while [ $running -gt 0 ]; do wait -n || failed=1; running=$((running - 1)); done
exit $failed
