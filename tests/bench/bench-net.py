#!/usr/bin/env python3
"""Migration over TLS and over shaped links.

1. TLS against plain text on loopback TCP: 1 GiB of incompressible RAM,
   paused VM, one channel and multifd 2 and 4, vmig's plain and TLS
   (x509, the GnuTLS default priority: AES-GCM on this CPU) runs
   interleaved in pairs, and Debian's QEMU with the same certificates
   when it is installed.  Median GiB/s [min-max] of --repeat pairs, CPU
   seconds of both sides, and TLS as a share of plain.
2. Two hosts (network namespaces joined by a veth pair, root only): the
   link shaped by a TBF qdisc to 1 Gbit/s and 10 Gbit/s; migration
   throughput (one channel, and multifd 2) as a share of the link rate.
3. The time from a cut link (the destination's end down) to `failed` on
   the source, at the default x-channel-timeout, during an active
   migration.

Usage: bench-net.py [BUILD_DIR] [--repeat 3] [--size 1G] [--quick]
"""
import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    'bench_migration', os.path.join(here, 'bench-migration.py'))
bm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bm)
QMPError = bm.QMPError
GIB = bm.GIB


def start(binary, name, workdir, ram, size, extra=(), incoming=None,
          netns=None):
    """A paused VM of @size with @ram (a file, or 'dest')."""
    start.n = getattr(start, 'n', 0) + 1
    qmp = os.path.join(workdir, f'{name}-{start.n}.qmp')
    if ram == 'dest':
        backend = f'memory-backend-ram,id=mem,size={size}'
    else:
        backend = (f'memory-backend-file,id=mem,size={size},'
                   f'mem-path={ram},share=off')
    argv = [binary, '-qmp', f'unix:{qmp},server=on,wait=off', '-S',
            '-object', backend, '-machine', 'none,memory-backend=mem',
            '-m', str(size >> 20)] + list(extra)
    if name == 'qemu':
        argv += ['-display', 'none', '-nodefaults', '-accel', 'tcg']
    if incoming:
        argv += ['-incoming', incoming]
    if netns:
        argv = ['ip', 'netns', 'exec', netns] + argv
    return bm.Proc(argv, qmp)


def migrate(src, dst, uri, size, channels=1, params=None):
    """Run one migration; GiB/s, seconds and CPU of both sides."""
    try:
        for p in (src, dst):
            p.qmp.cmd('migrate-set-parameters',
                      **{'max-bandwidth': 1 << 40, 'downtime-limit': 100000,
                         **(params or {})})
            if channels > 1:
                bm.set_multifd(p, channels)
        dst.qmp.cmd('migrate-incoming', uri=uri)
        src.qmp.cmd('migrate', uri=uri)
        info = bm.wait_completed(src)
        secs = info['total-time'] / 1000
        return {'gibs': size / GIB / secs, 'secs': secs,
                'cpu': src.cpu() + dst.cpu()}
    finally:
        src.stop()
        dst.stop()


def tls_args(certs, server):
    sub, endpoint = ('server', 'server') if server else ('client', 'client')
    return ['-object', f'tls-creds-x509,id=tls0,dir={certs}/{sub},'
            f'endpoint={endpoint}']


def run_loopback(vmm, binary, workdir, rand, size, channels, tls, certs):
    port = bm.free_port()
    uri = f'tcp:127.0.0.1:{port}'
    dst = start(binary, vmm, workdir, 'dest', size,
                tls_args(certs, True) if tls else (), incoming='defer')
    src = start(binary, vmm, workdir, rand, size,
                tls_args(certs, False) if tls else ())
    params = ({'tls-creds': 'tls0'} if tls else {})
    if tls:
        src.qmp.cmd('migrate-set-parameters',
                    **{'tls-hostname': 'migration.vmig.test'})
    return migrate(src, dst, uri, size, channels, params)


