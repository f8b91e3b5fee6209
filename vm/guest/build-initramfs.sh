#!/usr/bin/env bash
# Build the corral guest image from Debian's packaged kernel:
#   <out>/vmlinux        the uncompressed kernel carved out of the bzImage
#                        (boots directly with -M microvm through PVH)
#   <out>/initramfs.img  cpio newc (gzip): /init = corral-agent (static),
#                        /lib/modules/*.ko and /lib/modules/order
#   <out>/kernel-release the guest kernel's version (uname -r in the guest)
#
#   build-initramfs.sh --agent PATH --out DIR [--kernel-version VER]
#
# The .deb ships no usable modules.dep: the load order comes from each
# module's `depends=` (modinfo), resolved depth first.
set -euo pipefail
agent= out= kver=
while [ $# -gt 0 ]; do
  case $1 in
    --agent) agent=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --kernel-version) kver=$2; shift 2 ;;
    *) echo "build-initramfs: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$agent" ] && [ -n "$out" ] || { echo "usage: $0 --agent PATH --out DIR [--kernel-version VER]" >&2; exit 2; }
[ -x "$agent" ] || { echo "build-initramfs: agent $agent not found" >&2; exit 1; }
if [ -z "$kver" ]; then
  # The newest Debian kernel that has both an image and its modules.
  for img in $(ls -v /boot/vmlinuz-* 2>/dev/null | sort -rV); do
    v=${img#/boot/vmlinuz-}
    [ -d "/lib/modules/$v/kernel" ] && { kver=$v; break; }
  done
fi
[ -n "$kver" ] || { echo "build-initramfs: no /boot/vmlinuz-* with /lib/modules/<ver>/kernel (apt-get install linux-image-amd64)" >&2; exit 1; }
bz=/boot/vmlinuz-$kver
moddir=/lib/modules/$kver
[ -r "$bz" ] || { echo "build-initramfs: $bz not readable" >&2; exit 1; }
for t in modinfo cpio gzip; do command -v $t >/dev/null || { echo "build-initramfs: $t missing" >&2; exit 1; }; done

mkdir -p "$out"
work=$(mktemp -d "${TMPDIR:-/tmp}/corral-guest-XXXXXX")
trap 'rm -rf "$work"' EXIT

# ---- vmlinux: find the compressed payload by its magic and decompress it,
# as the kernel's scripts/extract-vmlinux does; the first candidate that
# decompresses to an ELF wins.
try_decomp() { # magic-offset-list command...
  local offs=$1; shift
  for off in $offs; do
    tail -c +$((off + 1)) "$bz" | "$@" >"$work/vmlinux" 2>/dev/null || true
    if [ -s "$work/vmlinux" ] && [ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      return 0
    fi
  done
  return 1
}
offsets() { LC_ALL=C grep -obUaP "$1" "$bz" 2>/dev/null | cut -d: -f1 | head -5 || true; }
if ! { try_decomp "$(offsets '\xfd7zXZ\x00')" xz -dc --single-stream ||
       try_decomp "$(offsets '\x28\xb5\x2f\xfd')" zstd -dc ||
       try_decomp "$(offsets '\x1f\x8b\x08')" gzip -dc ||
       try_decomp "$(offsets '\x02\x21\x4c\x18')" lz4 -dc; }; then
  echo "build-initramfs: no decompressible kernel payload in $bz" >&2
  exit 1
fi
install -m 0644 "$work/vmlinux" "$out/vmlinux.tmp"
mv "$out/vmlinux.tmp" "$out/vmlinux"

# ---- modules, in dependency order.
want="virtio virtio_ring virtio_mmio virtio_pci virtio_console virtio_net 9pnet 9pnet_virtio 9p fuse virtiofs overlay vsock vmw_vsock_virtio_transport"
# Loaded on demand, when the guest kernel asks for them (request_module ->
# /sbin/modprobe, which is corral-agent): what a privileged container or
# one with CAP_NET_ADMIN may make (`brctl addbr`, `ip link add ... type veth`).
ondemand="bridge veth dummy"
declare -A path done
while IFS= read -r f; do
  n=$(basename "$f"); n=${n%%.ko*}; n=${n//-/_}
  path[$n]=$f
done < <(find "$moddir/kernel" -name '*.ko*')
order=()
visit() {
  local m=${1//-/_} d
  [ -n "${done[$m]:-}" ] && return 0
  done[$m]=1
  local f=${path[$m]:-}
  [ -n "$f" ] || return 1
  for d in $(modinfo -F depends "$f" | tr ',' ' '); do
    visit "$d" || { echo "build-initramfs: $m depends on $d, which is missing" >&2; exit 1; }
  done
  order+=("$m")
}
for m in $want; do
  if [ -z "${path[${m//-/_}]:-}" ]; then
    # Built in, or absent from this kernel (vsock is optional).
    grep -q "/${m}.ko" "$moddir/modules.builtin" 2>/dev/null || echo "build-initramfs: note: module $m not in $kver" >&2
    continue
  fi
  visit "$m"
done

boot=("${order[@]}")

root=$work/root
mkdir -p "$root/lib/modules" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" "$root/run" "$root/sbin"
install -m 0755 "$agent" "$root/init"
ln -s /init "$root/sbin/modprobe"
put_module() { # name
  local f=${path[$1]}
  [ -e "$root/lib/modules/$1.ko" ] && return 0
  case $f in
    *.ko) cp "$f" "$root/lib/modules/$1.ko" ;;
    *.ko.xz) xz -dc "$f" >"$root/lib/modules/$1.ko" ;;
    *.ko.zst) zstd -qdc "$f" >"$root/lib/modules/$1.ko" ;;
    *.ko.gz) gzip -dc "$f" >"$root/lib/modules/$1.ko" ;;
  esac
}
: >"$root/lib/modules/order"
for m in "${boot[@]}"; do
  put_module "$m"
  echo "$m.ko" >>"$root/lib/modules/order"
done
# <name>.deps: the modules to load for <name>, in order (itself last).
for m in $ondemand; do
  [ -n "${path[$m]:-}" ] || continue
  order=()
  unset done; declare -A done
  for b in "${boot[@]}"; do done[$b]=1; done
  visit "$m"
  : >"$root/lib/modules/$m.deps"
  for d in "${order[@]}"; do
    put_module "$d"
    echo "$d.ko" >>"$root/lib/modules/$m.deps"
  done
done
# The kernel opens /dev/console for init before devtmpfs is mounted.
(cd "$root" && mknod -m 600 dev/console c 5 1 2>/dev/null || true)
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner 0:0 --quiet) | gzip -6 >"$out/initramfs.img.tmp"
mv "$out/initramfs.img.tmp" "$out/initramfs.img"
echo "$kver" >"$out/kernel-release"
echo "guest image: kernel $kver, modules: ${boot[*]}; on demand: $ondemand"
echo "  $out/vmlinux ($(du -h "$out/vmlinux" | cut -f1)), $out/initramfs.img ($(du -h "$out/initramfs.img" | cut -f1))"
