#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# A short libFuzzer run as a TAP test: a fixed seed and a fixed number
# of runs from a scratch copy of the inputs, so that a run is
# repeatable; the time cap only guards a very slow machine.  Inputs may
# be as large as a mapped-ram stream of the target's machine (1.3 MiB),
# and mutations keep their whole length (-len_control=0) to reach the
# sections after RAM.
#   run-fuzz.sh FUZZER RUNS DICT INPUT...   (files or directories)
# vmig's own messages (one per failed load) are dropped; a failure
# prints the report, then replays each input that broke the target with
# its messages, so that the log says what went wrong.
set -u
fuzzer=$1 runs=$2 dict=$3
shift 3
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus" "$work/artifacts"
for input in "$@"; do
    if [ -d "$input" ]; then
        cp "$input"/* "$work/corpus/"
    else
        cp "$input" "$work/corpus/"
    fi
done

echo "1..1"
"$fuzzer" -seed=1 -runs="$runs" -max_total_time=120 -timeout=20 \
    -max_len=4194304 -len_control=0 -rss_limit_mb=2048 -close_fd_mask=2 \
    -dict="$dict" -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" >"$work/log" 2>&1
rc=$?
summary='Done|stat::number_of_executed_units|stat::new_units_added|==[0-9]+=='
summary="$summary|SUMMARY|vmig-fuzz|artifact_prefix|Test unit written"
sed 's/^/# /' "$work/log" | grep -E "^# ($summary)"
if [ $rc -eq 0 ]; then
    echo "ok 1 - libFuzzer: $runs runs of $(basename "$fuzzer") from its" \
         "seeds, seed 1, no failure"
    exit 0
fi
sed 's/^/# /' "$work/log" | tail -n 60
for a in "$work"/artifacts/*; do
    [ -f "$a" ] || continue
    echo "# replaying $(basename "$a") ($(wc -c <"$a") bytes):"
    VMIG_FUZZ_LOG=1 "$fuzzer" "$a" 2>&1 | tail -n 30 | sed 's/^/#   /'
done
echo "not ok 1 - libFuzzer exited with status $rc"
