# SPDX-License-Identifier: GPL-2.0-or-later
# Not run by make check (tests/vm/run.sh bench-edu-mmap): what mapping
# edu's BAR0 buys.  -guest edu,rate=0 makes liveness rounds (one 32-bit
# write and one 32-bit read of BAR0) as fast as it can for 3 s of guest
# time, through the mapping and with x-no-mmap=on (pread/pwrite on the
# device fd), over both back-ends.  Under TCG every MMIO access of the
# guest kernel or of vmig is emulated, so the figures are relative.
. /vmig/lib.sh

uptime_s() {
    cut -d' ' -f1 /proc/uptime
}

out=
for opt in x-no-mmap=off x-no-mmap=on; do
    for backend in iommufd legacy; do
        start_vmig m -m 64M -smp 1 -guest edu,rate=0 \
            -device "vfio-pci,host=$VMIG_EDU,id=dev0,x-iommu-backend=$backend,$opt"
        a=$(qmp -g passes m x-query-guest)
        t0=$(uptime_s)
        sleep 3
        z=$(qmp -g passes m x-query-guest)
        t1=$(uptime_s)
        rate=$(awk -v a="$a" -v z="$z" -v t0="$t0" -v t1="$t1" \
            'BEGIN { printf "%.0f", (z - a) / (t1 - t0) }')
        out="$out; $backend $opt: $rate"
        quit m
    done
done
pass "edu liveness rounds per second$out"
