#!/bin/sh
# Install the Debian 12 packages vmig needs to build and test.
# As root it runs apt-get; otherwise it prints the exact command and fails.
#   install-deps.sh          what `make` and `make demo` need
#   install-deps.sh check    also what `make check` needs: clang for the
#                            libFuzzer run of the vfio-user decoder, and
#                            the kernel source, its build tools and QEMU
#                            for the test VM (tests/vm/), and iproute2 for
#                            the two-host tests in network namespaces
set -e

PKGS="build-essential meson ninja-build pkg-config python3
libglib2.0-dev libjson-glib-dev zlib1g-dev libzstd-dev libgnutls28-dev socat
systemtap-sdt-dev"
if [ "${1:-}" = check ]; then
    PKGS="$PKGS clang libclang-rt-14-dev"
    # The test VM: its kernel's source and build tools (xz-utils unpacks the
    # source, libelf-dev is for objtool), and what boots it (an initramfs
    # of busybox-static packed by cpio, under QEMU).
    PKGS="$PKGS linux-source-6.12 flex bison bc libelf-dev libssl-dev xz-utils
cpio busybox-static qemu-system-x86"
    # ip and tc: the two hosts of tests/qtest/migration-net-test.c.
    PKGS="$PKGS iproute2"
fi
# Not needed to build: QEMU is the baseline of make bench (and boots the
# test VM of make check, which installs it).
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
