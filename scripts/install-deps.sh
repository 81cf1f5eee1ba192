#!/bin/sh
# Install the Debian 12 packages vmig needs to build and test.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -e

PKGS="build-essential meson ninja-build pkg-config python3
libglib2.0-dev libjson-glib-dev zlib1g-dev libzstd-dev socat"
# Optional: clang and its runtime give the libFuzzer targets.
OPT_PKGS="clang libclang-rt-14-dev"

missing=""
for p in $PKGS $OPT_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

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
