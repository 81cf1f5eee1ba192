#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0-or-later
"""Save real traffic and files as seeds of the fuzz targets of tests/fuzz/.

    make-seeds.py [--recorder FUZZ_VFIO_USER_CLIENT_REPLAY] VMIG
                  VFIO_USER_DMA OUTPUT...

The name of each OUTPUT (without its folder) picks what to save, from
the tables below: a small VM saved by VMIG with `migrate` to `file:`, or
a live migration over UNIX sockets to a second VMIG, recorded on the way
by a proxy that keeps every connection's bytes in both directions (the
main stream, the multifd channel, the return path, QMP).  Each output is
the target's options byte (see the target's source) followed by what it
decodes.  The VMs are the machine the targets build (FUZZ_* in their
sources): each target's corpus test says when the two drift apart.

vfio-user-client-* seeds are recorded by the fuzz target's replay
program itself (--recorder): it runs its fixed client session against a
vfio-user-dma server and saves what the server sent; vus-client-session*
seeds are what the client sent in that session.
"""
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', '..', 'scripts'))
from qmp import QMP, QMPError, Vmig  # noqa: E402

VM_ARGS = ['-m', '256K', '-smp', '1', '-guest', 'stress,ws=16K,rate=1M']
VM_UUID = '6f3b7a52-96c6-4a2e-9d8e-7f1c2b3a4d5e'
DEVICE_ID = 'dev0'
DEVICE_MEM = '4K'
RAM_BLOCK = b'pc.ram'
RAM_SIZE = 256 * 1024
MAPPED_RAM_ALIGN = 1 << 20
MULTIFD_HELLO_MAGIC = b'MFDH'

# The stream loader's options byte (tests/fuzz/fuzz-migration-stream.h).
OPT_RETURN_PATH = 0x01
OPT_SWITCHOVER_ACK = 0x02
OPT_MULTIFD = 0x04
OPT_MAPPED_RAM = 0x08
OPT_SOCKET = 0x10
OPT_DEVICE = 0x20
CAP_OPTS = {'return-path': OPT_RETURN_PATH,
            'switchover-ack': OPT_SWITCHOVER_ACK,
            'multifd': OPT_MULTIFD, 'mapped-ram': OPT_MAPPED_RAM}

# A migration: capabilities, parameters, the vfio-user-dma device (and
# its own options and vmig's properties of it), over a socket (else to a
# file), a VM that never ran (its stream is nothing but sections and
# records, where every mutation lands on structure), extra vmig options
# of the source, and a source whose RAM starts with text (from a file),
# so that compression has something to shrink: the stress program's
# pages do not compress, and multifd sends what does not shrink raw.
def mig(caps=(), params=None, device=False, device_args=(), sock=False,
        stopped=False, src_args=(), device_props='', text_ram=False):
    return dict(caps=list(caps), params=params or {}, device=device,
                device_args=list(device_args), sock=sock, stopped=stopped,
                src_args=list(src_args), device_props=device_props,
                text_ram=text_ram)


# Stream loader seeds (fuzz-migration-stream): the whole main stream.
STREAM = {
    'seed-plain': mig(),
    'seed-stopped': mig(stopped=True),
    'seed-vfio': mig(device=True),
    'seed-vfio-stopped': mig(device=True, stopped=True),
    'seed-vfio-stop-copy': mig(device=True,
                               device_args=['--no-precopy', '--no-p2p']),
    'seed-validate-uuid': mig(caps=['validate-uuid'],
                              src_args=['-uuid', VM_UUID]),
    'seed-mapped-ram': mig(caps=['mapped-ram']),
    'seed-mapped-ram-multifd': mig(caps=['mapped-ram', 'multifd']),
    'seed-vfio-mapped-ram-multifd': mig(caps=['mapped-ram', 'multifd'],
                                        device=True),
    'seed-vfio-return-path': mig(caps=['return-path', 'switchover-ack'],
                                 device=True, sock=True),
}

