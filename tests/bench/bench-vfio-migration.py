#!/usr/bin/env python3
"""VFIO device migration: downtime and total time of a running VM with
vfio-user-dma devices, for the ways vmig can move their state.

For each case a source and a destination vmig run with N devices of a
given memory size (each device's server rewrites a share of its memory
per second), the VM migrates live over a UNIX socket, and the table gives
the median of several runs: downtime, total time, device bytes, RAM bytes.

Cases (default: the ones the goals are about; --full: the whole matrix):
  stop-copy      devices without PRE_COPY: all device state in the stop
  pre-copy       PRE_COPY, no switchover-ack
  pre-copy+ack   PRE_COPY with switchover-ack (and the return path)
  ...+multifd    device state over multifd channels at switchover

Usage: bench-vfio-migration.py [BUILD_DIR] [--runs N] [--full] [--quick]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))
from qmp import QMPError, Vmig  # noqa: E402

MIB = 1 << 20


def start_server(binary, path, mem, dirty, precopy):
    argv = [binary, '--socket', path, '--mem-size', mem, '--dirty-rate', dirty]
    if not precopy:
        argv.append('--no-precopy')
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise QMPError(f'vfio-user-dma did not start on {path}')
        time.sleep(0.01)
    return proc


def one_run(build, tmp, case, ndev, mem, dirty):
    vmig = os.path.join(build, 'vmig')
    dma = os.path.join(build, 'contrib', 'vfio-user-dma')
    precopy = case['precopy']
    procs, vms = [], []
    try:
        socks = {side: [os.path.join(tmp, f'{side}{i}.sock') for i in range(ndev)]
                 for side in ('src', 'dst')}
        for side in socks:
            for s in socks[side]:
                if os.path.exists(s):
                    os.unlink(s)
                procs.append(start_server(dma, s, mem, dirty, precopy))
        multifd_prop = 'on' if case['multifd'] else 'off'

        def args(side):
            a = ['-m', '512M', '-smp', '2', '-guest', 'stress,ws=64M,rate=16M',
                 '-guest', 'dma']
            for i, s in enumerate(socks[side]):
                a += ['-device', f'vfio-user-pci,socket={s},id=dev{i},'
                      f'x-migration-multifd-transfer={multifd_prop}']
            return a

        dst = Vmig(vmig, tmp, 'dst', args('dst') + ['-incoming', 'defer'])
        vms.append(dst)
        src = Vmig(vmig, tmp, 'src', args('src'))
        vms.append(src)
        caps = [{'capability': 'return-path', 'state': case['ack']},
                {'capability': 'switchover-ack', 'state': case['ack']},
                {'capability': 'multifd', 'state': case['multifd']}]
        for vm in (src, dst):
            vm.qmp.cmd('migrate-set-capabilities', capabilities=caps)
            if case['multifd']:
                vm.qmp.cmd('migrate-set-parameters', **{'multifd-channels': 4})
        # Devices without PRE_COPY can only stop for as long as their state
        # takes: their limit is raised so they complete at all, and the
        # table shows the stop they need.  Every other case gets 300 ms.
        src.qmp.cmd('migrate-set-parameters', **{
            'downtime-limit': 300 if precopy else 60000, 'max-bandwidth': 0})
        time.sleep(1)
        uri = f"unix:{os.path.join(tmp, 'mig.sock')}"
        dst.qmp.cmd('migrate-incoming', uri=uri)
        src.qmp.cmd('migrate', uri=uri)
        deadline = time.monotonic() + 300
        while True:
            info = src.qmp.cmd('query-migrate')
            if info['status'] in ('completed', 'failed', 'cancelled'):
                break
            if time.monotonic() > deadline:
                src.qmp.cmd('migrate_cancel')
                raise QMPError('did not converge in 300 s')
            time.sleep(0.05)
        if info['status'] != 'completed':
            raise QMPError(f"{info['status']}: {info.get('error-desc', '')}")
        return {'downtime': info['downtime'], 'total': info['total-time'],
                'dev': info.get('vfio', {}).get('transferred', 0),
                'ram': info['ram']['transferred']}
    finally:
        for vm in vms:
            vm.quit()
        for p in procs:
            p.terminate()
            p.wait()


CASES = [
    {'name': 'stop-copy', 'precopy': False, 'ack': False, 'multifd': False},
    {'name': 'stop-copy+multifd', 'precopy': False, 'ack': False, 'multifd': True},
    {'name': 'pre-copy', 'precopy': True, 'ack': False, 'multifd': False},
    {'name': 'pre-copy+ack', 'precopy': True, 'ack': True, 'multifd': False},
    {'name': 'pre-copy+ack+multifd', 'precopy': True, 'ack': True, 'multifd': True},
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--full', action='store_true')
    ap.add_argument('--quick', action='store_true')
    args = ap.parse_args()
    if args.quick:
        matrix = [(1, '64M', '5%')]
        args.runs = 1
    elif args.full:
        matrix = [(n, m, d) for m in ('256M', '1G') for n in (1, 4)
                  for d in ('0%', '5%')]
    else:
        matrix = [(1, '1G', '5%'), (4, '256M', '5%')]
    print(f'VFIO device migration, median of {args.runs} run(s), UNIX socket, '
          f'{os.cpu_count()} CPUs; downtime-limit 300 ms (stop-copy cases: '
          f'60 s, they cannot do better than their state)')
    hdr = (f"{'devices':>7} {'memory':>6} {'dirty':>5}  {'case':22} "
           f"{'downtime ms':>11} {'total ms':>9} {'device MiB':>10} {'RAM MiB':>8}")
    print(hdr)
    print('-' * len(hdr))
    with tempfile.TemporaryDirectory(prefix='vmig-vbench-') as tmp:
        for ndev, mem, dirty in matrix:
            for case in CASES:
                runs = []
                err = None
                for _ in range(args.runs):
                    try:
                        runs.append(one_run(args.build, tmp, case, ndev, mem, dirty))
                    except QMPError as e:
                        err = e
                        break
                label = f'{ndev:7d} {mem:>6} {dirty:>5}  {case["name"]:22}'
                if err:
                    print(f'{label} failed: {err}', flush=True)
                    continue
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"{label} {med['downtime']:11.0f} {med['total']:9.0f} "
                      f"{med['dev'] / MIB:10.1f} {med['ram'] / MIB:8.1f}",
                      flush=True)


if __name__ == '__main__':
    main()
