"""A minimal QMP client for vmig's scripts (demo, benchmarks, tools).

Standard library only.  One connection per object; events received while
waiting for a reply are kept in order for wait_event().
"""
import json
import os
import socket
import subprocess
import time


class QMPError(Exception):
    """A failure; @error_class is the QMP error's class when vmig replied."""

    def __init__(self, message, error_class=None):
        super().__init__(message)
        self.error_class = error_class


class QMP:
    def __init__(self, path, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise QMPError(f'cannot connect to QMP at {path}')
                time.sleep(0.02)
        self.sock.settimeout(timeout)
        self.buf = b''
        self.events = []
        greeting = self._read()
        if 'QMP' not in greeting:
            raise QMPError(f'unexpected greeting {greeting}')
        self.cmd('qmp_capabilities')

    def _read(self):
        while b'\n' not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise QMPError('QMP connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return json.loads(line)

    def cmd(self, name, **args):
        msg = {'execute': name}
        if args:
            msg['arguments'] = args
        self.sock.sendall(json.dumps(msg).encode() + b'\r\n')
        while True:
            resp = self._read()
            if 'event' in resp:
                self.events.append(resp)
                continue
            if 'error' in resp:
                raise QMPError(f"{name}: {resp['error']['desc']}",
                               resp['error'].get('class'))
            return resp['return']

    def wait_event(self, name, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev['event'] == name:
                    return self.events.pop(i)
            left = deadline - time.monotonic()
            if left <= 0:
                raise QMPError(f'timed out waiting for event {name}')
            self.sock.settimeout(left)
            resp = self._read()
            if 'event' in resp:
                self.events.append(resp)

    def close(self):
        self.sock.close()


def start_device_server(binary, path, args=(), log=None, timeout=10.0):
    """A vfio-user device server (vfio-user-dma, vfio-user-virtio-net, ...)
    on @path, once it accepts connections (its socket file appears at
    bind(), a moment before listen()).  Its output goes to @log (a file or
    subprocess.DEVNULL); without one, stdout is dropped and stderr kept."""
    proc = subprocess.Popen([binary, '--socket', path] + list(args),
                            stdout=log or subprocess.DEVNULL,
                            stderr=log or None)
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            try:
                s.connect(path)
                return proc
            except OSError:
                pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise QMPError(f'{os.path.basename(binary)} did not start on '
                           f'{path}')
        time.sleep(0.02)


def wait_migration(vm, interval=0.1, timeout=None, on_poll=None):
    """Poll query-migrate on @vm until the migration completed, failed or
    was cancelled, and return that last answer.  @on_poll sees every
    answer; after @timeout seconds the migration is cancelled and
    QMPError raised."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        info = vm.qmp.cmd('query-migrate')
        if on_poll:
            on_poll(info)
        if info['status'] in ('completed', 'failed', 'cancelled'):
            return info
        if deadline is not None and time.monotonic() > deadline:
            vm.qmp.cmd('migrate_cancel')
            raise QMPError(f'did not converge in {timeout:g} s')
        time.sleep(interval)


def wait_running(vm, timeout=30.0):
    """Whether @vm (a migration's destination) runs within @timeout s."""
    deadline = time.monotonic() + timeout
    while vm.qmp.cmd('query-status')['status'] != 'running':
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def stop_all(vms, procs):
    """Quit the vmig processes @vms, then end the device servers @procs."""
    for vm in vms:
        vm.quit()
    for p in procs:
        p.terminate()
        p.wait()


class Vmig:
    """A vmig process with a QMP socket in @workdir."""

    def __init__(self, binary, workdir, name, args, log=None):
        self.qmp_path = os.path.join(workdir, f'{name}.qmp')
        cmd = [binary, '-qmp', f'unix:{self.qmp_path},server=on,wait=off'] + args
        self.proc = subprocess.Popen(cmd, stdout=log or subprocess.DEVNULL,
                                     stderr=log or None)
        try:
            self.qmp = QMP(self.qmp_path)
        except QMPError:
            self.proc.kill()
            raise

    def quit(self):
        try:
            self.qmp.cmd('quit')
        except (QMPError, OSError):
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.qmp.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
