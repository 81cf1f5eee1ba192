#!/usr/bin/env python3
"""Migration throughput: vmig against Debian's QEMU on the same machine.

2 GiB of incompressible guest RAM (a memory-backend-file filled from
/dev/urandom, share=off) or all-zero RAM (untouched anonymous memory,
and "zero-file": a sparse file mapped share=off, whose every page must be
read to find it is zero), paused VM, loopback TCP, with
one channel and with multifd 2 and 4; then save to a file and load from
it: the plain stream, and vmig's mapped-ram with one writer and with
multifd 2 and 4 (pages at fixed offsets, written and read in parallel),
through the page cache and with direct-io.
For each: total time, GiB/s, downtime, and CPU seconds on each side.
The loopback TCP limit measured in the same run is printed first.

Every row is the median of --repeat runs (3 by default; the range of
their GiB/s follows it): on a virtual machine the first run after a pause
can pay several seconds for host memory that the guest kernel gave back,
whichever VMM it is, and a single run would charge that to one of them.

QEMU runs the same scenarios when qemu-system-x86_64 is installed
(apt-get install qemu-system-x86); QEMU 7.2 has no file: transport, so
its file rows use exec:cat, which is what users of 7.2 do (it has no
mapped-ram either).

Usage: bench-migration.py [BUILD_DIR] [--size 2G] [--repeat 3] [--quick]
                           [--file-only]
"""
import argparse
import os
import shutil
import socket
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
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loopback_limit(build, gib):
    """One TCP stream over loopback (tests/bench/loopback-limit.c)."""
    out = subprocess.run([os.path.join(build, 'tests', 'bench', 'loopback-limit'),
                          str(gib)], capture_output=True, text=True, check=True)
    return float(out.stdout)


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

    def start(self, ram, size, incoming=None):
        self.n += 1
        qmp = os.path.join(self.workdir, f'{self.name}-{self.n}.qmp')
        if ram == 'zero' or ram == 'dest':
            backend = f'memory-backend-ram,id=mem,size={size}'
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


