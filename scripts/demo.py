#!/usr/bin/env python3
"""make demo: what vmig can do so far, on this one machine.

Starts a VM running the self-checking stress guest, shows its progress
for a few seconds, pauses it, checks all of its RAM, and says what the
migration steps that come next will add.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import Vmig  # noqa: E402


def gib(n):
    return n / (1 << 30)


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    binary = os.path.join(build, 'vmig')
    ram, smp, ws = '1G', 2, '512M'
    with tempfile.TemporaryDirectory(prefix='vmig-demo-') as tmp:
        print(f'Starting a VM: {ram} of RAM, {smp} vCPUs running the '
              f'stress guest over a {ws} working set')
        vm = Vmig(binary, tmp, 'vm', ['-name', 'demo', '-m', ram,
                                      '-smp', str(smp),
                                      '-guest', f'stress,ws={ws}'])
        try:
            start = time.monotonic()
            last = 0
            while time.monotonic() - start < 4:
                time.sleep(0.5)
                g = vm.qmp.cmd('x-query-guest')
                now = time.monotonic() - start
                rate = gib(g['bytes-written'] - last) / 0.5
                last = g['bytes-written']
                print(f"\r  {now:4.1f} s  passes {g['passes']:6d}  "
                      f"written {gib(g['bytes-written']):7.2f} GiB  "
                      f"{rate:6.2f} GiB/s", end='', flush=True)
            print()
            vm.qmp.cmd('stop')
            t0 = time.monotonic()
            res = vm.qmp.cmd('x-guest-verify')
            ms = (time.monotonic() - t0) * 1000
            status = 'PASS' if res['ok'] else 'FAIL'
            print(f"Paused and checked {res['pages-checked']} pages in "
                  f"{ms:.0f} ms: {status} ({res['bad-pages']} bad)")
            vm.qmp.cmd('cont')
        finally:
            vm.quit()
    print('\nNext: live migration of this VM to a second vmig process '
          '(precopy, return path, switchover-ack, multifd), then vfio-user '
          'devices migrating with it.')
    return 0 if res['ok'] else 1


if __name__ == '__main__':
    sys.exit(main())
