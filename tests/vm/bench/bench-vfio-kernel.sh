# SPDX-License-Identifier: GPL-2.0-or-later
# make bench (tests/bench/bench-vfio-kernel.py), not make check: the time
# of each FSM arc that vmig takes a device through in a migration, as the
# vfio_mig_arc trace measures it around the arc's call (so vmig's own
# cost per arc is included), for mtty over iommufd and the legacy
# container and for a vfio-user-dma device with tiny state; and the
# downtime of STOP_COPY only against PRE_COPY with switchover-ack.
# Medians over RUNS migrations each; every line goes to the console as
# "VMIG-BENCH ...".
. /vmig/lib.sh

RUNS=${VMIG_BENCH_RUNS:-7}
TRACE="-trace vfio_mig_arc"

bench() {
    echo "VMIG-BENCH $*" >/dev/console
}

# median: of the numbers on stdin.
median() {
    sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# one_run TAG KIND OPTIONS ACK: a migration; arcs into $RUN/arcs.KIND.
one_run() {
    if [ "$2" = vfio-user ]; then
        for side in src dst; do
            spawn "$side-dev$1" vfio-user-dma --socket "$RUN/$side-dev$1.sock" \
                --mem-size 64K $3
            wait_socket "$side-dev$1" "$RUN/$side-dev$1.sock"
        done
        # shellcheck disable=SC2086
        start_vmig "dst$1" -m 64M -smp 1 -incoming defer $TRACE \
            -device "vfio-user-pci,socket=$RUN/dst-dev$1.sock,id=dev0"
        # shellcheck disable=SC2086
        start_vmig "src$1" -m 64M -smp 1 $TRACE \
            -device "vfio-user-pci,socket=$RUN/src-dev$1.sock,id=dev0"
    else
        # shellcheck disable=SC2086
        mtty_pair "$1" "$3" $TRACE
    fi
    if [ "$4" = ack ]; then
        set_caps "src$1" return-path switchover-ack
        set_caps "dst$1" return-path switchover-ack
    fi
    migrate "src$1" "dst$1" "unix:$RUN/mig$1.sock"
    echo "$MIG_DOWNTIME_MS" >>"$RUN/downtime.$2.$4"
    for side in src dst; do
        sed -n 's/.*vfio_mig_arc [^:]*: \([a-z0-9-]*\) -> \([a-z0-9-]*\) in \([0-9]*\) us$/\1>\2 \3/p' \
            "$RUN/$side$1.log" >>"$RUN/arcs.$2"
    done
    quit "src$1" "dst$1"
    if [ "$2" = vfio-user ]; then
        kill "$(cat "$RUN/src-dev$1.pid")" "$(cat "$RUN/dst-dev$1.pid")"
        wait "$(cat "$RUN/src-dev$1.pid")" "$(cat "$RUN/dst-dev$1.pid")" \
            2>/dev/null || true
    fi
}

n=0
for kind in iommufd legacy vfio-user; do
    case $kind in
    vfio-user) opts= ; stop_opts=--no-precopy ;;
    *) opts="x-iommu-backend=$kind" ; stop_opts="$opts,x-allow-pre-copy=off" ;;
    esac
    i=0
    while [ $i -lt "$RUNS" ]; do
        i=$((i + 1))
        n=$((n + 1))
        one_run "$n" "$kind" "$opts" ack
        n=$((n + 1))
        one_run "$n" "$kind" "$stop_opts" -
    done
done

bench "arc (median us over $RUNS migrations, both sides)  iommufd  legacy  vfio-user"
for arc in $(cat "$RUN"/arcs.* | cut -d' ' -f1 | sort -u); do
    line=$(printf "%-26s" "$arc")
    for kind in iommufd legacy vfio-user; do
        m=$(grep "^$arc " "$RUN/arcs.$kind" 2>/dev/null | cut -d' ' -f2 |
            median)
        line="$line $(printf "%8s" "${m:--}")"
    done
    bench "$line"
done
for kind in iommufd legacy vfio-user; do
    bench "downtime ms $kind: STOP_COPY only $(median <"$RUN/downtime.$kind.-")," \
        "PRE_COPY + switchover-ack $(median <"$RUN/downtime.$kind.ack")"
done
pass "$n migrations"
