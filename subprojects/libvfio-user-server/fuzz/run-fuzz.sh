#!/bin/sh
# Run the libFuzzer target briefly as a TAP test: a fixed seed and a
# fixed number of runs from a scratch copy of the corpus, so that a run
# is repeatable; the time cap only guards a very slow machine.
#   run-fuzz.sh FUZZER CORPUS_DIR RUNS
set -u
fuzzer=$1 corpus=$2 runs=$3
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"

echo "1..1"
"$fuzzer" -seed=1 -runs="$runs" -max_total_time=120 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" >"$work/log" 2>&1
rc=$?
sed 's/^/# /' "$work/log" | grep -E '^# (Done|stat::number_of_executed_units|stat::new_units_added|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written)' 
if [ $rc -eq 0 ]; then
    echo "ok 1 - libFuzzer: $runs runs of the message decoder from the corpus, seed 1, no crash"
else
    # Show the whole report and the input that broke it.
    sed 's/^/# /' "$work/log" | tail -n 60
    for a in "$work"/artifacts/*; do
        [ -f "$a" ] && echo "# crashing input (hex): $(od -An -tx1 -v "$a" | tr -d '\n' | cut -c1-600)"
    done
    echo "not ok 1 - libFuzzer exited with status $rc"
fi
