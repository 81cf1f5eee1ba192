#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""tools/vmig-migrate and its timeline writer (suite 'tools'), as TAP.

The writer is checked on a hand-made timeline; the tool drives real vmig
processes (with vfio-user-dma device servers) over real sockets.
Environment: VMIG_BINARY, VFIO_USER_DMA, SOURCE_ROOT (set by meson).
"""
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

SOURCE_ROOT = os.environ.get('SOURCE_ROOT') or \
    os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..')
TOOL = os.path.join(SOURCE_ROOT, 'tools', 'vmig-migrate')
sys.path.insert(0, os.path.join(SOURCE_ROOT, 'tools'))
sys.path.insert(0, os.path.join(SOURCE_ROOT, 'scripts'))
from qmp import Vmig, start_device_server  # noqa: E402
import vmig_timeline  # noqa: E402

SVG = '{http://www.w3.org/2000/svg}'
MACHINE = ['-m', '128M', '-smp', '2', '-guest', 'stress,ws=64M,rate=32M']
TOOL_TIMEOUT = 240          # a bound on a hung tool, never a measurement

SAMPLE = {
    'status': 'completed', 'start': 1796537776.123456, 'total-ms': 1234.5,
    'events': [{'ms': 0.0, 'status': 'setup'}, {'ms': 3.1, 'status': 'active'},
               {'ms': 1234.5, 'status': 'completed'}],
    'passes': [
        {'index': 1, 'start-ms': 3.1, 'end-ms': 800.2, 'bytes': 123456789,
         'dirty-pages': 4567, 'dirty-rate': 33554432, 'bandwidth': 155000000},
        {'index': 2, 'start-ms': 800.2, 'end-ms': 1100.0, 'bytes': 9000000,
         'dirty-pages': 800, 'dirty-rate': 9000000, 'bandwidth': 30000000}],
    'devices': [
        {'id': 'dev0', 'arcs': [
            {'ms': 3.0, 'from': 'running', 'to': 'pre-copy', 'bytes': 0},
            {'ms': 1100.0, 'from': 'pre-copy', 'to': 'stop-copy',
             'bytes': 8388608},
            {'ms': 1130.0, 'from': 'stop-copy', 'to': 'stop',
             'bytes': 4096}]},
        # A name to escape: the SVG must still parse and show it.
        {'id': 'gpu<1>&"x"', 'arcs': [
            {'ms': 3.5, 'from': 'running', 'to': 'pre-copy', 'bytes': 0},
            {'ms': 1101.0, 'from': 'pre-copy', 'to': 'stop', 'bytes': 1}]}],
    'downtime': {'start-ms': 1100.0, 'end-ms': 1150.0, 'ms': 50.0, 'phases': [
        {'name': 'device-stop', 'start-ms': 1100.0, 'end-ms': 1105.0,
         'ms': 5.0},
        {'name': 'final-ram', 'start-ms': 1105.0, 'end-ms': 1120.0,
         'ms': 15.0},
        {'name': 'device-state', 'start-ms': 1120.0, 'end-ms': 1135.0,
         'ms': 15.0},
        {'name': 'config', 'start-ms': 1135.0, 'end-ms': 1136.0, 'ms': 1.0},
        {'name': 'destination', 'start-ms': 1136.0, 'end-ms': 1150.0,
         'ms': 14.0}]},
    'multifd': [{'channel': 0, 'samples': [{'ms': 800.2, 'bytes': 12345},
                                           {'ms': 1100.0, 'bytes': 99999}]}],
}


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def parse_svg(text):
    root = ET.fromstring(text)
    check(root.tag == SVG + 'svg', f'the root element is {root.tag}')
    return root


def by_id(root, ident):
    return root.find(f".//*[@id='{ident}']")


def texts(elem):
    return [t.text or '' for t in elem.iter(SVG + 'text')]


def run_tool(args, **kw):
    return subprocess.run([sys.executable, TOOL] + args, capture_output=True,
                          text=True, timeout=TOOL_TIMEOUT, **kw)


def check_clean_error(res, status, *words):
    """Exit @status, no traceback, the message names each of @words."""
    out = res.stdout + res.stderr
    check(res.returncode == status,
          f'exit status {res.returncode}, expected {status}: {out}')
    check('Traceback' not in out, f'a traceback: {out}')
    for w in words:
        check(w in res.stderr, f"'{w}' not in stderr: {res.stderr}")


# The writer, on the hand-made timeline.

def test_svg_sample():
    root = parse_svg(vmig_timeline.render_svg(SAMPLE))
    title = ''.join(texts(by_id(root, 'title')))
    check('completed' in title and '1.23 s' in title and '50.0 ms' in title,
          f'title: {title}')
    for dev in SAMPLE['devices']:
        lane = by_id(root, f"lane-device-{dev['id']}")
        check(lane is not None, f"no lane for {dev['id']}")
        check(any(t.startswith(dev['id']) for t in texts(lane)),
              f"lane of {dev['id']} not labelled: {texts(lane)}")
        segs = [r for r in lane.iter(SVG + 'rect')
                if r.get('class') == 'segment']
        # running before the first arc, then one segment per arc.
        check(len(segs) == len(dev['arcs']) + 1,
              f"{dev['id']}: {len(segs)} segments")
    check(by_id(root, 'lane-status') is not None, 'no status lane')
    # 50 ms of 1.23 s: the switchover is drawn again, zoomed in.
    check(by_id(root, 'switchover-lane-device-dev0') is not None,
          'no zoomed lane for dev0')
    phases = [r.get('data-phase') for r in root.iter(SVG + 'rect')
              if r.get('class') == 'phase']
    check(phases == [p['name'] for p in SAMPLE['downtime']['phases']],
          f'downtime phases {phases}')
    labels = ' '.join(texts(by_id(root, 'downtime')))
    check('final-ram  15.0 ms' in labels, f'phase labels: {labels}')
    bars = [r for r in root.iter(SVG + 'rect') if r.get('class') == 'pass']
    check(len(bars) == 2, f'{len(bars)} pass bars')
    check(by_id(root, 'dirty-rate') is not None, 'no dirty-rate line')
    check(by_id(root, 'downtime-band') is not None, 'no downtime band')
    check(by_id(root, 'multifd') is not None, 'no multifd panel')
    check(by_id(root, 'legend') is not None, 'no legend')
    check(by_id(root, 'time-axis') is not None, 'no time axis')
    for bad in ('script', 'style', 'image', 'foreignObject'):
        check(root.find(f'.//{SVG}{bad}') is None, f'an external {bad}')


def test_svg_sparse():
    """Members are absent when there is nothing to say."""
    for tl in ({}, {'status': 'setup'},
               {'status': 'failed', 'total-ms': 0.0,
                'events': [{'ms': 0.0, 'status': 'failed'}]},
               {'devices': [{'id': 'dev0', 'arcs': []}],
                'downtime': {'phases': []}}):
        parse_svg(vmig_timeline.render_svg(tl))


def test_svg_bad_input():
    try:
        vmig_timeline.render_svg({'passes': [{'start-ms': 'soon'}]})
    except ValueError as e:
        check("'passes[0].start-ms'" in str(e), f'message: {e}')
    else:
        raise AssertionError('a string start-ms was accepted')
    with tempfile.TemporaryDirectory(prefix='vmig-tools-') as tmp:
        bad = os.path.join(tmp, 'bad.json')
        with open(bad, 'w') as f:
            f.write('{"devices": 3}')
        res = subprocess.run([sys.executable,
                              os.path.join(SOURCE_ROOT, 'tools',
                                           'vmig_timeline.py'),
                              bad, os.path.join(tmp, 'out.svg')],
                             capture_output=True, text=True, timeout=60)
        check_clean_error(res, 2, "'devices' must be a list")


def test_json_roundtrip():
    with tempfile.TemporaryDirectory(prefix='vmig-tools-') as tmp:
        path = os.path.join(tmp, 't.json')
        vmig_timeline.write_json(SAMPLE, path)
        with open(path) as f:
            check(json.load(f) == SAMPLE, 'the JSON differs')


# The tool, on real vmig processes.

def test_usage_errors():
    with tempfile.TemporaryDirectory(prefix='vmig-tools-') as tmp:
        nowhere = os.path.join(tmp, 'nobody.qmp')
        res = run_tool(['--src', nowhere, '--dst', nowhere, 'unix:/x',
                        '--cap', 'multifd=maybe'])
        check_clean_error(res, 2, "'multifd=maybe'")
        res = run_tool(['--src', nowhere, '--dst', nowhere, 'unix:/x'])
        check_clean_error(res, 2, 'source', nowhere)


class Lab:
    """vmig processes and device servers in a temporary directory."""

    def __init__(self):
        self.tmpdir = tempfile.TemporaryDirectory(prefix='vmig-tools-')
        self.tmp = self.tmpdir.name
        self.log = open(os.path.join(self.tmp, 'log'), 'w')
        self.vms, self.servers = [], []

    def server(self, name):
        path = os.path.join(self.tmp, name + '.sock')
        self.servers.append(start_device_server(
            os.environ['VFIO_USER_DMA'], path, ['--mem-size', '16M'],
            self.log))
        return path

    def vm(self, name, args):
        vm = Vmig(os.environ['VMIG_BINARY'], self.tmp, name, MACHINE + args,
                  self.log)
        self.vms.append(vm)
        return vm

    def path(self, name):
        return os.path.join(self.tmp, name)

    def close(self):
        for vm in self.vms:
            vm.quit()
        for srv in self.servers:
            srv.terminate()
            srv.wait()
        self.log.close()
        self.tmpdir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def vfio_args(sock):
    return ['-guest', 'dma', '-device', f'vfio-user-pci,socket={sock},id=dev0']


def test_migrate_vfio():
    with Lab() as lab:
        dst = lab.vm('dst', vfio_args(lab.server('dst-dev0')) +
                     ['-incoming', 'defer'])
        src = lab.vm('src', vfio_args(lab.server('src-dev0')))
        uri = 'unix:' + lab.path('mig.sock')
        tl_path, svg_path = lab.path('t.json'), lab.path('t.svg')
        res = run_tool(['--src', src.qmp_path, '--dst', dst.qmp_path, uri,
                        '--incoming', uri, '--cap', 'return-path',
                        '--cap', 'switchover-ack', '--cap', 'multifd',
                        '--param', 'multifd-channels=2',
                        '--param', 'max-bandwidth=0',
                        '--timeline', tl_path, '--svg', svg_path])
        check(res.returncode == 0, f'exit status {res.returncode}: '
              f'{res.stdout}{res.stderr}')
        check('Migration: [100 %]' in res.stdout and
              'Migration completed' in res.stdout, f'output: {res.stdout}')
        verify = dst.qmp.cmd('x-guest-verify')
        check(verify['ok'], f"x-guest-verify: {verify.get('detail')}")
        check_timeline_files(tl_path, svg_path)


def check_timeline_files(tl_path, svg_path):
    """The timeline of test_migrate_vfio's migration, as the tool wrote it."""
    with open(tl_path) as f:
        tl = json.load(f)
    check(tl.get('status') == 'completed', f"status {tl.get('status')}")
    check(tl.get('passes'), 'no passes')
    devs = {d['id']: d for d in tl.get('devices', [])}
    check('dev0' in devs and devs['dev0'].get('arcs'),
          f'no arcs for dev0: {devs}')
    check(any(a['to'] == 'stop-copy' for a in devs['dev0']['arcs']),
          f"dev0 never in stop-copy: {devs['dev0']['arcs']}")
    phases = [p['name'] for p in tl.get('downtime', {}).get('phases', [])]
    check('device-state' in phases or 'device-threads' in phases,
          f'downtime phases {phases}')
    with open(svg_path) as f:
        root = parse_svg(f.read())
    check(by_id(root, 'lane-device-dev0') is not None, 'no dev0 lane')


