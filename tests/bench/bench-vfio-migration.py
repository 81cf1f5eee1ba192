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

The column state/s is each device's --state-rate: "host" when the device
moves its state as fast as the host lets it (then, on a small machine,
the CPUs bound the stop and parallel channels cannot shorten it), or the
rate of a device engine (firmware, a DMA queue) that bounds each device
as on real hardware, where saving devices in parallel pays.  The default
table has one such row; --state-rate RATE sets it for every row.

--cpu adds the CPU seconds (user + system) each process spent from the
migrate command to its end: source and destination vmig, and the device
servers of each side summed.  --case NAME (repeatable) and --devices
NxSIZE (repeatable, e.g. 4x256M) pick rows.  --perf DIR records a
system-wide profile (perf record -a -g) of each migration, with the
pids of the processes beside it (perf report --pid PID).

Usage: bench-vfio-migration.py [BUILD_DIR] [--runs N] [--full] [--quick]
                               [--case NAME]... [--devices NxSIZE]... [--cpu] [--perf DIR]
                               [--state-rate RATE]
"""
import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))
from qmp import (QMPError, Vmig, start_device_server, stop_all,  # noqa: E402
                 wait_migration)

MIB = 1 << 20


def start_server(binary, path, mem, dirty, precopy, rate):
    args = ['--mem-size', mem, '--dirty-rate', dirty]
    if not precopy:
        args.append('--no-precopy')
    if rate:
        args += ['--state-rate', rate]
    return start_device_server(binary, path, args, subprocess.DEVNULL)


def cpu_seconds(pid):
    """User + system CPU seconds of process @pid so far (all threads)."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def perf_start(perf_dir, run_name, pids):
    """perf record -a -g for the migration; the pids go to a file beside."""
    out = os.path.join(perf_dir, f'{run_name}.data')
    with open(out + '.pids', 'w') as f:
        for name, plist in pids.items():
            f.write(f"{name}: {','.join(map(str, plist))}\n")
    rec = subprocess.Popen(['perf', 'record', '-q', '-a', '-g', '-F', '999',
                            '-o', out], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    time.sleep(0.5)         # let perf start
    return [rec]


def perf_stop(recs):
    for r in recs:
        r.send_signal(signal.SIGINT)
    for r in recs:
        r.wait()


def one_run(build, tmp, case, ndev, mem, dirty, rate, perf_dir=None):
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
                procs.append(start_server(dma, s, mem, dirty, precopy, rate))
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
        pids = {'src vmig': [src.proc.pid], 'dst vmig': [dst.proc.pid],
                'src servers': [p.pid for p in procs[:ndev]],
                'dst servers': [p.pid for p in procs[ndev:]]}
        if perf_dir:
            recs = perf_start(perf_dir, f"{ndev}x{mem}-{case['name']}", pids)
        cpu0 = {k: sum(cpu_seconds(p) for p in v) for k, v in pids.items()}
        dst.qmp.cmd('migrate-incoming', uri=uri)
        src.qmp.cmd('migrate', uri=uri)
        info = wait_migration(src, interval=0.05, timeout=300)
        if info['status'] != 'completed':
            raise QMPError(f"{info['status']}: {info.get('error-desc', '')}")
        # The destination finishes loading before the source completes.
        cpu = {k: sum(cpu_seconds(p) for p in v) - cpu0[k]
               for k, v in pids.items()}
        if perf_dir:
            perf_stop(recs)
        return {'downtime': info['downtime'], 'total': info['total-time'],
                'dev': info.get('vfio', {}).get('transferred', 0),
                'ram': info['ram']['transferred'], **cpu}
    finally:
        stop_all(vms, procs)


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
    ap.add_argument('--case', action='append', choices=[c['name'] for c in CASES])
    ap.add_argument('--devices', action='append', metavar='NxSIZE')
    ap.add_argument('--cpu', action='store_true')
    ap.add_argument('--state-rate', metavar='RATE',
                    help="each device server's --state-rate (e.g. 256M)")
    ap.add_argument('--perf', metavar='DIR',
                    help='perf record -a -g during each migration')
    args = ap.parse_args()
    cases = [c for c in CASES if not args.case or c['name'] in args.case]
    if args.devices:
        matrix = []
        for spec in args.devices:
            n, _, mem = spec.partition('x')
            if not n.isdigit() or not mem:
                ap.error(f'--devices {spec}: expected NxSIZE, e.g. 4x256M')
            matrix.append((int(n), mem, '5%', args.state_rate))
    elif args.quick:
        matrix = [(1, '64M', '5%', args.state_rate)]
        args.runs = 1
    elif args.full:
        matrix = [(n, m, d, args.state_rate) for m in ('256M', '1G')
                  for n in (1, 4) for d in ('0%', '5%')]
    else:
        # The last row: devices whose state moves at a device engine's
        # rate, so the host's two CPUs are not what bounds the stop.
        matrix = [(1, '1G', '5%', args.state_rate),
                  (4, '256M', '5%', args.state_rate),
                  (4, '256M', '5%', args.state_rate or '256M')]
    print(f'VFIO device migration, median of {args.runs} run(s), UNIX socket, '
          f'{os.cpu_count()} CPUs; downtime-limit 300 ms (stop-copy cases: '
          f'60 s, they cannot do better than their state)')
    hdr = (f"{'devices':>7} {'memory':>6} {'dirty':>5} {'state/s':>7}  {'case':22} "
           f"{'downtime ms':>11} {'total ms':>9} {'device MiB':>10} {'RAM MiB':>8}")
    cpu_keys = ('src vmig', 'src servers', 'dst vmig', 'dst servers')
    if args.cpu:
        hdr += '  CPU s: ' + ' '.join(f'{k:>11}' for k in cpu_keys)
    print(hdr)
    print('-' * len(hdr))
    with tempfile.TemporaryDirectory(prefix='vmig-vbench-') as tmp:
        for ndev, mem, dirty, rate in matrix:
            for case in cases:
                runs = []
                err = None
                for _ in range(args.runs):
                    try:
                        runs.append(one_run(args.build, tmp, case, ndev, mem,
                                            dirty, rate, args.perf))
                    except QMPError as e:
                        err = e
                        break
                label = (f'{ndev:7d} {mem:>6} {dirty:>5} {rate or "host":>7}  '
                         f'{case["name"]:22}')
                if err:
                    print(f'{label} failed: {err}', flush=True)
                    continue
                med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(f"{label} {med['downtime']:11.0f} {med['total']:9.0f} "
                      f"{med['dev'] / MIB:10.1f} {med['ram'] / MIB:8.1f}" +
                      ('         ' + ' '.join(f'{med[k]:11.2f}' for k in cpu_keys)
                       if args.cpu else ''), flush=True)


if __name__ == '__main__':
    main()
