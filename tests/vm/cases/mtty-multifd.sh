# SPDX-License-Identifier: GPL-2.0-or-later
# The device's final state over multifd channels (x-migration-multifd-
# transfer=on): the source's save thread sends it in indexed packets, the
# destination's load thread writes them to the mtty in order from
# SWITCHOVER_START on, and the FIFO checks out.
. /vmig/lib.sh

mtty_pair "" "x-migration-multifd-transfer=on" -trace vfio_load_setup
for vm in src dst; do
    set_caps "$vm" multifd return-path switchover-ack
    qmp "$vm" migrate-set-parameters '{"multifd-channels": 2}' >/dev/null
done
migrate src dst "unix:$RUN/migration.sock"
grep -q "device state via multifd" "$RUN/dst.log" ||
    fail "the destination did not load the device's state over multifd"
vfio=$(qmp -g vfio src query-migrate)
case "$vfio" in
*'"transferred":96,'*) ;;
*) fail "query-migrate's vfio is $vfio" ;;
esac
pass "over 2 multifd channels in $MIG_TOTAL_MS ms, downtime $MIG_DOWNTIME_MS ms"