def test_migrate_fails():
    """Nobody listens at the URI: the migration fails, and says why."""
    with Lab() as lab:
        dst = lab.vm('dst', ['-incoming', 'defer'])
        src = lab.vm('src', [])
        nobody = lab.path('nobody.sock')
        res = run_tool(['--src', src.qmp_path, '--dst', dst.qmp_path,
                        'unix:' + nobody])
        check_clean_error(res, 1, 'migration failed', nobody)


def read_line_until(proc, pred, timeout):
    """Lines of @proc's stdout until one satisfies @pred (bounded)."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 1.0)
        if not ready:
            continue
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        if pred(line):
            return line
    raise AssertionError(f'no such line within {timeout} s: {seen}')


def test_interrupt_cancels():
    """Ctrl-C cancels the migration and exits 130."""
    with Lab() as lab:
        uri = 'unix:' + lab.path('mig.sock')
        dst = lab.vm('dst', ['-incoming', 'defer'])
        src = lab.vm('src', [])
        # 1 MiB/s against a 64 MiB working set: it cannot end on its own.
        proc = subprocess.Popen(
            [sys.executable, TOOL, '--src', src.qmp_path, '--dst',
             dst.qmp_path, uri, '--incoming', uri,
             '--param', 'max-bandwidth=1M'],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            read_line_until(proc, lambda s: ' pass ' in s, TOOL_TIMEOUT)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=TOOL_TIMEOUT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        check(proc.returncode == 130, f'exit status {proc.returncode}: {err}')
        check('cancelling' in err and 'Traceback' not in err, f'stderr: {err}')
        status = src.qmp.cmd('query-migrate')['status']
        check(status == 'cancelled', f'the source says {status}')


TESTS = [test_svg_sample, test_svg_sparse, test_svg_bad_input,
         test_json_roundtrip, test_usage_errors, test_migrate_vfio,
         test_migrate_fails, test_interrupt_cancels]


def main():
    print(f'1..{len(TESTS)}', flush=True)
    failed = 0
    for i, test in enumerate(TESTS, 1):
        name = test.__name__[len('test_'):].replace('_', '-')
        try:
            test()
            print(f'ok {i} - {name}', flush=True)
        except Exception:
            failed += 1
            print(f'not ok {i} - {name}')
            for line in traceback.format_exc().splitlines():
                print(f'# {line}')
            sys.stdout.flush()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
