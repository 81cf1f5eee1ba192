#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Boot the test VM and run its cases (the meson suite vfio-kernel).
#
#   run.sh [--build DIR] [--shell] [--keep] [--rebuild-kernel] [CASE...]
#
# Takes the kernel from build-kernel.sh (cached), packs an initramfs with
# this build's vmig and tools, boots qemu-system-x86_64 under TCG within a
# time limit and turns the guest's result lines into TAP: one ok or not ok
# per case.  Without CASE, every tests/vm/cases/*.sh.  Whatever stops the
# VM from running (no QEMU, no kernel, a hang, a panic) fails every case
# that did not report: this suite never skips silently.
#
#   --build DIR       the meson build tree with vmig in it [build]
#   --shell           boot with a shell on the serial console after the
#                     CASEs (none by default); Ctrl-A X quits QEMU
#   --keep            keep the work directory (initramfs, console log)
#   --rebuild-kernel  build the kernel even if it is cached
#
# VMIG_VM_TIMEOUT (seconds, default 300) bounds the whole boot;
# VMIG_VM_APPEND adds to the kernel command line (say, loglevel=7).
set -u

here=$(cd "$(dirname "$0")" && pwd)
build=$here/../../build
shell=
keep=
rebuild=
timeout_s=${VMIG_VM_TIMEOUT:-300}

usage() {
    sed -n '/^#   run.sh/,/^# VMIG_VM_APPEND/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

while [ $# -gt 0 ]; do
    case "$1" in
    --build) [ $# -ge 2 ] || usage; build=$2; shift 2 ;;
    --build=*) build=${1#*=}; shift ;;
    --shell) shell=1; shift ;;
    --keep) keep=1; shift ;;
    --rebuild-kernel) rebuild=--rebuild; shift ;;
    -*) usage ;;
    *) break ;;
    esac
done

if [ $# -gt 0 ]; then
    cases=$*
elif [ -n "$shell" ]; then
    cases=
else
    cases=$(cd "$here/cases" && ls -- *.sh | sed 's/\.sh$//' | tr '\n' ' ')
fi
ncases=$(echo $cases | wc -w)

# Before the VM has run, a problem is every case's failure.
fail_all() {
    echo "run.sh: $*" >&2
    echo "1..$ncases"
    i=0
    for c in $cases; do
        i=$((i + 1))
        echo "not ok $i - $c: $*"
    done
    exit 1
}

now() {
    date +%s.%N
}

since() {
    awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'
}

command -v qemu-system-x86_64 >/dev/null ||
    fail_all "qemu-system-x86_64 is not installed: run scripts/install-deps.sh"
bins="$build/vmig $build/contrib/vfio-user-dma $build/tests/vm/vm-qmp"
for bin in $bins; do
    [ -x "$bin" ] || fail_all "$bin is missing: build the tree first"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/vmig-vm.XXXXXX")
if [ -z "$keep" ]; then
    trap 'rm -rf "$work"' EXIT
fi

t0=$(now)
if ! kernel=$("$here/build-kernel.sh" $rebuild 2>"$work/kernel.err"); then
    sed 's/^/# /' "$work/kernel.err"
    fail_all "no kernel: $(tail -n 1 "$work/kernel.err")"
fi
kernel_s=$(since "$t0")
t0=$(now)
# shellcheck disable=SC2086 # one word per binary
if ! "$here/build-initramfs.sh" "$work/initramfs.gz" $bins 2>"$work/initramfs.err"; then
    sed 's/^/# /' "$work/initramfs.err"
    fail_all "no initramfs: $(tail -n 1 "$work/initramfs.err")"
fi
initramfs_s=$(since "$t0")

# The guest's TSC is the host's under TCG.  The guest kernel calibrates it
# against the PIT, which fails when QEMU is starved of CPU, and its
# clocksource watchdog may drop it later; either leaves the guest on 4 ms
# jiffies, which would make every time vmig measures in it (arcs, downtime)
# coarse.  So: the host's frequency, and no watchdog.
append="console=ttyS0 panic=-1 quiet tsc=nowatchdog"
tsc_khz=$("$build/tests/vm/host-tsc-khz" 2>/dev/null || true)
[ -z "$tsc_khz" ] || append="$append tsc_early_khz=$tsc_khz"
append="$append vmig.cases=$(echo $cases | tr ' ' ,)"
[ -z "$shell" ] || append="$append vmig.shell=1"
append="$append ${VMIG_VM_APPEND:-}"
# -cpu max gives the guest RDRAND, so that its random pool is ready at boot
# and not only when vmig first asks for random bytes.  -nic none: no iPXE.
# q35 with an Intel IOMMU (before any PCI device, as QEMU wants) and the
# edu device: a real PCI function, in an IOMMU group of its own, for
# vfio-pci (/init binds it; the pci-edu case).
qemu="qemu-system-x86_64 -accel tcg -cpu max -m 1G -nic none
      -machine q35 -device intel-iommu,intremap=off -device edu
      -kernel $kernel -initrd $work/initramfs.gz -nographic -no-reboot"

if [ -n "$shell" ]; then
    echo "kernel $kernel, work directory $work; Ctrl-A X quits QEMU" >&2
    $qemu -append "$append"
    exit
fi

t0=$(now)
timeout -k 5 "$timeout_s" $qemu -append "$append" </dev/null >"$work/console" 2>&1
rc=$?
qemu_s=$(since "$t0")
case $rc in
0) why="stopped before reporting it" ;;
124 | 137) why="timed out: QEMU still ran after $timeout_s s" ;;
*) why="QEMU exited with status $rc" ;;
esac

# The result lines in the order of $cases, then the console as comments.
tr -d '\r' <"$work/console" | awk -v cases="$cases" -v why="$why" '
    # Firmware escape codes may precede a line: match anywhere in it.
    match($0, /VMIG-CASE [^ ]+ [^ ]+/) {
        split(substr($0, RSTART, RLENGTH), f, " ")
        result[f[2]] = f[3]
        details[f[2]] = substr($0, RSTART + RLENGTH + 1)
    }
    { console[NR] = $0 }
    END {
        n = split(cases, list, " ")
        print "1.." n
        for (i = 1; i <= n; i++) {
            c = list[i]
            if (result[c] == "PASS")
                printf "ok %d - %s: %s\n", i, c, details[c]
            else if (result[c] == "SKIP")
                printf "ok %d - %s # SKIP %s\n", i, c, details[c]
            else if (result[c] == "FAIL")
                printf "not ok %d - %s: %s\n", i, c, details[c]
            else
                printf "not ok %d - %s: no result: the VM %s\n", i, c, why
        }
        print "# console:"
        for (i = 1; i <= NR; i++)
            print "#   " console[i]
    }' >"$work/tap"
cat "$work/tap"
echo "# kernel ready in $kernel_s s ($kernel), initramfs" \
    "$(($(stat -c %s "$work/initramfs.gz") / 1024)) KiB in $initramfs_s s," \
    "QEMU boot to power-off $qemu_s s"
[ -z "$keep" ] || echo "# work directory kept: $work"
! grep -q '^not ok' "$work/tap"
