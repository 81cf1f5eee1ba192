# SPDX-License-Identifier: GPL-2.0-or-later
# Helpers for the test VM's cases: each cases/<name>.sh sources this file
# (in the guest, /vmig/lib.sh).
# A case runs in /tmp/run (emptied before each case); the processes it
# starts log to /tmp/run/<name>.log, which /init prints if the case fails.
# Its last line of output becomes the detail of its result line.
set -eu
RUN=/tmp/run
mkdir -p "$RUN"     # /init makes it; by hand in `make vm-shell`, this does

pass() {
    echo "$*"
    exit 0
}

skip() {
    echo "$*"
    exit 77
}

fail() {
    echo "$*"
    exit 1
}

# spawn NAME COMMAND...: run COMMAND in the background, output in NAME.log.
# /init kills it when the case ends, even if the case timed out.
spawn() {
    _name=$1
    shift
    "$@" >"$RUN/$_name.log" 2>&1 &
    echo $! >"$RUN/$_name.pid"
    echo $! >>"$RUN/pids"
}

# wait_socket NAME PATH: wait until process NAME listens on PATH.  If it
# exits first (say, on a bad argument), fail at once with its last words.
wait_socket() {
    _i=0
    while [ ! -S "$2" ]; do
        kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null ||
            fail "$1 exited: $(tail -n 1 "$RUN/$1.log")"
        _i=$((_i + 1))
        [ $_i -le 200 ] || fail "$1 did not listen on $2 within 10 s"
        sleep 0.05
    done
}

# start_vmig NAME ARGS...: a vmig process with its QMP socket at NAME.qmp.
start_vmig() {
    _name=$1
    shift
    spawn "$_name" vmig -qmp "unix:$RUN/$_name.qmp,server=on,wait=off" "$@"
    wait_socket "$_name" "$RUN/$_name.qmp"
}

# qmp [vm-qmp options] NAME COMMAND [ARGUMENTS-JSON]: see tests/vm/vm-qmp.c.
qmp() {
    _opts=
    while [ $# -gt 0 ]; do
        case "$1" in
        -?) _opts="$_opts $1 $2"; shift 2 ;;
        *) break ;;
        esac
    done
    _name=$1
    shift
    # shellcheck disable=SC2086 # the options are single words
    vm-qmp $_opts "$RUN/$_name.qmp" "$@"
}

# migrate SRC DST URI: migrate SRC into DST (started with -incoming defer),
# wait for DST to run and check its guest.  Sets MIG_TOTAL_MS and
# MIG_DOWNTIME_MS from the source's query-migrate.
migrate() {
    qmp "$2" migrate-incoming "{\"uri\": \"$3\"}" >/dev/null
    # The default 128 MiB/s limit only slows a test down.
    qmp "$1" migrate-set-parameters '{"max-bandwidth": 0}' >/dev/null
    qmp "$1" migrate "{\"uri\": \"$3\"}" >/dev/null
    _status=$(qmp -t 90 -u status=completed,failed,cancelled -g status \
        "$1" query-migrate)
    if [ "$_status" != completed ]; then
        fail "migration $_status: $(qmp -g error-desc "$1" query-migrate)"
    fi
    # shellcheck disable=SC2034 # for the case's result line
    MIG_TOTAL_MS=$(qmp -g total-time "$1" query-migrate)
    # shellcheck disable=SC2034
    MIG_DOWNTIME_MS=$(qmp -g downtime "$1" query-migrate)
    qmp -u status=running "$2" query-status >/dev/null
    _verify=$(qmp "$2" x-guest-verify)
    case "$_verify" in
    *'"ok":true'*) ;;
    *) fail "x-guest-verify on the destination: $_verify" ;;
    esac
}

# ---- mtty cases ----
# The mdevs /init made: the first serves the sources, the second the
# destinations (vfio-pci resets a device when it opens it).
MTTY_SRC=/sys/bus/mdev/devices/${VMIG_MDEVS%% *}
MTTY_DST=/sys/bus/mdev/devices/${VMIG_MDEVS##* }
MTTY_VM="-m 64M -smp 1 -guest uart"

# mtty_pair TAG DEVICE-OPTIONS [ARG...]: a source srcTAG on the first mtty
# and a destination dstTAG (-incoming defer) on the second, both running
# the uart guest program with the device "dev0" and DEVICE-OPTIONS, and
# the further vmig ARGs.
mtty_pair() {
    _tag=$1
    _opts=$2
    shift 2
    # shellcheck disable=SC2086 # $MTTY_VM is a list of words
    start_vmig "dst$_tag" $MTTY_VM -incoming defer \
        -device "vfio-pci,sysfsdev=$MTTY_DST,id=dev0${_opts:+,$_opts}" "$@"
    # shellcheck disable=SC2086
    start_vmig "src$_tag" $MTTY_VM \
        -device "vfio-pci,sysfsdev=$MTTY_SRC,id=dev0${_opts:+,$_opts}" "$@"
}

# quit NAME...: end vmig processes and reap them (their devices are free
# again).  One that exited on its own (exit-on-error) is reaped too.
quit() {
    for _q; do
        _pid=$(cat "$RUN/$_q.pid")
        if [ -e "/proc/$_pid" ] &&
           ! grep -q '^State:.*Z' "/proc/$_pid/status" 2>/dev/null; then
            qmp -t 5 "$_q" quit >/dev/null 2>&1 || true
        fi
        wait "$_pid" 2>/dev/null || true
    done
}

# set_caps NAME CAP...: turn migration capabilities on.
set_caps() {
    _n=$1
    shift
    _list=
    for _c; do
        _list="$_list${_list:+, }{\"capability\": \"$_c\", \"state\": true}"
    done
    qmp "$_n" migrate-set-capabilities "{\"capabilities\": [$_list]}" \
        >/dev/null
}

# dev_prop NAME PROPERTY: qom-get of dev0's PROPERTY, without quotes.
dev_prop() {
    qmp "$1" qom-get "{\"path\": \"dev0\", \"property\": \"$2\"}" | tr -d '"'
}

# wait_irqs NAME COUNT: until dev0 of NAME has taken more than COUNT
# interrupts.
wait_irqs() {
    _n=0
    while [ "$(dev_prop "$1" x-irq-count)" -le "$2" ]; do
        _n=$((_n + 1))
        [ $_n -le 100 ] || fail "$1 took no more than $2 interrupts in 10 s"
        sleep 0.1
    done
}

# expect VALUE WANT WHAT: fail unless VALUE is WANT.
expect() {
    [ "$1" = "$2" ] || fail "$3 is '$1', expected '$2'"
}

# verify_ok NAME: x-guest-verify passes on NAME.
verify_ok() {
    _v=$(qmp "$1" x-guest-verify)
    case "$_v" in
    *'"ok":true'*) ;;
    *) fail "x-guest-verify on $1: $_v" ;;
    esac
}
