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


def start_vfio_user_dma(binary, path, args=(), log=None, timeout=10.0):
    """A vfio-user-dma device server on @path, once it accepts connections
    (its socket file appears at bind(), a moment before listen())."""
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
            raise QMPError(f'vfio-user-dma did not start on {path}')
        time.sleep(0.02)


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
