#!/usr/bin/env python3
"""Migration throughput: vmig against Debian's QEMU on the same machine.

2 GiB of guest RAM, paused VM, loopback TCP, one channel and multifd 2
and 4; then save to a file and load from it (the plain stream, and
vmig's mapped-ram with one writer and multifd 2 and 4, through the page
cache and with direct-io).  Per cell: GiB/s, total time, downtime, and
CPU seconds per GiB of both sides together.

Source RAM:
  random     a memory-backend-file filled from /dev/urandom (share=off)
  zero       all-zero anonymous memory with prealloc=on: every page is
             there and must be read to find it is zero, by either VMM
             (untouched memory would compare vmig's skipping of pages
             that were never written with QEMU's reading of them)
  zero-file  a sparse file mapped share=off, read through the page cache

Destination memory, the "regime" (random RAM only; the zero kinds run in
prealloc): this machine is a VM that hands freed memory back to its
host, and touching such memory again costs 2-20x more, so the state of
the destination's memory decides much of the result:
  prealloc   the destination's RAM has prealloc=on: faulted in at start,
             before the migration is timed
  settled    fresh memory, after --settle seconds (10) of quiet since the
             last run, time for the guest kernel to give freed memory
             back to the host
  freed      fresh memory just after a helper process touched and freed
             as much as the guest's RAM

vmig and QEMU run in interleaved pairs (--repeat, 3), who goes first
alternating from pair to pair, each run with its regime prepared just
before it; a cell is the median [min-max] of its runs, and the ratio
vmig/QEMU the median [min-max] of the pairs' ratios.  CPU counts every
thread and child of each VMM (QEMU's exec:cat for the file rows).  The
machine's own limits, measured in the same run before and after: one
loopback TCP stream into a reused buffer, and into fresh memory of the
guest's size (the sender's best case with a fresh destination); and
the stream's again just before each cell, for its %lim column.

QEMU runs the same scenarios when qemu-system-x86_64 is installed
(apt-get install qemu-system-x86); QEMU 7.2 has no file: transport, so
its file rows use exec:cat, which is what users of 7.2 do (it has no
mapped-ram either).

Usage: bench-migration.py [BUILD_DIR] [--size 2G] [--repeat 3] [--quick]
                          [--file-only] [--socket-only] [--settle 10]
                          [--regime NAME]... [--ram NAME]...
"""
import argparse
import mmap
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))
from qmp import QMP, QMPError  # noqa: E402

