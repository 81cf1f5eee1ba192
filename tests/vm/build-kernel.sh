#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-or-later
# Build the test VM's kernel once and print the path of its bzImage.
#
#   build-kernel.sh [--rebuild]
#
# Debian's linux-source-6.12, `make tinyconfig` plus kernel.config.  The
# image is cached outside the work tree, keyed by a hash of the fragment and
# the package version, so that every later run (and every work tree) reuses
# it; --rebuild builds it anew all the same.  The build happens in a
# temporary directory under the cache and the image is published with a
# rename, so a killed build never leaves a half-written image behind.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fragment=$here/kernel.config
pkg=linux-source-6.12
tarball=/usr/src/$pkg.tar.xz
cache=${XDG_CACHE_HOME:-$HOME/.cache}/vmig

die() {
    echo "build-kernel: $*" >&2
    exit 1
}

rebuild=no
case "${1:-}" in
--rebuild) rebuild=yes ;;
"") ;;
*) die "usage: build-kernel.sh [--rebuild]" ;;
esac

version=$(dpkg-query -W -f='${Version}' $pkg 2>/dev/null) ||
    die "$pkg is not installed: run scripts/install-deps.sh"
[ -r "$tarball" ] || die "$tarball is missing: reinstall $pkg"
key=$({ echo "$pkg $version"; cat "$fragment"; } | sha256sum | cut -c1-16)
image=$cache/bzImage-$key

if [ "$rebuild" = no ] && [ -f "$image" ]; then
    echo "$image"
    exit 0
fi

# One build at a time on this machine: a second `make check` in another work
# tree waits here and then finds the image it would have built.
mkdir -p "$cache"
exec 9>"$cache/kernel.lock"
flock 9
if [ "$rebuild" = no ] && [ -f "$image" ]; then
    echo "$image"
    exit 0
fi

# Under the lock no other build runs: what is left is from a killed one.
rm -rf "$cache"/kernel-build.*
tmp=$(mktemp -d "$cache/kernel-build.XXXXXX")
# A timed-out test is ended with SIGTERM: leave no 1.5 GB tree behind.
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
log=$cache/kernel-build-$key.log
: >"$log"
echo "build-kernel: building $pkg $version with tests/vm/kernel.config" \
    "(minutes, once); log in $log" >&2

run() {
    if ! "$@" >>"$log" 2>&1; then
        tail -n 40 "$log" >&2
        die "failed: $*"
    fi
}

start=$(date +%s)
run tar -xJf "$tarball" -C "$tmp"
src=$tmp/$pkg
# Without ARCH, tinyconfig gives a 32-bit kernel.
run make -C "$src" ARCH=x86_64 tinyconfig
(cd "$src" && run env ARCH=x86_64 scripts/kconfig/merge_config.sh -m .config "$fragment")
run make -C "$src" ARCH=x86_64 olddefconfig

# Kconfig drops a requested option without a word when a dependency is
# missing; a kernel without, say, VFIO_DEVICE_CDEV would boot and make the
# VFIO cases fail for a reason far from here.
missing=
while IFS= read -r line; do
    case "$line" in
    CONFIG_*=*)
        grep -qxF "$line" "$src/.config" || missing="$missing ${line%%=*}"
        ;;
    esac
done <"$fragment"
if [ -n "$missing" ]; then
    cp "$src/.config" "$cache/config-$key"
    die "kernel.config asks for options that are not set after the merge" \
        "(a missing dependency?):$missing; the result is $cache/config-$key"
fi

run make -C "$src" ARCH=x86_64 -j"$(nproc)" bzImage
cp "$src/.config" "$cache/config-$key"
cp "$src/arch/x86/boot/bzImage" "$tmp/bzImage"
mv -f "$tmp/bzImage" "$image"
echo "build-kernel: built $image in $(($(date +%s) - start)) s" >&2
echo "$image"
