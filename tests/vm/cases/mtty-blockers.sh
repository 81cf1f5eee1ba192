# SPDX-License-Identifier: GPL-2.0-or-later
# What keeps a kernel VFIO device from migrating says so, and what lets it
# migrate anyway does: enable-migration=off blocks; without the device's
# DMA logging (x-device-dirty-page-tracking=off) the legacy container's
# dirty page tracking takes over; iommufd, which has none for an mdev,
# blocks, unless enable-migration=on, which migrates with every DMA-able
# page dirty at every sync.
. /vmig/lib.sh

# refused NAME DEVICE-OPTIONS TEXT: migrate is refused, naming TEXT.
refused() {
    # shellcheck disable=SC2086 # $MTTY_VM is a list of words
    start_vmig "$1" $MTTY_VM -device "vfio-pci,sysfsdev=$MTTY_SRC,id=dev0,$2"
    if err=$(qmp "$1" migrate '{"uri": "unix:/tmp/run/none.sock"}' 2>&1); then
        fail "$2: migrate was accepted"
    fi
    case "$err" in
    *"$3"*) ;;
    *) fail "$2: migrate refused with '$err'" ;;
    esac
    quit "$1"
}

refused off enable-migration=off "enable-migration=off"
refused nolog "x-iommu-backend=iommufd,x-device-dirty-page-tracking=off" \
    "nor its IOMMU can track its DMA writes"

out=
n=0
for opts in "x-iommu-backend=legacy,x-device-dirty-page-tracking=off" \
    "x-iommu-backend=iommufd,x-device-dirty-page-tracking=off,enable-migration=on"; do
    n=$((n + 1))
    mtty_pair "$n" "$opts"
    # Every page dirty at every sync converges only with room to spare.
    qmp "src$n" migrate-set-parameters \
        '{"avail-switchover-bandwidth": 1073741824}' >/dev/null
    migrate "src$n" "dst$n" "unix:$RUN/mig$n.sock"
    vfio=$(qmp -g vfio "src$n" query-migrate)
    mode=${vfio#*\"dirty-tracking\":\"}
    out="$out; ${opts%%,*}: ${mode%%\"*}"
    quit "src$n" "dst$n"
done
pass "refused: enable-migration=off, iommufd without DMA logging${out}"
