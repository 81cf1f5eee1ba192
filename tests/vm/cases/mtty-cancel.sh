# SPDX-License-Identifier: GPL-2.0-or-later
# migrate_cancel in setup, in active (the device in PRE_COPY) and in
# pre-switchover (the VM and the device stopped): the source's device is
# back in RUNNING, its FIFO and registers are intact (x-guest-verify), and
# the next migration of the same VM succeeds.
. /vmig/lib.sh

# shellcheck disable=SC2086 # $MTTY_VM is a list of words
start_vmig src $MTTY_VM -device "vfio-pci,sysfsdev=$MTTY_SRC,id=dev0"
set_caps src pause-before-switchover
# 1 byte/s: no switchover, so the migration stays active.
qmp src migrate-set-parameters \
    '{"avail-switchover-bandwidth": 1, "max-bandwidth": 0}' >/dev/null
n=0
for when in setup active pre-switchover; do
    n=$((n + 1))
    # A destination per attempt: each one fails on its cut stream.
    # shellcheck disable=SC2086
    start_vmig "dst$n" $MTTY_VM -incoming "unix:$RUN/mig$n.sock" \
        -device "vfio-pci,sysfsdev=$MTTY_DST,id=dev0"
    qmp src migrate "{\"uri\": \"unix:$RUN/mig$n.sock\"}" >/dev/null
    case $when in
    active)
        qmp -u status=active src query-migrate >/dev/null
        expect "$(dev_prop src migration-state)" pre-copy "the device"
        ;;
    pre-switchover)
        qmp src migrate-set-parameters \
            '{"avail-switchover-bandwidth": 1073741824}' >/dev/null
        qmp -u status=pre-switchover src query-migrate >/dev/null
        ;;
    esac
    qmp src migrate_cancel >/dev/null
    expect "$(qmp -u status=cancelled,failed,completed -g status src \
        query-migrate)" cancelled "the status after a cancel in $when"
    qmp -u status=running src query-status >/dev/null
    expect "$(dev_prop src migration-state)" running \
        "the device after a cancel in $when"
    verify_ok src
    quit "dst$n"
    qmp src migrate-set-parameters '{"avail-switchover-bandwidth": 1}' \
        >/dev/null
done
qmp src migrate-set-capabilities \
    '{"capabilities": [{"capability": "pause-before-switchover", "state": false}]}' \
    >/dev/null
qmp src migrate-set-parameters '{"avail-switchover-bandwidth": 0}' >/dev/null
# shellcheck disable=SC2086
start_vmig dst $MTTY_VM -incoming defer \
    -device "vfio-pci,sysfsdev=$MTTY_DST,id=dev0"
migrate src dst "unix:$RUN/migration.sock"
pass "cancelled in setup, active and pre-switchover; then migrated in" \
    "$MIG_TOTAL_MS ms"
