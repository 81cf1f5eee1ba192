# SPDX-License-Identifier: GPL-2.0-or-later
# Two mtty devices in one VM share its IOMMU back-end (one iommufd IOAS, or
# the one legacy container with both groups in it), so guest RAM is mapped
# once for both; both migrate, through the P2P states, and the uart program
# checks all their ports on the destination.
. /vmig/lib.sh

# Two more mtty-2 devices: a second one for each side.
extra=
for i in 1 2; do
    uuid=$(cat /proc/sys/kernel/random/uuid)
    echo "$uuid" >/sys/class/mdev_bus/mtty/mdev_supported_types/mtty-2/create ||
        fail "cannot create a third and fourth mtty-2"
    extra="$extra $uuid"
done
# shellcheck disable=SC2086
set -- $extra
src2=/sys/bus/mdev/devices/$1
dst2=/sys/bus/mdev/devices/$2

out=
for be in iommufd legacy; do
    # shellcheck disable=SC2086 # $MTTY_VM is a list of words
    start_vmig "dst-$be" $MTTY_VM -incoming defer \
        -device "vfio-pci,sysfsdev=$MTTY_DST,id=dev0,x-iommu-backend=$be" \
        -device "vfio-pci,sysfsdev=$dst2,id=dev1,x-iommu-backend=$be"
    # shellcheck disable=SC2086
    start_vmig "src-$be" $MTTY_VM \
        -device "vfio-pci,sysfsdev=$MTTY_SRC,id=dev0,x-iommu-backend=$be" \
        -device "vfio-pci,sysfsdev=$src2,id=dev1,x-iommu-backend=$be" \
        -trace vfio_mig_arc
    migrate "src-$be" "dst-$be" "unix:$RUN/mig-$be.sock"
    grep -q "dev1: pre-copy -> pre-copy-p2p" "$RUN/src-$be.log" ||
        fail "$be: the second device did not go through the P2P states"
    vfio=$(qmp -g vfio "src-$be" query-migrate)
    case "$vfio" in
    *'"transferred":192,'*'"id":"dev0"'*'"id":"dev1"'*) ;;
    *) fail "$be: query-migrate's vfio is $vfio" ;;
    esac
    out="$out; $be: $MIG_TOTAL_MS/$MIG_DOWNTIME_MS ms"
    quit "src-$be" "dst-$be"
done
for uuid in $extra; do
    echo 1 >"/sys/bus/mdev/devices/$uuid/remove"
done
pass "two devices, total/downtime${out}"
