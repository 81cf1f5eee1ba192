#!/usr/bin/env python3
"""Count the real test cases of one or more meson test runs.

Each test binary speaks TAP (GTest does by default); every "ok" and
"not ok" line is one case.  A test that printed no TAP, or that died
before its plan was complete, counts by its exit result.  The last line
printed is the summary the CI reads: "N passed, N failed".  Just above
it, every failed test is named with its failing cases and the last
error lines it printed, so that a log cut to its tail still says what
went wrong.
"""
import json
import re
import sys

TAP_LINE = re.compile(r'^(not ok|ok)\b(.*)$')


def failure_lines(entry, failed_cases, last_ok):
    """A few lines saying why one test failed."""
    name = entry.get('name', '?')
    lines = [f'FAILED {name}: {entry.get("result", "?")}']
    lines += [f'    {c}' for c in failed_cases[:5]]
    if not failed_cases:
        lines.append(f'    died after: {last_ok or "(no case passed)"}')
    text = (entry.get('stdout') or '') + (entry.get('stderr') or '')
    errors = [x.strip() for x in text.splitlines()
              if re.search(r'Bail out|ERROR|Sanitizer|runtime error|'
                           r'assertion|timed out', x)]
    lines += [f'    {e[:300]}' for e in errors[-3:]]
    return lines


def count_log(path, report):
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
        failed_cases = []
        last_ok = None
        for out in (entry.get('stdout') or '').splitlines():
            m = TAP_LINE.match(out.strip())
            if not m:
                continue
            rest = m.group(2)
            if '# SKIP' in rest.upper():
                s += 1
            elif m.group(1) == 'ok':
                p += 1
                last_ok = out.strip()
            else:
                f += 1
                failed_cases.append(out.strip())
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
        if f:
            report += failure_lines(entry, failed_cases, last_ok)
        passed += p
        failed += f
        skipped += s
    return passed, failed, skipped


def main():
    total = [0, 0, 0]
    report = []
    for d in sys.argv[1:]:
        failures = []
        p, f, s = count_log(f'{d}/meson-logs/testlog.json', failures)
        report += [f'{d}: {x}' if x.startswith('FAILED') else x
                   for x in failures]
        print(f'{d}: {p} passed, {f} failed, {s} skipped')
        total = [total[0] + p, total[1] + f, total[2] + s]
    for x in report:
        print(x)
    line = f'{total[0]} passed, {total[1]} failed'
    if total[2]:
        line += f', {total[2]} skipped'
    print(line)
    return 1 if total[1] else 0


if __name__ == '__main__':
    sys.exit(main())
