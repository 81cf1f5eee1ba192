# SPDX-License-Identifier: GPL-2.0-or-later
# The same migration with a vfio-user-dma device on each side and the dma
# guest keeping it busy: vmig's VFIO migration path, served from a process,
# inside the test VM.  x-guest-verify also checks the device's memory.
. /vmig/lib.sh

for side in src dst; do
    spawn "$side-dev" vfio-user-dma --socket "$RUN/$side-dev.sock" --mem-size 4M
    wait_socket "$side-dev" "$RUN/$side-dev.sock"
done

vm="-m 64M -smp 1 -guest stress,ws=32M,rate=32M -guest dma"
# shellcheck disable=SC2086 # $vm is a list of words
start_vmig dst $vm -device "vfio-user-pci,socket=$RUN/dst-dev.sock,id=dev0" \
    -incoming defer
# shellcheck disable=SC2086
start_vmig src $vm -device "vfio-user-pci,socket=$RUN/src-dev.sock,id=dev0"
migrate src dst "unix:$RUN/migration.sock"
pass "64 MiB VM with a vfio-user-dma device over unix: in $MIG_TOTAL_MS ms," \
    "downtime $MIG_DOWNTIME_MS ms"
