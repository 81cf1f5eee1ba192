# SPDX-License-Identifier: GPL-2.0-or-later
# Two vmig processes inside the guest kernel: a running stress VM migrates
# over unix: and the destination's guest check passes.  No device yet: this
# proves vmig, its libraries, QMP and sockets in the test VM.
. /vmig/lib.sh

vm="-m 64M -smp 1 -guest stress,ws=32M,rate=32M"
# shellcheck disable=SC2086 # $vm is a list of words
start_vmig dst $vm -incoming defer
# shellcheck disable=SC2086
start_vmig src $vm
migrate src dst "unix:$RUN/migration.sock"
pass "64 MiB stress VM over unix: in $MIG_TOTAL_MS ms, downtime $MIG_DOWNTIME_MS ms"