GIB = 1 << 30
CLK_TCK = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    """User + system CPU seconds of @pid, its reaped children, and its
    live descendants (QEMU's exec: child runs through /bin/sh)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            fields = f.read().rsplit(')', 1)[1].split()
    except OSError:
        return 0.0
    total = sum(int(x) for x in fields[11:15]) / CLK_TCK
    for child in children(pid):
        total += cpu_seconds(child)
    return total


def children(pid):
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            out.append(int(d))
    return out


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loopback_limit(build, gib, fresh=False):
    """One TCP stream over loopback (tests/bench/loopback-limit.c); with
    @fresh, into never-touched memory of @gib GiB."""
    argv = [os.path.join(build, 'tests', 'bench', 'loopback-limit'), str(gib)]
    out = subprocess.run(argv + (['fresh'] if fresh else []),
                         capture_output=True, text=True, check=True)
    return float(out.stdout)


def loadavg():
    with open('/proc/loadavg') as f:
        return ' '.join(f.read().split()[:3])


REGIMES = ('prealloc', 'settled', 'freed')


def touch_and_free(size):
    """Fault in @size bytes of anonymous memory and give them back."""
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    for off in range(0, size, 4096):
        m[off] = 1
    m.close()


def prepare(regime, size, settle):
    if regime == 'settled':
        time.sleep(settle)
    elif regime == 'freed':
        touch_and_free(size)


class Proc:
    """A VMM process with a QMP socket."""

    def __init__(self, argv, qmp_path):
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        try:
            self.qmp = QMP(qmp_path, timeout=120)
        except QMPError:
            self.proc.kill()
            err = self.proc.communicate()[1].decode(errors='replace')
            raise QMPError(f'{argv[0]} did not start: {err.strip()}')
        self.cpu0 = cpu_seconds(self.proc.pid)

    def cpu(self):
        return cpu_seconds(self.proc.pid) - self.cpu0

    def stop(self):
        try:
            self.qmp.cmd('quit')
        except (QMPError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Vmm:
    """How to start vmig or QEMU with a given RAM."""

    def __init__(self, name, binary, workdir):
        self.name = name
        self.binary = binary
        self.workdir = workdir
        self.n = 0

    def start(self, ram, size, incoming=None, prealloc=False):
        """@ram: a file to map, 'zero' (prealloc'd zero memory) or
        'dest' (fresh, or prealloc'd with @prealloc)."""
        self.n += 1
        qmp = os.path.join(self.workdir, f'{self.name}-{self.n}.qmp')
        if ram == 'zero' or ram == 'dest':
            backend = f'memory-backend-ram,id=mem,size={size}'
            if ram == 'zero' or prealloc:
                backend += ',prealloc=on'
        else:
            backend = (f'memory-backend-file,id=mem,size={size},'
                       f'mem-path={ram},share=off')
        argv = [self.binary, '-qmp', f'unix:{qmp},server=on,wait=off',
                '-S', '-object', backend, '-machine', 'none,memory-backend=mem',
                '-m', str(size // (1 << 20))]
        if self.name == 'qemu':
            argv += ['-display', 'none', '-nodefaults', '-accel', 'tcg']
        if incoming:
            argv += ['-incoming', incoming]
        return Proc(argv, qmp)


def wait_completed(src, timeout=600):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = src.qmp.cmd('query-migrate')
        status = info.get('status')
        if status == 'completed':
            return info
        if status in ('failed', 'cancelled'):
            raise QMPError(f"migration {status}: {info.get('error-desc', '')}")
        time.sleep(0.02)
    raise QMPError('migration did not complete in time')


def set_multifd(p, channels):
    p.qmp.cmd('migrate-set-capabilities',
              capabilities=[{'capability': 'multifd', 'state': True}])
    p.qmp.cmd('migrate-set-parameters', **{'multifd-channels': channels})


def run_socket(vmm, ram, size, channels, regime='prealloc', settle=0):
    """One migration of @ram; the destination's memory in @regime,
    prepared just before it starts."""
    port = free_port()
    uri = f'tcp:127.0.0.1:{port}'
    src = vmm.start(ram, size)
    dst = None
    try:
        prepare(regime, size, settle)
        dst = vmm.start('dest', size, incoming='defer',
                        prealloc=regime == 'prealloc')
        for p in (src, dst):
            # Unlimited bandwidth and a generous downtime: measure the wire.
            p.qmp.cmd('migrate-set-parameters',
                      **{'max-bandwidth': 1 << 40, 'downtime-limit': 100000})
            if channels > 1:
                set_multifd(p, channels)
        dst.qmp.cmd('migrate-incoming', uri=uri)
        cpu0 = src.cpu() + dst.cpu()
        start = time.monotonic()
        src.qmp.cmd('migrate', uri=uri)
        info = wait_completed(src)
        wall = time.monotonic() - start
        dwait = time.monotonic() + 60
        while dst.qmp.cmd('query-migrate').get('status') != 'completed':
            if time.monotonic() > dwait:
                raise QMPError('destination did not complete')
            time.sleep(0.01)
        # The wall clock when a VMM reports no total-time (or 0).
        total_ms = info.get('total-time') or wall * 1000
        return {'total': total_ms / 1000, 'gibs': size / GIB / (total_ms / 1000),
                'downtime': info.get('downtime', 0),
                'cpu': (src.cpu() + dst.cpu() - cpu0) / (size / GIB)}
    finally:
        src.stop()
        if dst:
            dst.stop()


def set_mapped_ram(p, channels, direct_io=False):
    """mapped-ram, with multifd when @channels > 1."""
    p.qmp.cmd('migrate-set-capabilities',
              capabilities=[{'capability': 'mapped-ram', 'state': True}])
    if direct_io:
        p.qmp.cmd('migrate-set-parameters', **{'direct-io': True})
    if channels > 1:
        set_multifd(p, channels)


def run_file(vmm, ram, size, path, mapped=0, direct_io=False):
    """Save to @path and load it; @mapped: mapped-ram with that many
    writers and readers (0: the plain stream), past the page cache with
    @direct_io."""
    if os.path.exists(path):
        os.unlink(path)
    if vmm.name == 'qemu':
        out_uri = f'exec:cat > {path}'
        in_uri = f'exec:cat {path}'
    else:
        out_uri = in_uri = f'file:{path}'
    src = vmm.start(ram, size)
    try:
        src.qmp.cmd('migrate-set-parameters', **{'max-bandwidth': 1 << 40})
        if mapped:
            set_mapped_ram(src, mapped, direct_io)
        cpu0 = src.cpu()
        start = time.monotonic()
        src.qmp.cmd('migrate', uri=out_uri)
        wait_completed(src)
        save = time.monotonic() - start
        cpu_src = src.cpu() - cpu0
    finally:
        src.stop()
    dst = vmm.start('dest', size, incoming='defer', prealloc=True)
    try:
        if mapped:
            set_mapped_ram(dst, mapped, direct_io)
        cpu0 = dst.cpu()
        start = time.monotonic()
        dst.qmp.cmd('migrate-incoming', uri=in_uri)
        deadline = time.monotonic() + 600
        while dst.qmp.cmd('query-migrate').get('status') != 'completed':
            if time.monotonic() > deadline:
                raise QMPError('load did not complete')
            time.sleep(0.01)
        load = time.monotonic() - start
        cpu_dst = dst.cpu() - cpu0
    finally:
        dst.stop()
        os.unlink(path)
    return {'save': save, 'load': load, 'total': save + load,
            'gibs': size / GIB / (save + load), 'downtime': None,
            'cpu': (cpu_src + cpu_dst) / (size / GIB)}


def med(vals, fmt):
    """median [min-max] of @vals"""
    if not vals:
        return '-'
    m = fmt.format(statistics.median(vals))
    return m if len(vals) == 1 else \
        f'{m} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]'


def run_pairs(vmms, runs, fn):
    """@runs rounds of @fn(vmm) for every VMM, who goes first alternating;
    {vmm name: [results]}, with the runs that failed as QMPError text."""
    out = {v.name: [] for v in vmms}
    errors = []
    for i in range(runs):
        for vmm in (vmms if i % 2 == 0 else vmms[::-1]):
            try:
                out[vmm.name].append(fn(vmm))
            except (QMPError, OSError, ArithmeticError) as e:
                errors.append(f'{vmm.name}: {type(e).__name__}: {e}')
                out[vmm.name].append(None)
    return out, errors


def print_cell(label, res, errors, limit=None):
    """One row per VMM, then vmig/QEMU over the pairs."""
    for name, rs in res.items():
        ok = [r for r in rs if r]
        if not ok:
            print(f'{name:5} {label:34} failed')
            continue
        g = [r['gibs'] for r in ok]
        pct = (f"{statistics.median(g) / limit * 100:5.0f}%" if limit
               else '     -')
        down = [r['downtime'] for r in ok if r['downtime'] is not None]
        print(f"{name:5} {label:34} {med(g, '{:.2f}'):>18} {pct} "
              f"{med([r['total'] for r in ok], '{:.2f}'):>18} "
              + (f"{statistics.median(down):9.0f} " if down else f"{'-':>9} ") +
              f"{med([r['cpu'] for r in ok], '{:.2f}'):>18}", flush=True)
    if 'qemu' in res and 'vmig' in res:
        ratios = [v['gibs'] / q['gibs'] for v, q in zip(res['vmig'], res['qemu'])
                  if v and q]
        cpu = [v['cpu'] / q['cpu'] for v, q in zip(res['vmig'], res['qemu'])
               if v and q and q['cpu'] > 0]
        if ratios:
            print(f"{'':5} {'  vmig/QEMU':34} throughput {med(ratios, '{:.2f}')}x, "
                  f"CPU/GiB {med(cpu, '{:.2f}')}x", flush=True)
    for e in errors:
        print(f'{"":5} a run failed: {e}')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--size', default='2G')
    ap.add_argument('--repeat', type=int, default=3,
                    help='pairs per cell; the median is shown')
    ap.add_argument('--settle', type=float, default=10,
                    help='seconds of quiet before a "settled" run')
    ap.add_argument('--regime', action='append', choices=REGIMES)
    ap.add_argument('--ram', action='append',
                    choices=('random', 'zero', 'zero-file'))
    ap.add_argument('--channels', action='append', type=int)
    ap.add_argument('--quick', action='store_true', help='256M, no QEMU')
    ap.add_argument('--file-only', action='store_true',
                    help='only the file save+load rows')
    ap.add_argument('--socket-only', action='store_true',
                    help='only the loopback TCP rows')
    args = ap.parse_args()
    size = int(args.size[:-1]) << {'M': 20, 'G': 30}[args.size[-1]]
    if args.quick:
        size = 256 << 20
    regimes = args.regime or list(REGIMES)
    rams = args.ram or ['random', 'zero', 'zero-file']
    channel_counts = args.channels or [1, 2, 4]
    vmig = os.path.join(args.build, 'vmig')
    qemu = None if args.quick else shutil.which('qemu-system-x86_64')
    workdir = tempfile.mkdtemp(prefix='vmig-bench-')
    lim_gib = max(1, size // GIB)
    try:
        rand = os.path.join(workdir, 'random.img')
        with open(rand, 'wb') as f:
            left = size
            while left:
                n = min(left, 64 << 20)
                f.write(os.urandom(n))
                left -= n
            # On disk before any run, so no run competes with writeback.
            f.flush()
            os.fsync(f.fileno())
        runs = max(1, args.repeat)
        print(f'Migration of {size / GIB:g} GiB, paused VM, loopback TCP, '
              f'{os.cpu_count()} CPUs; {runs} interleaved pair(s) per cell, '
              f'median [min-max]; load average {loadavg()}')
        limits = [loopback_limit(args.build, 1 if args.quick else 4),
                  loopback_limit(args.build, lim_gib, fresh=True)]
        print(f'limits before: loopback TCP stream {limits[0]:.2f} GiB/s, '
              f'into fresh memory {limits[1]:.2f} GiB/s')
        vmms = [Vmm('vmig', vmig, workdir)]
        if qemu:
            vmms.append(Vmm('qemu', qemu, workdir))
        else:
            print('(QEMU not installed: apt-get install qemu-system-x86 to '
                  'compare against it)')
        print()
        hdr = (f"{'vmm':5} {'RAM / regime / transport':34} {'GiB/s':>18} "
               f"{'%lim':>6} {'total s':>18} {'downtime':>9} "
               f"{'CPU s/GiB (both)':>18}")
        print(hdr)
        print('-' * len(hdr))
        zero_file = os.path.join(workdir, 'zero.img')
        with open(zero_file, 'wb') as f:
            f.truncate(size)
        # Into the page cache now, so that no VMM pays for filling it.
        with open(zero_file, 'rb') as f:
            while f.read(64 << 20):
                pass
        cells = []
        for ram_name in rams:
            ram = {'random': rand, 'zero': 'zero', 'zero-file': zero_file}[ram_name]
            for regime in (regimes if ram_name == 'random' else ['prealloc']):
                for channels in channel_counts:
                    cells.append((ram_name, ram, regime, channels))
        for ram_name, ram, regime, channels in [] if args.file_only else cells:
            label = (f"{ram_name} / {regime} / "
                     f"{'tcp' if channels == 1 else f'multifd x{channels}'}")
            # The wire's limit for this cell, measured just before its
            # runs (the machine is shared: a limit from minutes ago may
            # say little); zero pages do not go on the wire.
            limit = (loopback_limit(args.build, 1 if args.quick else 2)
                     if ram_name == 'random' else None)
            res, errors = run_pairs(vmms, runs, lambda vmm: run_socket(
                vmm, ram, size, channels, regime, args.settle))
            print_cell(label, res, errors, limit)
        # (vmm, mapped-ram writers, direct-io): QEMU 7.2 has only the
        # plain stream.
        file_rows = [(0, False)] + [(n, d) for d in (False, True)
                                    for n in (1, 2, 4)]
        for mapped, direct in [] if args.socket_only else file_rows:
            label = (f"random / prealloc / mapped x{mapped}"
                     f"{'+dio' if direct else ''}" if mapped
                     else 'random / prealloc / file')
            who = vmms if not mapped else vmms[:1]
            res, errors = run_pairs(who, runs, lambda vmm: run_file(
                vmm, rand, size, os.path.join(workdir, 'state.bin'),
                mapped, direct))
            print_cell(label, res, errors)
        limits = [loopback_limit(args.build, 1 if args.quick else 4),
                  loopback_limit(args.build, lim_gib, fresh=True)]
        print(f'\nlimits after: loopback TCP stream {limits[0]:.2f} GiB/s, '
              f'into fresh memory {limits[1]:.2f} GiB/s; load average '
              f'{loadavg()}')
        print('%lim: the median GiB/s as a share of the loopback stream '
              'limit measured just before the cell (random RAM only: zero '
              'pages are not sent).  A destination with fresh memory may '
              'beat "into fresh memory", which faults on the reading thread '
              'alone')
        if qemu:
            print("QEMU's file row uses exec:cat (7.2 has neither file: nor "
                  "mapped-ram); its CPU includes that child")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
