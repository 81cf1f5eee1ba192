#!/usr/bin/env python3
"""virtio-net device context: downtime with PRE_COPY against STOP_COPY only.

A VM streams frames through a vfio-user-virtio-net device whose context
holds a MAC filter table of N entries (--mac-filters, 6 bytes each), and
migrates live over a UNIX socket.  STOP_COPY only: the whole context is
read, sent and taken by the destination (which programs its receive
filter from the table) in the downtime.  PRE_COPY (with switchover-ack):
the context went over before, under the device's rate limiter, and the
destination programmed the filter then; the final context still carries
the whole table (a context cannot be read in pieces), but an unchanged
table is not programmed again.  The table gives the median of --runs
runs: downtime, total time, device bytes, and the downtime saved.

Usage: bench-virtio-net.py [BUILD_DIR] [--runs N] [--filters N]...
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
from qmp import (QMPError, Vmig, start_device_server, stop_all,  # noqa: E402
                 wait_migration, wait_running)


def start_server(binary, path, filters, precopy):
    args = ['--mac-filters', str(filters)]
    if not precopy:
        args.append('--no-precopy')
    return start_device_server(binary, path, args, subprocess.DEVNULL)


def vm_args(sock, incoming=None):
    args = ['-m', '256M', '-smp', '2', '-guest', 'virtio-net,rate=5000',
            '-device', f'vfio-user-pci,socket={sock},id=net0']
    return args + (['-incoming', incoming] if incoming else [])


def one_run(build, tmp, filters, precopy):
    binary = os.path.join(build, 'contrib', 'vfio-user-virtio-net')
    vmig = os.path.join(build, 'vmig')
    socks = [os.path.join(tmp, f'{s}.sock') for s in ('src', 'dst')]
    mig = os.path.join(tmp, 'mig.sock')
    procs = [start_server(binary, s, filters, precopy) for s in socks]
    vms = []
    try:
        dst = Vmig(vmig, tmp, 'dst', vm_args(socks[1], 'defer'))
        vms.append(dst)
        src = Vmig(vmig, tmp, 'src', vm_args(socks[0]))
        vms.append(src)
        caps = [{'capability': c, 'state': precopy}
                for c in ('return-path', 'switchover-ack')]
        for vm in (src, dst):
            vm.qmp.cmd('migrate-set-capabilities', capabilities=caps)
        src.qmp.cmd('migrate-set-parameters',
                    **{'downtime-limit': 300, 'max-bandwidth': 0,
                       'avail-switchover-bandwidth': 1 << 30})
        time.sleep(1)
        dst.qmp.cmd('migrate-incoming', uri=f'unix:{mig}')
        src.qmp.cmd('migrate', uri=f'unix:{mig}')
        info = wait_migration(src, interval=0.05)
        if info['status'] != 'completed':
            raise RuntimeError(f"migration {info['status']}: "
                               f"{info.get('error-desc', '')}")
        if not wait_running(dst):
            raise RuntimeError('the destination did not run')
        time.sleep(0.5)
        if not dst.qmp.cmd('x-guest-verify')['ok']:
            raise RuntimeError('the destination guest check failed')
        return (info['downtime'], info['total-time'],
                info.get('vfio', {}).get('transferred', 0))
    finally:
        stop_all(vms, procs)
        for s in socks + [mig]:
            if os.path.exists(s):
                os.unlink(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--runs', type=int, default=3)
    ap.add_argument('--filters', type=int, action='append')
    a = ap.parse_args()
    sizes = a.filters or [500000, 2000000]
    print(f"{'filters':>9} {'context':>9} {'case':>14} {'downtime':>9} "
          f"{'total':>8} {'dev bytes':>10} {'saved':>6}")
    with tempfile.TemporaryDirectory(prefix='bench-virtio-net-') as tmp:
        for n in sizes:
            base = None
            for precopy in (False, True):
                runs = [one_run(a.build, tmp, n, precopy)
                        for _ in range(a.runs)]
                down = statistics.median(r[0] for r in runs)
                total = statistics.median(r[1] for r in runs)
                dev = statistics.median(r[2] for r in runs)
                saved = '' if base is None else \
                    f'{100 * (base - down) / base:5.0f}%'
                base = down if base is None else base
                print(f"{n:9d} {n * 6 / 1e6:7.1f}MB "
                      f"{'pre-copy+ack' if precopy else 'stop-copy':>14} "
                      f"{down:7.0f}ms {total:6.0f}ms {dev / 1e6:8.1f}MB "
                      f"{saved:>6}", flush=True)
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except (QMPError, RuntimeError) as e:
        print(f'bench-virtio-net: {e}')
        sys.exit(1)
