#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# A libFuzzer target as a TAP test.
#   run-fuzz.sh FUZZER RUNS DICT INPUT...   (files or directories)
# DICT is a libFuzzer dictionary, or - for none.  FUZZ_OPTS holds the
# target's length options; by default those of the stream loader, whose
# inputs may be as large as a mapped-ram stream of its machine (1.3
# MiB), and whose mutations keep their whole length (-len_control=0) to
# reach the sections after RAM.
#
# `make check`: a short run, a fixed seed and a fixed number of runs from
# a scratch copy of the inputs, so that a run is repeatable; the time cap
# only guards a very slow machine.
#
# `make fuzz` (FUZZ_TIME and FUZZ_CAMPAIGN_DIR set): a campaign of
# FUZZ_TIME seconds on one core (-fork=1), going on after a finding, from
# the corpus in FUZZ_CAMPAIGN_DIR/FUZZER/corpus, which keeps growing from
# one campaign to the next (the inputs are added to it each time);
# findings land in FUZZ_CAMPAIGN_DIR/FUZZER/artifacts and fail the test.
#
# vmig's own messages (one per failed load or refused input) are
# dropped; a failure prints the report, then replays each input that
# broke the target with its messages, so that the log says what went
# wrong.
set -u
fuzzer=$1 runs=$2 dict=$3
shift 3
name=$(basename "$fuzzer")
work=$(mktemp -d) || exit 1
trap 'rm -rf "$work"' EXIT

if [ -n "${FUZZ_TIME:-}" ]; then
    dir=${FUZZ_CAMPAIGN_DIR:?FUZZ_CAMPAIGN_DIR is not set}/$name
else
    dir=$work
fi
mkdir -p "$dir/corpus" "$dir/artifacts"
for input in "$@"; do
    # A folder of reproducers may not exist yet.
    [ -e "$input" ] || continue
    if [ -d "$input" ]; then
        cp "$input"/* "$dir/corpus/"
    else
        cp "$input" "$dir/corpus/"
    fi
done

opts=${FUZZ_OPTS:--max_len=4194304 -len_control=0}
[ "$dict" = - ] || opts="$opts -dict=$dict"

# The inputs that broke the target, replayed with its messages.
replay_findings() {
    for a in "$@"; do
        [ -f "$a" ] || continue
        echo "# replaying $(basename "$a") ($(wc -c <"$a") bytes):"
        VMIG_FUZZ_LOG=1 "$fuzzer" -timeout=20 "$a" 2>&1 | tail -n 30 |
            sed 's/^/#   /'
    done
}

echo "1..1"
if [ -n "${FUZZ_TIME:-}" ]; then
    ls "$dir/artifacts" >"$work/before"
    # shellcheck disable=SC2086 # $opts is a list of options
    "$fuzzer" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -max_total_time="$FUZZ_TIME" -timeout=20 -rss_limit_mb=2048 \
        -close_fd_mask=2 $opts -artifact_prefix="$dir/artifacts/" \
        "$dir/corpus" >"$dir/log" 2>&1
    # The last progress line: executions, coverage, corpus, failures.
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
    # shellcheck disable=SC2086 # artifact names have no blanks
    replay_findings $(for a in $new; do echo "$dir/artifacts/$a"; done)
    echo "not ok 1 - $name: $(echo "$new" | wc -l) new findings in" \
         "$dir/artifacts: $stats"
    exit 1
fi

# shellcheck disable=SC2086 # $opts is a list of options
"$fuzzer" -seed=1 -runs="$runs" -max_total_time=120 -timeout=20 \
    -rss_limit_mb=2048 -close_fd_mask=2 $opts \
    -print_final_stats=1 -artifact_prefix="$dir/artifacts/" \
    "$dir/corpus" >"$work/log" 2>&1
rc=$?
summary='Done|stat::number_of_executed_units|stat::new_units_added|==[0-9]+=='
summary="$summary|SUMMARY|vmig-fuzz|artifact_prefix|Test unit written"
sed 's/^/# /' "$work/log" | grep -E "^# ($summary)"
if [ $rc -eq 0 ]; then
    echo "ok 1 - libFuzzer: $runs runs of $name from its seeds, seed 1," \
         "no failure"
    exit 0
fi
sed 's/^/# /' "$work/log" | tail -n 60
replay_findings "$dir"/artifacts/*
echo "not ok 1 - libFuzzer exited with status $rc"
exit 1