# Multifd seeds (fuzz-multifd): the one multifd channel of a live
# migration; options byte: compression | 0x04 device state consumer.
ONE_CHANNEL = {'multifd-channels': 1}
MULTIFD = {
    'multifd-plain': (0x00, mig(caps=['multifd'], params=ONE_CHANNEL,
                                sock=True)),
    'multifd-stopped': (0x00, mig(caps=['multifd'], params=ONE_CHANNEL,
                                  sock=True, stopped=True)),
    'multifd-zlib': (0x01, mig(caps=['multifd'], sock=True, params=dict(
        ONE_CHANNEL, **{'multifd-compression': 'zlib'}), text_ram=True)),
    'multifd-zstd': (0x02, mig(caps=['multifd'], sock=True, params=dict(
        ONE_CHANNEL, **{'multifd-compression': 'zstd'}), text_ram=True)),
    'multifd-vfio': (0x04, mig(
        caps=['multifd'], params=ONE_CHANNEL, sock=True, device=True,
        device_props='x-migration-multifd-transfer=on')),
}

# Return path seeds (fuzz-return-path): what the destination sent back;
# options byte: 0x01 switchover-ack, 0x02 pause-before-switchover.
RETURN_PATH = {
    'rp-plain': (0x00, mig(caps=['return-path'], sock=True)),
    'rp-switchover-ack': (0x01, mig(caps=['return-path', 'switchover-ack'],
                                    sock=True)),
    'rp-vfio-switchover-ack': (0x01, mig(caps=['return-path',
                                               'switchover-ack'],
                                         sock=True, device=True)),
    'rp-pause-before-switchover': (0x02, mig(caps=['return-path',
                                                   'pause-before-switchover'],
                                             sock=True)),
}

# mapped-ram seeds (fuzz-mapped-ram): the file of a save; options byte:
# reader threads - 1.
MAPPED_RAM = {
    'mapped-ram-stopped': (0x00, mig(caps=['mapped-ram'], stopped=True)),
    'mapped-ram-running': (0x00, mig(caps=['mapped-ram'])),
    'mapped-ram-multifd': (0x01, mig(caps=['mapped-ram', 'multifd'])),
}

# vfio-user client seeds: the options byte of fuzz-vfio-user-client.
VFIO_USER_CLIENT = {
    'vfio-user-client': 0x00,
    'vfio-user-client-no-extensions': 0x01,
}
# Seeds of the vfio-user server library's decoder (fuzz-vus-decoder):
# what that client session sent, with the options of the session.
VUS_DECODER = {
    'vus-client-session': 0x00,
    'vus-client-session-no-extensions': 0x01,
}

QMP_SEEDS = ('qmp-migration', 'qmp-queries', 'qmp-errors')


def start_device(binary, path, extra=(), mem=DEVICE_MEM):
    proc = subprocess.Popen([binary, '--socket', path, '--mem-size',
                             mem] + list(extra),
                            stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f'vfio-user-dma did not start on {path}')
        time.sleep(0.02)
    return proc


def start_vm(vmig, dma, tmp, name, m, procs, extra=()):
    args = list(VM_ARGS) + list(extra)
    if m['text_ram'] and name == 'src':
        path = os.path.join(tmp, 'ram')
        with open(path, 'wb') as f:
            text = b'%d: a page that compresses\n'
            f.write(b''.join(text % i for i in range(RAM_SIZE))[:RAM_SIZE])
        args += ['-object', f'memory-backend-file,id=pc.ram,size={RAM_SIZE},'
                 f'mem-path={path}', '-machine', 'none,memory-backend=pc.ram']
    if m['device']:
        sock = os.path.join(tmp, f'{name}-dev.sock')
        procs.append(start_device(dma, sock, m['device_args']))
        props = f",{m['device_props']}" if m['device_props'] else ''
        args += ['-device',
                 f'vfio-user-pci,socket={sock},id={DEVICE_ID}{props}']
    vm = Vmig(vmig, tmp, name, args)
    procs.append(vm)
    if m['caps']:
        vm.qmp.cmd('migrate-set-capabilities', capabilities=[
            {'capability': c, 'state': True} for c in m['caps']])
    if m['params']:
        vm.qmp.cmd('migrate-set-parameters', **m['params'])
    return vm


