#!/usr/bin/env bash
# The first README command: on a fresh Debian 12 machine, install every
# dependency from Debian packages, build corral, install it, put a default
# CNI config in place if there is none, start corrald and ask its version.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
[ "$(id -u)" = 0 ] || { echo "setup: run as root (sudo $0)"; exit 1; }

"$here/install-deps.sh"

build="$src/build/release"
cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)"
# The guest kernel and initramfs for VM pods (runtime handler "vm"), built from
# Debian's linux-image-amd64; without them only namespace pods run.
if ! cmake --build "$build" --target guest-image >/tmp/corral-guest-image.log 2>&1; then
  echo "setup: warning: the VM guest image did not build (see /tmp/corral-guest-image.log): VM pods unavailable"
fi
cmake --install "$build" --prefix /usr/local >/dev/null
echo "setup: installed corrald, corralctl and corral-shim into /usr/local/bin"
[ -f /var/lib/corral/vm/vmlinux ] && echo "setup: installed the VM guest image into /var/lib/corral/vm"

# A CNI bridge config when the host has none (kubeadm/Kind clusters bring their own).
mkdir -p /etc/cni/net.d
if ! ls /etc/cni/net.d/*.conf /etc/cni/net.d/*.conflist /etc/cni/net.d/*.json >/dev/null 2>&1; then
  install -m 0644 "$src/deploy/cni/10-corral-bridge.conflist" /etc/cni/net.d/
  echo "setup: installed /etc/cni/net.d/10-corral-bridge.conflist"
fi
mkdir -p /etc/corral

if [ -d /run/systemd/system ]; then
  install -m 0644 "$src/deploy/systemd/corrald.service" /etc/systemd/system/corrald.service
  systemctl daemon-reload
  systemctl enable --now corrald.service
  systemctl restart corrald.service
else
  # No systemd (a container, a chroot): run it in the background with a log.
  if [ -S /run/corral/corral.sock ] && corralctl version >/dev/null 2>&1; then
    pkill -TERM -x corrald || true
    for _ in $(seq 100); do pgrep -x corrald >/dev/null || break; sleep 0.1; done
  fi
  mkdir -p /var/log/corral
  nohup /usr/local/bin/corrald >>/var/log/corral/corrald.log 2>&1 &
  echo "setup: corrald started without systemd (pid $!), log in /var/log/corral/corrald.log"
fi
for _ in $(seq 100); do [ -S /run/corral/corral.sock ] && break; sleep 0.1; done
corralctl version
