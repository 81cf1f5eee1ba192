#!/usr/bin/env python3
"""Count the real test cases of one or more meson test runs.

Each test binary speaks TAP (GTest does by default); every "ok" and
"not ok" line is one case.  A test that printed no TAP, or that died
before its plan was complete, counts by its exit result.  The last line
printed is the summary the CI reads: "N passed, N failed".
"""
import json
import re
import sys

TAP_LINE = re.compile(r'^(not ok|ok)\b(.*)$')


def count_log(path):
    passed = failed = skipped = 0
    try:
        lines = open(path, encoding='utf-8', errors='replace').readlines()
    except FileNotFoundError:
        print(f'test-summary: no test log at {path}', file=sys.stderr)
        return 0, 1, 0
    for line in lines:
        entry = json.loads(line)
        result = entry.get('result', 'FAIL')
        p = f = s = 0
        for out in (entry.get('stdout') or '').splitlines():
            m = TAP_LINE.match(out.strip())
            if not m:
                continue
            rest = m.group(2)
            if '# SKIP' in rest.upper():
                s += 1
            elif m.group(1) == 'ok':
                p += 1
            else:
                f += 1
        if result in ('OK', 'EXPECTEDFAIL'):
            if p + f + s == 0:
                p = 1
        elif result == 'SKIP':
            if p + f + s == 0:
                s = 1
        else:
            # Crashed, timed out or failed: never let it count as passed.
            if f == 0:
                f = 1
        passed += p
        failed += f
        skipped += s
    return passed, failed, skipped


def main():
    total = [0, 0, 0]
    for d in sys.argv[1:]:
        p, f, s = count_log(f'{d}/meson-logs/testlog.json')
        print(f'{d}: {p} passed, {f} failed, {s} skipped')
        total = [total[0] + p, total[1] + f, total[2] + s]
    line = f'{total[0]} passed, {total[1]} failed'
    if total[2]:
        line += f', {total[2]} skipped'
    print(line)
    return 1 if total[1] else 0


if __name__ == '__main__':
    sys.exit(main())