def summary(results):
    g = sorted(r['gibs'] for r in results)
    cpu = sorted(r['cpu'] for r in results)
    return g[len(g) // 2], g[0], g[-1], cpu[len(cpu) // 2]


def sh(*argv):
    subprocess.run(argv, check=True, capture_output=True)


class Hosts:
    """Two network namespaces joined by a veth pair, 198.18.0.1 and .2."""

    def __init__(self, rate):
        tag = f'vmig-b{os.getpid()}'
        self.ns = [f'{tag}-a', f'{tag}-b']
        self.dev = ['vba', 'vbb']
        for ns in self.ns:
            sh('ip', 'netns', 'add', ns)
        sh('ip', 'link', 'add', self.dev[0], 'netns', self.ns[0], 'type',
           'veth', 'peer', 'name', self.dev[1], 'netns', self.ns[1])
        for i in range(2):
            sh('ip', '-n', self.ns[i], 'addr', 'add', f'198.18.0.{i + 1}/24',
               'dev', self.dev[i])
            sh('ip', '-n', self.ns[i], 'link', 'set', self.dev[i], 'up')
            sh('ip', '-n', self.ns[i], 'link', 'set', 'lo', 'up')
            if rate:
                bps = int(rate[:-4]) * 10**9 // 8
                burst = max(bps // 1000, 2 * 65536 + 4096)
                sh('tc', '-n', self.ns[i], 'qdisc', 'add', 'dev', self.dev[i],
                   'root', 'tbf', 'rate', rate, 'burst', str(burst),
                   'latency', '50ms')

    def cut(self):
        sh('ip', '-n', self.ns[1], 'link', 'set', self.dev[1], 'down')

    def close(self):
        for ns in self.ns:
            subprocess.run(['ip', 'netns', 'del', ns], capture_output=True)


def can_netns():
    return os.geteuid() == 0 and shutil.which('ip') and shutil.which('tc')


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--size', default='1G')
    ap.add_argument('--quick', action='store_true', help='256M, 1 pair')
    args = ap.parse_args()
    size = int(args.size[:-1]) << {'M': 20, 'G': 30}[args.size[-1]]
    runs = args.repeat
    if args.quick:
        size, runs = 256 << 20, 1
    vmig = os.path.join(args.build, 'vmig')
    qemu = shutil.which('qemu-system-x86_64')
    workdir = tempfile.mkdtemp(prefix='vmig-bench-net-')
    try:
        certs = os.path.join(workdir, 'certs')
        subprocess.run([os.path.join(args.build, 'tests', 'bench',
                                     'make-tls-certs'), certs], check=True)
        rand = os.path.join(workdir, 'random.img')
        with open(rand, 'wb') as f:
            for _ in range(size // (64 << 20) or 1):
                f.write(os.urandom(min(size, 64 << 20)))
            f.flush()
            os.fsync(f.fileno())
        print(f'TLS on loopback TCP: {size / GIB:g} GiB, paused VM, '
              f'{os.cpu_count()} CPUs (load average '
              f'{os.getloadavg()[0]:.1f}); plain and TLS runs interleaved, '
              f'median [min-max] of {runs}')
        print(f'loopback TCP limit (one stream): '
              f'{bm.loopback_limit(args.build, 1):.2f} GiB/s')
        hdr = (f"{'vmm':5} {'channels':9} {'plain GiB/s':>20} "
               f"{'TLS GiB/s':>20} {'TLS/plain':>9} {'CPU s plain':>11} "
               f"{'CPU s TLS':>9}")
        print(hdr)
        print('-' * len(hdr))
        vmms = [('vmig', vmig)] + ([('qemu', qemu)] if qemu else [])
        for channels in (1, 2, 4):
            for name, binary in vmms:
                plain, tls = [], []
                try:
                    for _ in range(runs):
                        plain.append(run_loopback(name, binary, workdir, rand,
                                                  size, channels, False,
                                                  certs))
                        tls.append(run_loopback(name, binary, workdir, rand,
                                                size, channels, True, certs))
                except QMPError as e:
                    print(f'{name:5} {channels:<9} failed: {e}')
                    continue
                p, t = summary(plain), summary(tls)
                print(f"{name:5} {channels:<9} "
                      f"{p[0]:7.2f} [{p[1]:.2f}-{p[2]:.2f}] "
                      f"{t[0]:7.2f} [{t[1]:.2f}-{t[2]:.2f}] "
                      f"{t[0] / p[0] * 100:8.0f}% {p[3]:11.2f} {t[3]:9.2f}",
                      flush=True)
        if not qemu:
            print('(QEMU not installed: apt-get install qemu-system-x86 to '
                  'compare against it)')
        print()
        if not can_netns():
            print('shaped links: skipped (needs root, ip and tc)')
            return
        print('Shaped links between two network namespaces (TBF, no added '
              'delay): vmig')
        hdr = (f"{'link':8} {'size':6} {'channels':9} {'GiB/s':>20} "
               f"{'% of link':>10}")
        print(hdr)
        print('-' * len(hdr))
        for rate, lsize in (('1gbit', min(size, 256 << 20)),
                            ('10gbit', size)):
            for channels in (1, 2):
                results = []
                for _ in range(runs):
                    hosts = Hosts(rate)
                    try:
                        dst = start(vmig, 'vmig', workdir, 'dest', lsize,
                                    incoming='defer', netns=hosts.ns[1])
                        src = start(vmig, 'vmig', workdir, rand, lsize,
                                    netns=hosts.ns[0])
                        results.append(migrate(src, dst,
                                               'tcp:198.18.0.2:4444', lsize,
                                               channels))
                    finally:
                        hosts.close()
                g = summary(results)
                link = int(rate[:-4]) * 10**9 / 8 / GIB
                label = 'tcp' if channels == 1 else f'multifd x{channels}'
                print(f"{rate:8} {lsize >> 20:4}M {label:9} "
                      f"{g[0]:7.3f} [{g[1]:.3f}-{g[2]:.3f}] "
                      f"{g[0] / link * 100:9.0f}%", flush=True)
        print()
        hosts = Hosts('1gbit')
        try:
            dst = start(vmig, 'vmig', workdir, 'dest', size, incoming='defer',
                        netns=hosts.ns[1])
            src = start(vmig, 'vmig', workdir, rand, size, netns=hosts.ns[0])
            try:
                for p in (src, dst):
                    p.qmp.cmd('migrate-set-parameters',
                              **{'max-bandwidth': 8 << 20})
                dst.qmp.cmd('migrate-incoming', uri='tcp:198.18.0.2:4444')
                src.qmp.cmd('migrate', uri='tcp:198.18.0.2:4444')
                time.sleep(1)
                bound = src.qmp.cmd('query-migrate-parameters')[
                    'x-channel-timeout']
                t0 = time.monotonic()
                hosts.cut()
                while True:
                    info = src.qmp.cmd('query-migrate')
                    if info['status'] in ('failed', 'completed', 'cancelled'):
                        break
                    time.sleep(0.05)
                print(f"link cut during active -> {info['status']} after "
                      f"{time.monotonic() - t0:.1f} s (x-channel-timeout "
                      f"{bound / 1000:g} s): {info.get('error-desc', '')}")
            finally:
                src.stop()
                dst.stop()
        finally:
            hosts.close()
        print(f'load average at the end: {os.getloadavg()[0]:.1f}')
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    main()
