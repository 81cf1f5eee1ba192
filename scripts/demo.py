#!/usr/bin/env python3
"""make demo: a live migration of a VM with two VFIO devices, on this machine.

Two vfio-user-dma device servers for each side; a source vmig running the
stress guest and the dma guest (which keeps both devices busy moving data
between their memory and guest RAM); a destination vmig waiting for it.
The VM migrates live with the devices in PRE_COPY, switchover-ack on, and
multifd channels carrying RAM and, at the switchover, the devices' final
state; then the destination checks every page of guest RAM and of both
devices' memory.
"""
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, '..', 'tools'))
from qmp import (QMPError, Vmig, start_device_server, stop_all,  # noqa: E402
                 wait_migration, wait_running)
import vmig_timeline  # noqa: E402

RAM, SMP, WS, RATE = '1G', 2, '512M', '128M'
DEV_MEM, DEV_DIRTY = '256M', '5%'
NDEV = 2
MULTIFD_CHANNELS = 2


def mib(n):
    return n / (1 << 20)


def vm_args(sockets, incoming=None):
    args = ['-m', RAM, '-smp', str(SMP), '-guest', f'stress,ws={WS},rate={RATE}',
            '-guest', 'dma']
    for i, sock in enumerate(sockets):
        args += ['-device', f'vfio-user-pci,socket={sock},id=gpu{i},'
                 'migration-events=on']
    if incoming:
        args += ['-incoming', incoming]
    return args


def progress(info):
    ram = info.get('ram', {})
    total = ram.get('total', 0) or 1
    remaining = ram.get('remaining', 0)
    pct = 100.0 * (total - remaining) / total
    return (f"\r  {info.get('status', '?'):14} {pct:5.1f}%  "
            f"{ram.get('mbps', 0) / 8 / 1024:5.2f} GiB/s  "
            f"remaining {mib(remaining):7.1f} MiB  "
            f"expected downtime {info.get('expected-downtime', 0):5d} ms  "
            f"pass {ram.get('dirty-sync-count', 0)}")


def save_timeline(src, build):
    """The migration's timeline next to the build, as JSON and SVG."""
    timeline = src.qmp.cmd('x-query-migration-timeline')
    base = os.path.abspath(os.path.join(build, 'demo-timeline'))
    vmig_timeline.write_json(timeline, base + '.json')
    vmig_timeline.write_svg(timeline, base + '.svg')
    phases = timeline.get('downtime', {}).get('phases', [])
    print(f"  {'downtime by phase':24} " +
          ', '.join(f"{p['name']} {p['ms']:.1f} ms" for p in phases))
    print(f"  {'timeline':24} {base}.svg (and .json)")


def main():
    build = sys.argv[1] if len(sys.argv) > 1 else 'build'
    vmig = os.path.join(build, 'vmig')
    dma = os.path.join(build, 'contrib', 'vfio-user-dma')
    procs, vms = [], []
    with tempfile.TemporaryDirectory(prefix='vmig-demo-') as tmp, \
            open(os.path.join(tmp, 'servers.log'), 'w') as log:
        try:
            src_socks = [os.path.join(tmp, f'src-dev{i}.sock') for i in range(NDEV)]
            dst_socks = [os.path.join(tmp, f'dst-dev{i}.sock') for i in range(NDEV)]
            for sock in src_socks + dst_socks:
                procs.append(start_device_server(
                    dma, sock, ['--mem-size', DEV_MEM,
                                '--dirty-rate', DEV_DIRTY], log))
            print(f'Device servers: {NDEV} vfio-user-dma per side, {DEV_MEM} of '
                  f'device memory each, {DEV_DIRTY} of it rewritten per second')
            mig_sock = os.path.join(tmp, 'migration.sock')
            dst = Vmig(vmig, tmp, 'dst', vm_args(dst_socks, 'defer'))
            vms.append(dst)
            src = Vmig(vmig, tmp, 'src', vm_args(src_socks))
            vms.append(src)
            print(f'Source VM: {RAM} of RAM, {SMP} vCPUs running the stress '
                  f'guest ({WS} working set, dirtying {RATE}/s) and the dma '
                  f'guest driving both devices')
            time.sleep(2)
            g = src.qmp.cmd('x-query-guest')
            print(f"  the guest has written {g['bytes-written'] / (1 << 30):.2f} "
                  f"GiB so far")

            caps = [{'capability': c, 'state': True}
                    for c in ('events', 'return-path', 'switchover-ack',
                              'multifd')]
            for vm in (src, dst):
                vm.qmp.cmd('migrate-set-capabilities', capabilities=caps)
                vm.qmp.cmd('migrate-set-parameters',
                           **{'multifd-channels': MULTIFD_CHANNELS})
            src.qmp.cmd('migrate-set-parameters',
                        **{'downtime-limit': 300, 'max-bandwidth': 0})
            dst.qmp.cmd('migrate-incoming', uri=f'unix:{mig_sock}')
            print(f'Migrating live (PRE_COPY devices, return path, '
                  f'switchover-ack, multifd x{MULTIFD_CHANNELS} with the '
                  f'devices\' final state on it):')
            src.qmp.cmd('migrate', uri=f'unix:{mig_sock}')
            info = wait_migration(
                src, on_poll=lambda i: print(progress(i), end='', flush=True))
            print()
            if info['status'] != 'completed':
                print(f"migration {info['status']}: {info.get('error-desc', '')}")
                return 1
            if not wait_running(dst):
                print('the destination did not start running')
                return 1
            time.sleep(1)       # let the migrated guest and devices work on
            ram = info.get('ram', {})
            vfio = info.get('vfio', {})
            print()
            print(f"  {'total time':24} {info.get('total-time', 0):8d} ms")
            print(f"  {'setup time':24} {info.get('setup-time', 0):8d} ms")
            print(f"  {'downtime':24} {info.get('downtime', 0):8d} ms")
            print(f"  {'RAM transferred':24} {mib(ram.get('transferred', 0)):8.1f} MiB"
                  f"  ({ram.get('duplicate', 0)} zero pages not sent)")
            print(f"  {'device state transferred':24} "
                  f"{mib(vfio.get('transferred', 0)):8.1f} MiB")
            res = dst.qmp.cmd('x-guest-verify')
            ok = res['ok']
            print(f"  {'destination check':24} {'PASS' if ok else 'FAIL'}: "
                  f"{res['pages-checked']} pages of guest RAM and both devices' "
                  f"memory{'' if ok else ' - ' + res.get('detail', '')}")
            save_timeline(src, build)
            return 0 if ok else 1
        except QMPError as e:
            print(f'\ndemo failed: {e}')
            return 1
        finally:
            stop_all(vms, procs)


if __name__ == '__main__':
    sys.exit(main())
