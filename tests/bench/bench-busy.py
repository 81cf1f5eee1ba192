#!/usr/bin/env python3
"""A guest that dirties as fast as the link carries: what each way out
costs (issue 14's benchmark).

A VM whose stress guest rewrites all of its RAM at --rate (default 2 GiB
of RAM at 1 GiB/s) migrates over loopback TCP to a vmig on the same
machine.  The link is max-bandwidth (and max-postcopy-bandwidth for the
background push after a postcopy switch) set to --link (1 GiB/s): the
dirty rate equals the link, so plain precopy never ends; it is bounded
at --precopy-bound seconds (60) and cancelled.  Methods, each with
QEMU's default parameters:

  precopy          nothing set: does not finish
  auto-converge    the capability
  dirty-limit      the capability (vcpu-dirty-limit 1 MB/s per vCPU)
  postcopy         postcopy-ram; migrate-start-postcopy after the first
                   pass (dirty-sync-count 2)
  postcopy+preempt the same with postcopy-preempt (the pages asked for
                   go on their own connection, which max-postcopy-bandwidth
                   does not limit)

Columns: total time, downtime (source's query-migrate), the guest's own
throughput during the migration (pages it wrote from `migrate` to the
source's `completed`, on either side, per second) as a share of its rate
in the 2 s before, and for postcopy the destination's
x-postcopy-fault-wait: p50, p99 and the longest time a vCPU waited for a
faulted page.  Every completed run ends with x-guest-verify on the
destination ("ok" column).

The methods run in rounds (--repeat, 3), the order rotated each round,
so that none always runs first or last; each cell is the median
[min-max] of its runs.  The load average is printed before and after:
the machine may be shared.

Usage: bench-busy.py [BUILD_DIR] [--size 2G] [--rate 1G] [--link 1G]
                     [--repeat 3] [--precopy-bound 60] [--method NAME]...
                     [--quick]
"""
import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, '..', '..', 'scripts'))
from qmp import QMPError, Vmig  # noqa: E402

# Shared with bench-migration.py: the loopback limit, a free port, the load.
_spec = importlib.util.spec_from_file_location(
    'bench_migration', os.path.join(here, 'bench-migration.py'))
bm = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bm)
free_port = bm.free_port
loadavg = bm.loadavg

GIB = 1 << 30
PAGE = 4096

METHODS = {
    'precopy': {},
    'auto-converge': {'src_caps': ['auto-converge']},
    'dirty-limit': {'src_caps': ['dirty-limit']},
    'postcopy': {'caps': ['postcopy-ram'], 'postcopy': True},
    'postcopy+preempt': {'caps': ['postcopy-ram', 'postcopy-preempt'],
                         'postcopy': True},
}


def size_arg(text):
    return int(text[:-1]) << {'K': 10, 'M': 20, 'G': 30}[text[-1].upper()]


def pages_written(vm):
    return vm.qmp.cmd('x-query-guest')['pages-written']


def set_caps(vm, names):
    vm.qmp.cmd('migrate-set-capabilities',
               capabilities=[{'capability': n, 'state': True} for n in names])


def one_run(args, tmp, name, n):
    method = METHODS[name]
    guest = ['-m', f'{args.size >> 20}M', '-smp', '2', '-guest',
             f'stress,rate={args.rate}']
    port = free_port()
    uri = f'tcp:127.0.0.1:{port}'
    vms = []
    try:
        dst = Vmig(args.vmig, tmp, f'dst{n}', guest + ['-incoming', 'defer'])
        vms.append(dst)
        src = Vmig(args.vmig, tmp, f'src{n}', guest)
        vms.append(src)
        caps = ['return-path'] + method.get('caps', [])
        set_caps(src, caps + method.get('src_caps', []))
        set_caps(dst, caps + (['postcopy-blocktime']
                              if method.get('postcopy') else []))
        src.qmp.cmd('migrate-set-parameters',
                    **{'max-bandwidth': args.link,
                       'max-postcopy-bandwidth': args.link})
        # Past the guest's first pass over RAM (its memory is all there),
        # then its own rate, unmigrated.
        deadline = time.monotonic() + 120
        while pages_written(src) < args.size // PAGE:
            if time.monotonic() > deadline:
                raise QMPError('the guest did not write its RAM once in 120 s')
            time.sleep(0.1)
        t0, p0 = time.monotonic(), pages_written(src)
        time.sleep(2)
        t1, p1 = time.monotonic(), pages_written(src)
        before = (p1 - p0) / (t1 - t0)

        dst.qmp.cmd('migrate-incoming', uri=uri)
        p_start = pages_written(src)
        t_start = time.monotonic()
        src.qmp.cmd('migrate', uri=uri)
        bound = args.precopy_bound if name == 'precopy' else args.bound
        switched = False
        while True:
            info = src.qmp.cmd('query-migrate')
            status = info['status']
            if status in ('completed', 'failed', 'cancelled'):
                break
            if (method.get('postcopy') and not switched and
                    info.get('ram', {}).get('dirty-sync-count', 0) >= 2):
                src.qmp.cmd('migrate-start-postcopy')
                switched = True
            if time.monotonic() - t_start > bound:
                if status.startswith('postcopy'):
                    raise QMPError(f'postcopy not done in {bound} s')
                p_end = pages_written(src)
                t_end = time.monotonic()
                src.qmp.cmd('migrate_cancel')
                return {'done': False, 'total': t_end - t_start,
                        'guest': (p_end - p_start) / (t_end - t_start) /
                        before * 100, 'before': before,
                        'passes': info['ram']['dirty-sync-count']}
            time.sleep(0.02)
        if status != 'completed':
            raise QMPError(f"{status}: {info.get('error-desc', '')}")
        t_end = time.monotonic()
        # The guest's counters travel with it: the destination's count
        # continues the source's.
        p_end = pages_written(dst)
        dinfo = dst.qmp.cmd('query-migrate')
        r = {'done': True, 'total': info['total-time'] / 1000,
             'downtime': info.get('downtime', 0),
             'guest': (p_end - p_start) / (t_end - t_start) / before * 100,
             'before': before, 'passes': info['ram']['dirty-sync-count'],
             'requests': info['ram'].get('postcopy-requests', 0)}
        fw = dinfo.get('x-postcopy-fault-wait')
        if fw:
            r.update({'p50': fw['p50'], 'p99': fw['p99'], 'max': fw['max'],
                      'waits': fw['count']})
        r['ok'] = dst.qmp.cmd('x-guest-verify')['ok']
        return r
    finally:
        for vm in vms:
            vm.quit()


