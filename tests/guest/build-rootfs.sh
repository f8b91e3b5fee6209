#!/usr/bin/env bash
# Build (once) the test guest's disk: a Debian root filesystem made by
# mmdebstrap from tests/guest/packages.txt, with the host's Debian kernel
# modules, a unit that runs the tests at boot (guest-init.sh), as a raw
# ext4 image. Cached by a hash of its inputs; prints the image's path.
#
#   build-rootfs.sh [--cache DIR] [--kernel-version VER]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${CORRAL_GUEST_CACHE:-/var/cache/corral-guest} kver=
while [ $# -gt 0 ]; do
  case $1 in
    --cache) cache=$2; shift 2 ;;
    --kernel-version) kver=$2; shift 2 ;;
    *) echo "build-rootfs: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ -z "$kver" ]; then
  for img in $(ls /boot/vmlinuz-* 2>/dev/null | sort -rV); do
    v=${img#/boot/vmlinuz-}
    [ -d "/lib/modules/$v/kernel" ] && [ -r "/boot/initrd.img-$v" ] && { kver=$v; break; }
  done
fi
[ -n "$kver" ] || { echo "build-rootfs: no /boot/vmlinuz-* with its initrd and /lib/modules (apt-get install linux-image-amd64)" >&2; exit 77; }
for t in mmdebstrap mke2fs; do command -v $t >/dev/null || { echo "build-rootfs: $t missing (apt-get install mmdebstrap e2fsprogs)" >&2; exit 77; }; done

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
pkgs=$(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' | tr '\n' ',' | sed 's/,$//')
key=$( { echo "$suite $kver"; cat "$here/packages.txt" "$here/build-rootfs.sh" "$here/guest-init.sh" "$here/corral-guest.service"; } | sha256sum | cut -c1-16)
out=$cache/$key
if [ -s "$out/rootfs.img" ]; then echo "$out/rootfs.img"; exit 0; fi

mkdir -p "$cache"
work=$(mktemp -d "$cache/build-XXXXXX")
trap 'rm -rf "$work"' EXIT
t0=$(date +%s)
# The host's apt sources (its mirror and snapshot), so the guest's packages
# come from where the host's did.
mmdebstrap --variant=minbase --include="$pkgs" --components=main \
  --customize-hook='chroot "$1" systemctl enable corral-guest.service' \
  --setup-hook='mkdir -p "$1/etc/systemd/system"' \
  --setup-hook="cp '$here/corral-guest.service' \"\$1/etc/systemd/system/\"" \
  --customize-hook="install -m 0755 '$here/guest-init.sh' \"\$1/usr/local/sbin/corral-guest-init\"" \
  --customize-hook='echo corral-guest > "$1/etc/hostname"; : > "$1/etc/machine-id"' \
  --customize-hook='printf "/dev/vda / ext4 rw,noatime 0 1\n" > "$1/etc/fstab"' \
  --customize-hook='chroot "$1" passwd -d root' \
  --customize-hook='rm -rf "$1/var/cache/apt/archives/"*.deb "$1/var/lib/apt/lists/"*' \
  "$suite" "$work/root" >"$work/mmdebstrap.log" 2>&1 || { tail -30 "$work/mmdebstrap.log" >&2; exit 1; }
mkdir -p "$work/root/lib/modules"
cp -a "/lib/modules/$kver" "$work/root/lib/modules/"
size=$(( $(du -sm "$work/root" | cut -f1) + 1024 ))
mke2fs -q -t ext4 -L corral-guest -d "$work/root" "$work/rootfs.img" "${size}M"
mkdir -p "$out"
echo "$kver" >"$out/kernel-release"
mv "$work/rootfs.img" "$out/rootfs.img"
echo "build-rootfs: $out/rootfs.img built in $(( $(date +%s) - t0 )) s" >&2
echo "$out/rootfs.img"
