# SPDX-License-Identifier: GPL-2.0-or-later
# The destination's device refuses the state it is given (an mtty-2's
# state into an mtty-1: mtty rejects the header's port count with EFAULT
# and counts the bytes anyway): the load fails with an error that names
# the device, though mtty would then accept RESUMING -> STOP, and over
# the return path the source fails too and runs on with its FIFO intact.
. /vmig/lib.sh

uuid=$(cat /proc/sys/kernel/random/uuid)
echo "$uuid" >/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-1/create ||
    fail "cannot create an mtty-1"
# The uart program of a one-port destination would refuse the state of
# two ports only later: the device's refusal comes first.
# shellcheck disable=SC2086 # $MTTY_VM is a list of words
start_vmig dst $MTTY_VM -incoming defer \
    -device "vfio-pci,sysfsdev=/sys/bus/mdev/devices/$uuid,id=dev0"
# shellcheck disable=SC2086
start_vmig src $MTTY_VM -device "vfio-pci,sysfsdev=$MTTY_SRC,id=dev0"
set_caps src return-path
set_caps dst return-path
qmp dst migrate-incoming "{\"uri\": \"unix:$RUN/migration.sock\"}" >/dev/null
qmp src migrate-set-parameters '{"max-bandwidth": 0}' >/dev/null
qmp src migrate "{\"uri\": \"unix:$RUN/migration.sock\"}" >/dev/null
expect "$(qmp -t 90 -u status=completed,failed,cancelled -g status src \
    query-migrate)" failed "the source's migration"
grep -q "vfio-pci dev0: writing device state: vfio-pci dev0: the device refused" \
    "$RUN/dst.log" || fail "the destination said: $(tail -n 1 "$RUN/dst.log")"
qmp -u status=running src query-status >/dev/null
expect "$(dev_prop src migration-state)" running "the source's device"
verify_ok src
quit src dst
echo 1 >"/sys/bus/mdev/devices/$uuid/remove"
pass "refused: $(grep -o 'the device refused.*' "$RUN/dst.log" | head -n 1)"
