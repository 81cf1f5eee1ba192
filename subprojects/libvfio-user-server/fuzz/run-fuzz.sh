#!/bin/sh
# Run the libFuzzer target briefly as a TAP test: a fixed seed and a
# fixed number of runs from a scratch copy of the corpus, so that a run
# is repeatable; the time cap only guards a very slow machine.
#   run-fuzz.sh FUZZER CORPUS_DIR RUNS
# With FUZZ_TIME and FUZZ_CAMPAIGN_DIR set (vmig's `make fuzz`): a
# campaign of FUZZ_TIME seconds on one core instead, from the corpus in
# FUZZ_CAMPAIGN_DIR/FUZZER/corpus (it grows from one campaign to the
# next), findings in FUZZ_CAMPAIGN_DIR/FUZZER/artifacts failing the test.
set -u
fuzzer=$1 corpus=$2 runs=$3
name=$(basename "$fuzzer")
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

echo "1..1"
if [ -n "${FUZZ_TIME:-}" ]; then
    dir=${FUZZ_CAMPAIGN_DIR:?FUZZ_CAMPAIGN_DIR is not set}/$name
    mkdir -p "$dir/corpus" "$dir/artifacts"
    cp "$corpus"/* "$dir/corpus/"
    ls "$dir/artifacts" >"$work/before"
    "$fuzzer" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$FUZZ_TIME" -rss_limit_mb=2048 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1
    # Without its '#', which would start a TAP directive.
    stats=$(grep -E '^#[0-9]+: cov:' "$dir/log" | tail -n 1 |
            sed 's/^#\([0-9]*\): /\1 executions, /')
    ls "$dir/artifacts" >"$work/after"
    new=$(comm -13 "$work/before" "$work/after")
    if [ -z "$new" ]; then
        echo "ok 1 - $name: ${FUZZ_TIME}s, no new finding: $stats" \
             "(log $dir/log)"
        exit 0
    fi
    for a in $new; do
        echo "# finding: $dir/artifacts/$a"
    done
    echo "not ok 1 - $name: new findings in $dir/artifacts: $stats"
    exit 1
fi

mkdir "$work/corpus" "$work/artifacts"
cp "$corpus"/* "$work/corpus/"
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
