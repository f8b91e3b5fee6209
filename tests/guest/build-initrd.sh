#!/usr/bin/env bash
# The test guest's initramfs (cached beside the root image): busybox and the
# few modules that mount an ext4 root on virtio-blk, instead of the host's
# 30 MB Debian initrd, which takes tens of seconds to unpack and run under TCG.
#   build-initrd.sh KERNEL_VERSION   -> prints the image's path
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kver=${1:?usage: build-initrd.sh KERNEL_VERSION}
cache=${CORRAL_GUEST_CACHE:-/var/cache/corral-guest}
mods="virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk crc16 mbcache jbd2 crc32c_generic ext4"
key=$( { echo "$kver $mods"; cat "$here/build-initrd.sh" /bin/busybox; } | sha256sum | cut -c1-16)
out=$cache/initrd-$key.img
if [ -s "$out" ]; then echo "$out"; exit 0; fi
[ -x /bin/busybox ] || { echo "build-initrd: /bin/busybox missing (busybox-static)" >&2; exit 77; }
work=$(mktemp -d "${TMPDIR:-/tmp}/corral-guest-initrd.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/mod" "$work/dev" "$work/proc" "$work/sys" "$work/root"
cp /bin/busybox "$work/bin/busybox"
for m in $mods; do
  f=$(modinfo -k "$kver" -F filename "$m") || { echo "build-initrd: no module $m for $kver" >&2; exit 1; }
  case $f in
    *.ko) cp "$f" "$work/mod/$m.ko" ;;
    *.ko.xz) xz -dc "$f" >"$work/mod/$m.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$work/mod/$m.ko" ;;
    *) echo "build-initrd: $f: unknown module format" >&2; exit 1 ;;
  esac
done
cat >"$work/init" <<INIT
#!/bin/busybox sh
/bin/busybox mount -t devtmpfs dev /dev
/bin/busybox mount -t proc proc /proc
for m in $mods; do /bin/busybox insmod /mod/\$m.ko || echo "initrd: insmod \$m failed"; done
for i in \$(/bin/busybox seq 200); do [ -b /dev/vda ] && break; /bin/busybox usleep 50000; done
/bin/busybox mount -t ext4 -o rw /dev/vda /root || { echo "initrd: cannot mount /dev/vda"; /bin/busybox poweroff -f; }
/bin/busybox umount /proc
/bin/busybox mount --move /dev /root/dev
exec /bin/busybox switch_root /root /sbin/init
INIT
chmod +x "$work/init"
(cd "$work" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