def median_run(runs, fn):
    """Call @fn @runs times; the run of median GiB/s, with the range of
    all of them in 'spread'."""
    results = sorted((fn() for _ in range(runs)), key=lambda r: r['gibs'])
    r = dict(results[len(results) // 2])
    r['spread'] = (f"{results[0]['gibs']:.2f}-{results[-1]['gibs']:.2f}"
                   if runs > 1 else '')
    return r


def set_multifd(p, channels):
    p.qmp.cmd('migrate-set-capabilities',
              capabilities=[{'capability': 'multifd', 'state': True}])
    p.qmp.cmd('migrate-set-parameters', **{'multifd-channels': channels})


def run_socket(vmm, ram, size, channels):
    port = free_port()
    uri = f'tcp:127.0.0.1:{port}'
    dst = vmm.start('dest', size, incoming='defer')
    src = vmm.start(ram, size)
    try:
        for p in (src, dst):
            # Unlimited bandwidth and a generous downtime: measure the wire.
            p.qmp.cmd('migrate-set-parameters',
                      **{'max-bandwidth': 1 << 40, 'downtime-limit': 100000})
            if channels > 1:
                set_multifd(p, channels)
        dst.qmp.cmd('migrate-incoming', uri=uri)
        start = time.monotonic()
        src.qmp.cmd('migrate', uri=uri)
        info = wait_completed(src)
        wall = time.monotonic() - start
        dwait = time.monotonic() + 60
        while dst.qmp.cmd('query-migrate').get('status') != 'completed':
            if time.monotonic() > dwait:
                raise QMPError('destination did not complete')
            time.sleep(0.01)
        total_ms = info.get('total-time', wall * 1000)
        return {'total': total_ms / 1000, 'gibs': size / GIB / (total_ms / 1000),
                'downtime': info.get('downtime', 0), 'cpu_src': src.cpu(),
                'cpu_dst': dst.cpu()}
    finally:
        src.stop()
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
        start = time.monotonic()
        src.qmp.cmd('migrate', uri=out_uri)
        wait_completed(src)
        save = time.monotonic() - start
        cpu_src = src.cpu()
    finally:
        src.stop()
    dst = vmm.start('dest', size, incoming='defer')
    try:
        if mapped:
            set_mapped_ram(dst, mapped, direct_io)
        start = time.monotonic()
        dst.qmp.cmd('migrate-incoming', uri=in_uri)
        deadline = time.monotonic() + 600
        while dst.qmp.cmd('query-migrate').get('status') != 'completed':
            if time.monotonic() > deadline:
                raise QMPError('load did not complete')
            time.sleep(0.01)
        load = time.monotonic() - start
        cpu_dst = dst.cpu()
    finally:
        dst.stop()
        os.unlink(path)
    return {'save': save, 'load': load, 'gibs': size / GIB / (save + load),
            'cpu_src': cpu_src, 'cpu_dst': cpu_dst}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--size', default='2G')
    ap.add_argument('--repeat', type=int, default=3,
                    help='runs per row; the median is shown')
    ap.add_argument('--quick', action='store_true', help='256M, no QEMU')
    ap.add_argument('--file-only', action='store_true',
                    help='only the file save+load rows')
    args = ap.parse_args()
    size = int(args.size[:-1]) << {'M': 20, 'G': 30}[args.size[-1]]
    if args.quick:
        size = 256 << 20
    vmig = os.path.join(args.build, 'vmig')
    qemu = None if args.quick else shutil.which('qemu-system-x86_64')
    workdir = tempfile.mkdtemp(prefix='vmig-bench-')
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
              f'{os.cpu_count()} CPUs; median of {runs} runs per row')
        print(f'loopback TCP limit (one stream, 4 MiB writes): '
              f'{loopback_limit(args.build, 1 if args.quick else 4):.2f} GiB/s')
        vmms = [Vmm('vmig', vmig, workdir)]
        if qemu:
            vmms.append(Vmm('qemu', qemu, workdir))
        else:
            print('(QEMU not installed: apt-get install qemu-system-x86 to '
                  'compare against it)')
        print()
        hdr = (f"{'vmm':6} {'RAM':9} {'transport':13} {'total s':>8} "
               f"{'GiB/s':>7} {'downtime ms':>12} {'CPU src s':>10} {'CPU dst s':>10}"
               f"  {'GiB/s range':11}")
        print(hdr)
        print('-' * len(hdr))
        results = {}
        zero_file = os.path.join(workdir, 'zero.img')
        with open(zero_file, 'wb') as f:
            f.truncate(size)
        # Into the page cache now, so that no VMM pays for filling it.
        with open(zero_file, 'rb') as f:
            while f.read(64 << 20):
                pass
        for ram_name, ram in () if args.file_only else (
                ('random', rand), ('zero', 'zero'), ('zero-file', zero_file)):
            for channels in (1, 2, 4):
                # Alternate who goes first: the first run after a change of
                # RAM kind tends to pay for fresh host memory.
                for vmm in vmms if channels == 2 else vmms[::-1]:
                    label = 'tcp' if channels == 1 else f'multifd x{channels}'
                    try:
                        r = median_run(runs, lambda: run_socket(
                            vmm, ram, size, channels))
                    except QMPError as e:
                        print(f'{vmm.name:6} {ram_name:9} {label:13} failed: {e}')
                        continue
                    results[(vmm.name, ram_name, channels)] = r['gibs']
                    print(f"{vmm.name:6} {ram_name:9} {label:13} {r['total']:8.2f} "
                          f"{r['gibs']:7.2f} {r['downtime']:12.0f} "
                          f"{r['cpu_src']:10.2f} {r['cpu_dst']:10.2f}"
                          f"  {r['spread']}", flush=True)
        # (vmm, mapped-ram writers, direct-io): QEMU 7.2 has only the
        # plain stream.
        file_runs = [(vmm, 0, False) for vmm in vmms] + \
            [(vmms[0], n, d) for d in (False, True) for n in (1, 2, 4)]
        for vmm, mapped, direct in file_runs:
            label = (f"mapped x{mapped}{'+dio' if direct else ''}"
                     if mapped else 'file')
            try:
                r = median_run(runs, lambda: run_file(
                    vmm, rand, size, os.path.join(workdir, 'state.bin'),
                    mapped, direct))
            except QMPError as e:
                print(f'{vmm.name:6} random    {label:13} failed: {e}')
                continue
            results[(vmm.name, 'file', mapped, direct)] = r['gibs']
            print(f"{vmm.name:6} random    {label:13} "
                  f"{r['save'] + r['load']:8.2f} {r['gibs']:7.2f} "
                  f"{'-':>12} {r['cpu_src']:10.2f} {r['cpu_dst']:10.2f}"
                  f"  {r['spread']:11}  (save {r['save']:.2f} s, "
                  f"load {r['load']:.2f} s)",
                  flush=True)
        if qemu:
            print('\nvmig / QEMU throughput:')
            for key in sorted(k for k in results if k[0] == 'vmig'):
                # Every file row against QEMU's only one, exec:cat.
                q = results.get(('qemu', 'file', 0, False) if key[1] == 'file'
                                else ('qemu',) + key[1:])
                if q:
                    if key[1] == 'file':
                        what = (f"file, mapped-ram x{key[2]}"
                                f"{' direct-io' if key[3] else ''}"
                                if key[2] else 'file (save+load)')
                    else:
                        what = f"{key[1]}, {'tcp' if key[2] == 1 else f'multifd x{key[2]}'}"
                    print(f'  {what:30} {results[key] / q:5.2f}x')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
