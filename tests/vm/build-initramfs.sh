#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Pack the test VM's initramfs (newc cpio, gzip):
#
#   build-initramfs.sh OUT BINARY...
#
# busybox-static with a link per applet, /init and the cases from this
# folder, and each BINARY in /vmig/bin with every shared library that ldd
# lists for it, at the same path, dynamic loader included: the guest has no
# other userland.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
busybox=/bin/busybox

die() {
    echo "build-initramfs: $*" >&2
    exit 1
}

[ $# -ge 2 ] || die "usage: build-initramfs.sh OUT BINARY..."
out=$1
shift
# Debian's dynamic busybox lacks most applets; the static one has them all.
dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "ok installed" ||
    die "busybox-static is not installed: run scripts/install-deps.sh"
command -v cpio >/dev/null || die "cpio is not installed: run scripts/install-deps.sh"

root=$(mktemp -d "${TMPDIR:-/tmp}/vmig-initramfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/proc" "$root/sys" "$root/dev" "$root/tmp" \
    "$root/vmig/bin" "$root/vmig/cases"

cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
cp "$here/init" "$root/init"
cp "$here"/cases/*.sh "$here"/bench/*.sh "$root/vmig/cases/"
cp "$here/guest-lib.sh" "$root/vmig/lib.sh"

for bin in "$@"; do
    [ -x "$bin" ] || die "$bin: not an executable (build it first)"
    # Without debug info: a smaller image unpacks faster under TCG.
    strip --strip-debug -o "$root/vmig/bin/$(basename "$bin")" "$bin"
    # "libfoo.so => /path (addr)", or "/lib64/ld-linux-x86-64.so.2 (addr)".
    for lib in $(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }
                                  $1 ~ /^\// { print $1 }'); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
done

(cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) |
    gzip -1 >"$out.tmp"
mv -f "$out.tmp" "$out"
