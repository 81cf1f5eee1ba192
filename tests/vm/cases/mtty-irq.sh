# SPDX-License-Identifier: GPL-2.0-or-later
# The uart program as an interrupt-driven driver (irq=on): each FIFO is
# filled to its trigger level, mtty raises its receive interrupt (MSI,
# through the device's eventfd), and the program drains it.  Interrupts
# come on the source, and after the migration on the destination too.
. /vmig/lib.sh

MTTY_VM="$MTTY_VM,irq=on"
mtty_pair "" ""
expect "$(dev_prop src x-irq)" msi "the source's interrupt"
qmp -u status=running src query-status >/dev/null
n=0
while [ "$(dev_prop src x-irq-count)" -lt 10 ]; do
    n=$((n + 1))
    [ $n -le 100 ] || fail "fewer than 10 interrupts in 10 s"
    sleep 0.1
done
migrate src dst "unix:$RUN/migration.sock"
before=$(dev_prop dst x-irq-count)
n=0
while [ "$(dev_prop dst x-irq-count)" -le $((before + 10)) ]; do
    n=$((n + 1))
    [ $n -le 100 ] || fail "the destination took no interrupts in 10 s"
    sleep 0.1
done
verify_ok dst
pass "$(dev_prop src x-irq-count) interrupts on the source," \
    "$(dev_prop dst x-irq-count) on the destination; migrated in" \
    "$MIG_TOTAL_MS ms"
