#!/usr/bin/env python3
"""make demo-virtio-net: a VM whose guest streams frames through a virtio-net
device migrates live, and not one frame is lost.

One vfio-user-virtio-net server per side (the destination's starts with
another MAC address: the source's comes over in the device context); the
source vmig runs the virtio-net guest program, which sends numbered frames
that the device loops back and checks every one on its way back.  The VM
migrates with the device in PRE_COPY (its whole context re-read under the
rate limiter) and switchover-ack, then the destination's guest carries on
with the same stream, and x-guest-verify checks it.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qmp import (QMPError, Vmig, start_device_server, stop_all,  # noqa: E402
                 wait_migration, wait_running)

FILTERS = 200000        # MAC filter entries: a 1.2 MB device context
RATE = 20000            # frames per second the guest sends


def start_server(binary, path, log, *extra):
    return start_device_server(binary, path,
                               ['--mac-filters', str(FILTERS), *extra], log)


def vm_args(sock, incoming=None):
    args = ['-m', '256M', '-smp', '2', '-guest', f'virtio-net,rate={RATE}',
            '-device', f'vfio-user-pci,socket={sock},id=net0']
    return args + (['-incoming', incoming] if incoming else [])


def frames(vm):
    g = vm.qmp.cmd('x-query-guest')
    return next(p['pages-written'] for p in g['programs']
                if p['name'] == 'virtio-net')


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    vmig = os.path.join(build, 'vmig')
    dev = os.path.join(build, 'contrib', 'vfio-user-virtio-net')
    procs, vms = [], []
    with tempfile.TemporaryDirectory(prefix='vmig-demo-') as tmp, \
            open(os.path.join(tmp, 'servers.log'), 'w') as log:
        try:
            src_sock = os.path.join(tmp, 'src-net.sock')
            dst_sock = os.path.join(tmp, 'dst-net.sock')
            procs.append(start_server(dev, src_sock, log))
            procs.append(start_server(dev, dst_sock, log,
                                      '--mac', '52:54:00:ab:cd:ef'))
            print(f'Device servers: vfio-user-virtio-net on each side, '
                  f'{FILTERS} MAC filter entries in the device context')
            mig_sock = os.path.join(tmp, 'migration.sock')
            dst = Vmig(vmig, tmp, 'dst', vm_args(dst_sock, 'defer'))
            vms.append(dst)
            src = Vmig(vmig, tmp, 'src', vm_args(src_sock))
            vms.append(src)
            time.sleep(2)
            before = frames(src)
            print(f'Source guest: {before} frames sent, looped back and '
                  f'checked so far ({RATE} per second)')
            caps = [{'capability': c, 'state': True}
                    for c in ('events', 'return-path', 'switchover-ack')]
            for vm in (src, dst):
                vm.qmp.cmd('migrate-set-capabilities', capabilities=caps)
            src.qmp.cmd('migrate-set-parameters',
                        **{'downtime-limit': 300, 'max-bandwidth': 0})
            dst.qmp.cmd('migrate-incoming', uri=f'unix:{mig_sock}')
            print('Migrating live (device in PRE_COPY, switchover-ack):')
            src.qmp.cmd('migrate', uri=f'unix:{mig_sock}')
            info = wait_migration(src)
            if info['status'] != 'completed':
                print(f"migration {info['status']}: {info.get('error-desc', '')}")
                return 1
            if not wait_running(dst):
                raise RuntimeError('the destination did not start running')
            at_switch = frames(dst)
            time.sleep(2)
            after = frames(dst)
            res = dst.qmp.cmd('x-guest-verify')
            print(f"  {'total time':26} {info.get('total-time', 0):8d} ms")
            print(f"  {'downtime':26} {info.get('downtime', 0):8d} ms")
            print(f"  {'device state transferred':26} "
                  f"{info.get('vfio', {}).get('transferred', 0) / 1e6:8.1f} MB")
            print(f"  {'frames at the switchover':26} {at_switch:8d}")
            print(f"  {'frames 2 s later':26} {after:8d}")
            ok = res['ok'] and after > at_switch
            print(f"  {'destination check':26} {'PASS' if ok else 'FAIL'}: "
                  f"every frame back in order, none lost or repeated"
                  f"{'' if res['ok'] else ' - ' + res.get('detail', '')}")
            return 0 if ok else 1
        except (QMPError, RuntimeError, StopIteration) as e:
            print(f'\ndemo failed: {e}')
            return 1
        finally:
            stop_all(vms, procs)


if __name__ == '__main__':
    sys.exit(main())
