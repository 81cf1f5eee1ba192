# SPDX-License-Identifier: GPL-2.0-or-later
# A running VM whose uart program keeps an mtty port's FIFO full migrates
# between two vmig processes with the device's state (96 bytes of mtty-2)
# through both IOMMU back-ends, with PRE_COPY and STOP_COPY only, with and
# without switchover-ack; the destination's FIFO and line registers check
# out.  mtty's DMA logging is the dirty tracker, and its read() of 0 at
# the end of the PRE_COPY data is taken as "no more for now".
. /vmig/lib.sh

out=
for v in "iommufd pre-copy ack" "iommufd stop-copy -" "legacy pre-copy -" \
         "legacy stop-copy ack"; do
    # shellcheck disable=SC2086 # three words
    set -- $v
    opts="x-iommu-backend=$1"
    [ "$2" = stop-copy ] && opts="$opts,x-allow-pre-copy=off"
    tag="-$1-$2"
    mtty_pair "$tag" "$opts"
    if [ "$3" = ack ]; then
        set_caps "src$tag" return-path switchover-ack
        set_caps "dst$tag" return-path switchover-ack
    fi
    expect "$(dev_prop "src$tag" x-iommu-backend)" "$1" "the back-end"
    migrate "src$tag" "dst$tag" "unix:$RUN/mig$tag.sock"
    vfio=$(qmp -g vfio "src$tag" query-migrate)
    case "$vfio" in
    *'"transferred":96,'*'"dirty-tracking":"device-dma-logging"'*) ;;
    *) fail "$1 $2: query-migrate's vfio is $vfio" ;;
    esac
    expect "$(dev_prop "dst$tag" migration-state)" running \
        "the destination device's state"
    [ "$3" = ack ] && set -- "$1" "$2+ack"
    out="$out; $1 $2: $MIG_TOTAL_MS/$MIG_DOWNTIME_MS ms"
    quit "src$tag" "dst$tag"
done
pass "total/downtime${out#;}"