def cell(runs, key, fmt='{:.0f}'):
    vals = [r[key] for r in runs if key in r]
    if not vals:
        return '-'
    med = fmt.format(statistics.median(vals))
    if len(vals) == 1:
        return med
    return f'{med} [{fmt.format(min(vals))}-{fmt.format(max(vals))}]'


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('build', nargs='?', default='build')
    ap.add_argument('--size', default='2G')
    ap.add_argument('--rate', default='1G',
                    help="the stress guest's write rate (bytes/s)")
    ap.add_argument('--link', default='1G',
                    help='max-bandwidth and max-postcopy-bandwidth (bytes/s)')
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--precopy-bound', type=float, default=60)
    ap.add_argument('--bound', type=float, default=300,
                    help='seconds after which any other method counts as hung')
    ap.add_argument('--method', action='append', choices=list(METHODS))
    ap.add_argument('--quick', action='store_true',
                    help='512M at 256M/s over 256M/s, 1 round, 10 s bound')
    args = ap.parse_args()
    if args.quick:
        args.size, args.rate, args.link = '512M', '256M', '256M'
        args.repeat, args.precopy_bound = 1, 10
    args.size = size_arg(args.size)
    rate = args.rate
    args.link = size_arg(args.link)
    args.vmig = os.path.join(args.build, 'vmig')
    methods = args.method or list(METHODS)
    print(f'A busy guest: -m {args.size >> 20}M -smp 2 -guest stress,'
          f'rate={rate} (all of RAM), link max-bandwidth = '
          f'max-postcopy-bandwidth = {args.link / GIB:g} GiB/s, loopback TCP, '
          f'{os.cpu_count()} CPUs; {args.repeat} round(s), order rotated; '
          f'median [min-max]; precopy cancelled after {args.precopy_bound:g} s')
    print(f'load average before: {loadavg()}')
    limit = bm.loopback_limit(args.build, 1)
    print(f'loopback TCP limit (one stream, same run): {limit:.2f} GiB/s, '
          f'the link {args.link / GIB:g} GiB/s')
    results = {m: [] for m in methods}
    errors = {m: [] for m in methods}
    with tempfile.TemporaryDirectory(prefix='vmig-bench-busy-') as tmp:
        n = 0
        for rnd in range(args.repeat):
            k = rnd % len(methods)
            for name in methods[k:] + methods[:k]:
                n += 1
                try:
                    r = one_run(args, tmp, name, n)
                    results[name].append(r)
                    what = (f"{r['total']:.1f} s" if r['done'] else
                            'not done, cancelled')
                except QMPError as e:
                    errors[name].append(str(e))
                    what = f'failed: {e}'
                print(f'  round {rnd + 1}: {name}: {what} '
                      f'(load {loadavg()})', flush=True)
    print()
    hdr = (f"{'method':17} {'total s':>16} {'downtime ms':>14} "
           f"{'guest % of before':>17} {'fault wait us p50':>17} "
           f"{'p99':>17} {'max':>17} {'passes':>7} {'ok':>4}")
    print(hdr)
    print('-' * len(hdr))
    for name in methods:
        runs = results[name]
        if not runs:
            print(f'{name:17} failed: {"; ".join(errors[name])}')
            continue
        done = [r for r in runs if r['done']]
        total = (cell(runs, 'total', '{:.1f}') if done
                 else f"never (>{args.precopy_bound:g})")
        ok = (f"{sum(r['ok'] for r in done)}/{len(done)}" if done else '-')
        print(f"{name:17} {total:>16} {cell(done, 'downtime'):>14} "
              f"{cell(runs, 'guest'):>17} {cell(runs, 'p50'):>17} "
              f"{cell(runs, 'p99'):>17} {cell(runs, 'max'):>17} "
              f"{cell(runs, 'passes'):>7} {ok:>4}")
        for e in errors[name]:
            print(f'{"":17} a run failed: {e}')
    befores = [r['before'] for rs in results.values() for r in rs]
    if befores:
        print(f"\nthe guest's own rate before migrating: "
              f"{statistics.median(befores) * PAGE / GIB:.2f} GiB/s median "
              f"[{min(befores) * PAGE / GIB:.2f}-{max(befores) * PAGE / GIB:.2f}]"
              f" (asked: {rate}/s)")
    pc = [r for m in methods if m.startswith('postcopy') for r in results[m]]
    if pc:
        print('postcopy page requests / fault waits counted: ' +
              ', '.join(f"{r['requests']}/{r.get('waits', 0)}" for r in pc))
    print(f'load average after: {loadavg()}')


if __name__ == '__main__':
    main()
