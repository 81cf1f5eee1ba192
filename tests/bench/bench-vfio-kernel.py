#!/usr/bin/env python3
"""Per-arc times of VFIO migration inside the test VM (tests/vm): mtty
over iommufd and the legacy container, and vfio-user-dma beside them,
from tests/vm/bench/bench-vfio-kernel.sh.  Prints its table.

Usage: bench-vfio-kernel.py [BUILD_DIR]   (VMIG_BENCH_RUNS=N, default 7)
"""
import os
import subprocess
import sys


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    here = os.path.dirname(os.path.abspath(__file__))
    run = os.path.join(here, '..', 'vm', 'run.sh')
    env = dict(os.environ)
    runs = env.get('VMIG_BENCH_RUNS', '7')
    env['VMIG_VM_APPEND'] = (env.get('VMIG_VM_APPEND', '') +
                             f' VMIG_BENCH_RUNS={runs} VMIG_CASE_TIMEOUT=1000')
    env.setdefault('VMIG_VM_TIMEOUT', '1200')
    out = subprocess.run([run, '--build', build, 'bench-vfio-kernel'],
                         env=env, capture_output=True, text=True).stdout
    rows = [line.split('VMIG-BENCH ', 1)[1] for line in out.splitlines()
            if 'VMIG-BENCH ' in line]
    if not rows:
        print('the benchmark did not run:')
        print('\n'.join(out.splitlines()[:20]))
        return 1
    print('VFIO migration inside the test VM (Linux 6.12 under QEMU TCG, '
          '1 vCPU): the time of each device state arc and the downtime')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