def wait_done(vm, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = vm.qmp.cmd('query-migrate')
        status = info.get('status')
        if status == 'pre-switchover':
            vm.qmp.cmd('migrate-continue', state='pre-switchover')
        if status in ('completed', 'failed', 'cancelled'):
            if status != 'completed':
                raise RuntimeError(f"migration {status}: "
                                   f"{info.get('error-desc')}")
            return
        time.sleep(0.02)
    raise RuntimeError('migration did not end in time')


class Recorder:
    """Listen on @path and join each connection to the UNIX socket
    @target, keeping what each connection carried: conns[i] is [bytes to
    the target, bytes from it]."""

    def __init__(self, path, target):
        self.target = target
        self.conns = []
        self.pumps = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.accepter = threading.Thread(target=self._accept, daemon=True)
        self.accepter.start()

    def _accept(self):
        while True:
            try:
                src, _ = self.listener.accept()
            except OSError:
                return
            # Joined here, in the order they came: a destination takes
            # the main stream first.  A multifd channel that carried
            # nothing the destination waited for may come after the
            # destination is gone (its socket too): it is still
            # recorded, with no one on the other side.
            dst = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                dst.connect(self.target)
            except OSError:
                dst.close()
                dst = None
            rec = [bytearray(), bytearray()]
            self.conns.append(rec)
            pump = threading.Thread(target=self._pump, args=(src, dst, rec),
                                    daemon=True)
            pump.start()
            self.pumps.append(pump)

    @staticmethod
    def _pump(src, dst, rec):
        peers = {src: dst, dst: src}
        record = {src: rec[0], dst: rec[1]}
        open_ends = {src, dst} if dst else {src}
        while open_ends:
            for s in select.select(list(open_ends), [], [], 60)[0]:
                try:
                    data = s.recv(1 << 16)
                except OSError:
                    data = b''
                if not data:
                    open_ends.discard(s)
                record[s] += data
                # Recorded even when the other side is gone.
                try:
                    if peers[s] and data:
                        peers[s].sendall(data)
                    elif peers[s]:
                        peers[s].shutdown(socket.SHUT_WR)
                except OSError:
                    peers[s] = None
        src.close()
        if dst:
            dst.close()

    def close(self):
        """Stop accepting (once the connections made so far are taken)
        and wait until every connection has ended."""
        deadline = time.monotonic() + 10
        while select.select([self.listener], [], [], 0)[0] and \
                time.monotonic() < deadline:
            time.sleep(0.01)
        self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        self.accepter.join(10)
        for pump in self.pumps:
            pump.join(60)


def save_to_file(vmig, dma, tmp, m, procs):
    path = os.path.join(tmp, 'stream')
    src = start_vm(vmig, dma, tmp, 'src', m, procs,
                   (['-S'] if m['stopped'] else []) + m['src_args'])
    src.qmp.cmd('migrate', uri=f'file:{path}')
    wait_done(src)
    with open(path, 'rb') as f:
        return f.read()


def migrate_recorded(vmig, dma, tmp, m, procs):
    """A live migration through a Recorder: its connections."""
    dst_sock = os.path.join(tmp, 'dst.sock')
    proxy_sock = os.path.join(tmp, 'proxy.sock')
    dst = start_vm(vmig, dma, tmp, 'dst', m, procs, ['-incoming', 'defer'])
    dst.qmp.cmd('migrate-incoming', uri=f'unix:{dst_sock}')
    rec = Recorder(proxy_sock, dst_sock)
    src = start_vm(vmig, dma, tmp, 'src', m, procs,
                   (['-S'] if m['stopped'] else []) + m['src_args'])
    src.qmp.cmd('migrate', uri=f'unix:{proxy_sock}')
    wait_done(src)
    wait_done(dst)
    # The destination closes its connections once it has loaded.
    rec.close()
    return rec.conns


def main_connection(conns):
    main = [c for c in conns if not c[0].startswith(MULTIFD_HELLO_MAGIC)]
    if len(main) != 1:
        raise RuntimeError(f'{len(main)} main streams recorded')
    return main[0]


def multifd_channel(conns):
    chans = [c for c in conns if c[0].startswith(MULTIFD_HELLO_MAGIC)]
    if len(chans) != 1:
        raise RuntimeError(f'{len(chans)} multifd channels recorded')
    return chans[0]


def with_procs(fn):
    """Run fn(tmp, procs) and stop every process it started."""
    procs = []
    with tempfile.TemporaryDirectory(prefix='vmig-seeds-') as tmp:
        try:
            return fn(tmp, procs)
        finally:
            for p in reversed(procs):
                if isinstance(p, Vmig):
                    p.quit()
                else:
                    p.kill()
                    p.wait()


def stream_seed(vmig, dma, name):
    m = STREAM[name]
    opts = sum(CAP_OPTS.get(c, 0) for c in m['caps'])
    opts |= (OPT_DEVICE if m['device'] else 0) | \
        (OPT_SOCKET if m['sock'] else 0)
    if m['sock']:
        stream = with_procs(lambda tmp, procs: main_connection(
            migrate_recorded(vmig, dma, tmp, m, procs))[0])
    else:
        stream = with_procs(lambda tmp, procs: save_to_file(
            vmig, dma, tmp, m, procs))
    return bytes([opts]) + stream


def multifd_seed(vmig, dma, name):
    opts, m = MULTIFD[name]
    conns = with_procs(lambda tmp, procs: migrate_recorded(
        vmig, dma, tmp, m, procs))
    return bytes([opts]) + multifd_channel(conns)[0]


def return_path_seed(vmig, dma, name):
    opts, m = RETURN_PATH[name]
    conns = with_procs(lambda tmp, procs: migrate_recorded(
        vmig, dma, tmp, m, procs))
    return bytes([opts]) + main_connection(conns)[1]


def mapped_ram_header(data):
    """Offset of the RAM block's mapped-ram header in a saved file, and
    the end of its page region."""
    pattern = bytes([len(RAM_BLOCK)]) + RAM_BLOCK + struct.pack('>Q',
                                                                RAM_SIZE)
    # The setup section lists the block (id, size) before its header
    # (id, size, bitmap offset, pages offset): take the one whose offsets
    # make sense.
    pos = data.find(pattern)
    while pos >= 0:
        end = pos + len(pattern)
        bitmap, pages = struct.unpack('>QQ', data[end:end + 16])
        if bitmap >= end + 16 and pages % MAPPED_RAM_ALIGN == 0 and \
                bitmap < pages <= len(data) - RAM_SIZE:
            return pos, pages + RAM_SIZE
        pos = data.find(pattern, pos + 1)
    raise RuntimeError('no mapped-ram header for block pc.ram')


def mapped_ram_seed(vmig, dma, name):
    opts, m = MAPPED_RAM[name]
    data = with_procs(lambda tmp, procs: save_to_file(vmig, dma, tmp, m,
                                                      procs))
    header, region_end = mapped_ram_header(data)
    # The target fills the file up to its size with zeros.
    kept = data[:region_end].rstrip(b'\0')
    return bytes([opts]) + struct.pack('>QQ', header, region_end) + kept


def qmp_session(vmig, dma, tmp, procs, name):
    """A recorded QMP connection to a source VM: what the client sent."""
    m = mig(caps=['return-path'])
    vm = start_vm(vmig, dma, tmp, 'src', m, procs)
    rec = Recorder(os.path.join(tmp, 'qmp-proxy.sock'), vm.qmp_path)
    client = QMP(os.path.join(tmp, 'qmp-proxy.sock'))
    if name == 'qmp-migration':
        dst_sock = os.path.join(tmp, 'dst.sock')
        dst = start_vm(vmig, dma, tmp, 'dst', m, procs,
                       ['-incoming', 'defer'])
        dst.qmp.cmd('migrate-incoming', uri=f'unix:{dst_sock}')
        client.cmd('migrate-set-capabilities', capabilities=[
            {'capability': 'events', 'state': True}])
        client.cmd('migrate-set-parameters', **{'max-bandwidth': 0,
                                                'downtime-limit': 300})
        client.cmd('query-migrate-parameters')
        client.cmd('migrate', uri=f'unix:{dst_sock}')
        vm.qmp, saved = client, vm.qmp
        wait_done(vm)
        vm.qmp = saved
    elif name == 'qmp-queries':
        for cmd in ('query-version', 'query-commands', 'query-name',
                    'query-uuid', 'query-status', 'query-migrate',
                    'query-migrate-capabilities', 'query-migrate-parameters',
                    'query-vcpu-dirty-limit', 'x-query-guest', 'x-query-log'):
            client.cmd(cmd)
        client.cmd('qom-list', path='/')
        client.cmd('qom-list', path='/objects')
        client.cmd('qom-get', path='/objects/pc.ram', property='size')
        # QMP.cmd() has a parameter "name" of its own.
        client.sock.sendall(json.dumps({
            'execute': 'trace-event-get-state',
            'arguments': {'name': 'migration_*'}}).encode() + b'\r\n')
        client._read()
    else:
        # What broken clients send, at once: one error reply each (the
        # splitter decides where a broken text ends), then a last command
        # whose reply says that all were answered.
        client.sock.sendall(b'\r\n'.join((
            b'{"execute": "no-such-command"}',
            b'{"execute": "query-status", "arguments": {"x": 1}}',
            b'{"execute": "qom-get", "arguments": {"path": 1}}',
            b'{"execute": "closefd", "arguments": {"fdname": "a"}}',
            b'{"execute": "getfd", "arguments": {"fdname": "b"}}',
            b'{"arguments": {}}',
            b'{"execute": "query-name", "id": [1, {"a": null}]}',
            b'[1, 2, 3]',
            b'{"execute": "query-uuid"',
            b'{"execute": "qmp_capabilities", "arguments": '
            b'{"enable": ["oob"]}}',
            b'{"execute": "query-version", "id": "\\u00e9\\ud83d'
            b'\\ude00"}',
            b'"unterminated string',
            b'{"execute": "query-status", "id": 1e999}',
            b'\xff{"execute": "query-status"}',
            b'{"execute": "query-status", "id": "end"}')) + b'\r\n')
        while client._read().get('id') != 'end':
            pass
    client.close()
    vm.quit()
    procs.remove(vm)
    rec.close()
    return rec.conns[0][0]


def qmp_seed(vmig, dma, name):
    return with_procs(lambda tmp, procs: qmp_session(vmig, dma, tmp, procs,
                                                     name))


def vfio_user_client_seed(recorder, dma, name, output):
    """The client session against vfio-user-dma: what the server sent to
    @output, or for a VUS_DECODER seed, what the client sent."""
    if not recorder:
        raise RuntimeError('needs --recorder')

    def record(tmp, procs):
        sock = os.path.join(tmp, 'dev.sock')
        procs.append(start_device(dma, sock, mem='16K'))
        if name in VUS_DECODER:
            args = [os.path.join(tmp, 'server'), str(VUS_DECODER[name]),
                    output]
        else:
            args = [output, str(VFIO_USER_CLIENT[name])]
        subprocess.run([recorder, '--record', sock] + args, check=True,
                       timeout=60)
    with_procs(record)


def make_seed(vmig, dma, recorder, output):
    name = os.path.basename(output)
    if name in VFIO_USER_CLIENT or name in VUS_DECODER:
        vfio_user_client_seed(recorder, dma, name, output)
        return
    for table, fn in ((STREAM, stream_seed), (MULTIFD, multifd_seed),
                      (RETURN_PATH, return_path_seed),
                      (MAPPED_RAM, mapped_ram_seed)):
        if name in table:
            data = fn(vmig, dma, name)
            break
    else:
        if name not in QMP_SEEDS:
            raise RuntimeError('no such seed')
        data = qmp_seed(vmig, dma, name)
    with open(output, 'wb') as f:
        f.write(data)


def main():
    args = sys.argv[1:]
    recorder = None
    if args[:1] == ['--recorder']:
        recorder, args = args[1], args[2:]
    if len(args) < 3:
        sys.exit(__doc__)
    vmig, dma = args[0], args[1]
    for output in args[2:]:
        try:
            make_seed(vmig, dma, recorder, output)
        except (QMPError, OSError, RuntimeError,
                subprocess.SubprocessError) as e:
            sys.exit(f'make-seeds: {os.path.basename(output)}: {e}')


if __name__ == '__main__':
    main()
