# SPDX-License-Identifier: GPL-2.0-or-later
# The kernel offers what vmig's two VFIO backends open, and the two mtty
# devices that /init created each have an IOMMU group (legacy path) and a
# device cdev (iommufd path).
. /vmig/lib.sh

for node in /dev/vfio/vfio /dev/iommu; do
    [ -c "$node" ] || fail "$node is missing"
done
[ -d /sys/class/mdev_bus/mtty ] || fail "mtty is not on the mdev bus"

# shellcheck disable=SC2086 # one word per UUID
set -- $VMIG_MDEVS
[ $# -eq 2 ] || fail "/init created $# mtty-2 devices, not 2"
n=$(ls /sys/bus/mdev/devices | wc -l)
[ "$n" -eq 2 ] || fail "/sys/bus/mdev/devices holds $n devices, not 2"

found=
for uuid; do
    dev=/sys/bus/mdev/devices/$uuid
    [ -L "$dev/iommu_group" ] || fail "$uuid has no iommu_group link"
    group=$(basename "$(readlink "$dev/iommu_group")")
    [ -c "/dev/vfio/$group" ] || fail "$uuid: /dev/vfio/$group is missing"
    cdev=$(ls "$dev/vfio-dev" 2>/dev/null || true)
    if [ -z "$cdev" ] || [ ! -c "/dev/vfio/devices/$cdev" ]; then
        fail "$uuid has no cdev under /dev/vfio/devices"
    fi
    found="$found; ${uuid%%-*}: group $group, $cdev"
done
pass "/dev/vfio/vfio, /dev/iommu, mtty-2 x2$found"
