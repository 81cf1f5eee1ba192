#!/bin/sh
# make bench: run every benchmark program of the build and print its table.
# Benchmarks measure; they never fail a build for being slow.
set -e
build=${1:-build}
found=0
for b in $(find "$build/tests/bench" -maxdepth 2 -type f -name 'bench-*' -perm -u+x | sort); do
    found=1
    echo "== $(basename "$b")"
    "$b"
    echo
done
for s in $(find "$(dirname "$0")" -maxdepth 1 -name 'bench-*.py' | sort); do
    found=1
    echo "== $(basename "$s")"
    python3 "$s" "$build"
    echo
done
[ $found = 1 ] || echo "no benchmarks built"
