#!/bin/sh
# Install the Debian 12 packages vmig needs to build and test.
# As root it runs apt-get; otherwise it prints the exact command and fails.
#   install-deps.sh          what `make` and `make demo` need
#   install-deps.sh check    also clang, which `make check` needs for the
#                            libFuzzer run of the vfio-user decoder
set -e

PKGS="build-essential meson ninja-build pkg-config python3
libglib2.0-dev libjson-glib-dev zlib1g-dev libzstd-dev socat"
if [ "${1:-}" = check ]; then
    PKGS="$PKGS clang libclang-rt-14-dev"
fi
# Not needed to build or test: QEMU is the baseline of make bench.
OPTIONAL="qemu-system-x86"

not_installed() {
    for p in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
            printf ' %s' "$p"
        fi
    done
}

missing=$(not_installed $PKGS)
if [ -z "$missing" ]; then
    optional=$(not_installed $OPTIONAL)
    if [ -n "$optional" ] && [ -n "$VMIG_DEPS_VERBOSE" ]; then
        echo "optional, for benchmarks:$optional" >&2
    fi
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "vmig needs these Debian packages:$missing" >&2
    echo "install them with:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y$missing" >&2
    exit 1
fi

echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq $missing >/dev/null
