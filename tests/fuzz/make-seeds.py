#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Save real migration streams as seeds of the stream loader's fuzz target.

    make-seeds.py VMIG VFIO_USER_DMA OUTPUT...

The name of each OUTPUT (without its folder) picks a stream of VARIANTS:
a small VM saved by VMIG with `migrate` to `file:`, or, for a return
path, a live migration over a UNIX socket to a second VMIG, recorded on
the way by a proxy.  Each output is the fuzz target's options byte (see
tests/fuzz/fuzz-migration-stream.h) followed by the stream.  The VM must
be the machine the fuzz target builds (FUZZ_* in fuzz-migration-stream.c):
the corpus driver's test says when the two drift apart.
"""
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))
from qmp import QMPError, Vmig  # noqa: E402

VM_ARGS = ['-m', '256K', '-smp', '1', '-guest', 'stress,ws=16K,rate=1M']
DEVICE_ID = 'dev0'
DEVICE_MEM = '4K'

OPT_RETURN_PATH = 0x01
OPT_SWITCHOVER_ACK = 0x02
OPT_MULTIFD = 0x04
OPT_MAPPED_RAM = 0x08
OPT_SOCKET = 0x10
OPT_DEVICE = 0x20
CAP_OPTS = {'return-path': OPT_RETURN_PATH,
            'switchover-ack': OPT_SWITCHOVER_ACK,
            'multifd': OPT_MULTIFD, 'mapped-ram': OPT_MAPPED_RAM}

# name: (capabilities, with the device, over a socket, VM never started)
# A VM that never ran has written no page: its stream is nothing but
# sections and records, where every mutation lands on structure.
VARIANTS = {
    'seed-plain': ([], False, False, False),
    'seed-stopped': ([], False, False, True),
    'seed-vfio': ([], True, False, False),
    'seed-vfio-stopped': ([], True, False, True),
    'seed-mapped-ram': (['mapped-ram'], False, False, False),
    'seed-mapped-ram-multifd': (['mapped-ram', 'multifd'], False, False,
                                False),
    'seed-vfio-mapped-ram-multifd': (['mapped-ram', 'multifd'], True, False,
                                     False),
    'seed-vfio-return-path': (['return-path', 'switchover-ack'], True, True,
                              False),
}


def start_device(binary, path):
    proc = subprocess.Popen([binary, '--socket', path, '--mem-size',
                             DEVICE_MEM], stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f'vfio-user-dma did not start on {path}')
        time.sleep(0.02)
    return proc


def start_vm(vmig, dma, tmp, name, caps, device, procs, extra=()):
    args = list(VM_ARGS) + list(extra)
    if device:
        sock = os.path.join(tmp, f'{name}-dev.sock')
        procs.append(start_device(dma, sock))
        args += ['-device', f'vfio-user-pci,socket={sock},id={DEVICE_ID}']
    vm = Vmig(vmig, tmp, name, args)
    procs.append(vm)
    if caps:
        vm.qmp.cmd('migrate-set-capabilities', capabilities=[
            {'capability': c, 'state': True} for c in caps])
    return vm


def wait_done(vm, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = vm.qmp.cmd('query-migrate')
        if info.get('status') in ('completed', 'failed', 'cancelled'):
            if info['status'] != 'completed':
                raise RuntimeError(f"migration {info['status']}: "
                                   f"{info.get('error-desc')}")
            return
        time.sleep(0.02)
    raise RuntimeError('migration did not end in time')


def proxy(listener, target, recorded):
    """Accept one connection, join it to @target, record what the source
    sends, until both sides have closed."""
    src, _ = listener.accept()
    dst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dst.connect(target)
    peers = {src: dst, dst: src}
    open_ends = {src, dst}
    while open_ends:
        for s in select.select(list(open_ends), [], [], 60)[0]:
            try:
                data = s.recv(1 << 16)
                if data:
                    peers[s].sendall(data)
                else:
                    peers[s].shutdown(socket.SHUT_WR)
            except OSError:
                data = b''
            if not data:
                open_ends.discard(s)
            elif s is src:
                recorded.append(data)
    src.close()
    dst.close()


def save_to_file(vmig, dma, tmp, caps, device, stopped, procs):
    path = os.path.join(tmp, 'stream')
    src = start_vm(vmig, dma, tmp, 'src', caps, device, procs,
                   ['-S'] if stopped else [])
    src.qmp.cmd('migrate', uri=f'file:{path}')
    wait_done(src)
    with open(path, 'rb') as f:
        return f.read()


def save_over_socket(vmig, dma, tmp, caps, device, stopped, procs):
    dst_sock = os.path.join(tmp, 'dst.sock')
    proxy_sock = os.path.join(tmp, 'proxy.sock')
    dst = start_vm(vmig, dma, tmp, 'dst', caps, device, procs,
                   ['-incoming', 'defer'])
    dst.qmp.cmd('migrate-incoming', uri=f'unix:{dst_sock}')
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(proxy_sock)
    listener.listen(1)
    recorded = []
    pump = threading.Thread(target=proxy,
                            args=(listener, dst_sock, recorded))
    pump.start()
    src = start_vm(vmig, dma, tmp, 'src', caps, device, procs,
                   ['-S'] if stopped else [])
    src.qmp.cmd('migrate', uri=f'unix:{proxy_sock}')
    wait_done(src)
    wait_done(dst)
    pump.join()
    listener.close()
    return b''.join(recorded)


def make_seed(vmig, dma, output):
    caps, device, over_socket, stopped = VARIANTS[os.path.basename(output)]
    opts = sum(CAP_OPTS[c] for c in caps)
    opts |= (OPT_DEVICE if device else 0) | (OPT_SOCKET if over_socket else 0)
    procs = []
    with tempfile.TemporaryDirectory(prefix='vmig-seeds-') as tmp:
        try:
            save = save_over_socket if over_socket else save_to_file
            stream = save(vmig, dma, tmp, caps, device, stopped, procs)
        finally:
            for p in reversed(procs):
                if isinstance(p, Vmig):
                    p.quit()
                else:
                    p.kill()
                    p.wait()
    with open(output, 'wb') as f:
        f.write(bytes([opts]) + stream)


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    vmig, dma = sys.argv[1], sys.argv[2]
    for output in sys.argv[3:]:
        try:
            make_seed(vmig, dma, output)
        except (QMPError, OSError, RuntimeError) as e:
            sys.exit(f'make-seeds: {os.path.basename(output)}: {e}')


if __name__ == '__main__':
    main()
