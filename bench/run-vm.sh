#!/usr/bin/env bash
# VM pods: guest boot to agent-ready time, an agent exec round trip, and the
# QEMU process's RSS, under KVM (when the host's KVM really runs guests) and
# under TCG. Called by bench/run.sh with CORRAL_BUILD and BENCH_TMP set.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
b=${CORRAL_BUILD:-$src/build/release}
n=${BENCH_VM_RUNS:-3}
echo "== VM boot (QEMU microvm, corral-agent as init)"
command -v qemu-system-x86_64 >/dev/null || { echo "vm: qemu-system-x86_64 not installed, skipped"; exit 0; }
cmake --build "$b" --target bench_vm guest-image >/dev/null 2>&1 ||
  { echo "vm: bench_vm or the guest image could not be built, skipped"; exit 0; }
k=$b/vm/vmlinux i=$b/vm/initramfs.img
echo "guest kernel $(cat "$b/vm/kernel-release"), initramfs $(du -k "$i" | cut -f1) KiB"
if [ -e /dev/kvm ]; then
  # A KVM guest reaches the agent in well under a second; some hosts (nested
  # or emulated KVM) create VMs but never boot one: bound the attempt.
  if "$b/bin/bench_vm" --kernel "$k" --initrd "$i" --accel kvm --timeout-ms 10000 -n 1 >/dev/null 2>&1; then
    "$b/bin/bench_vm" --kernel "$k" --initrd "$i" --accel kvm -n "$n"
  else
    echo "vm kvm: /dev/kvm present but a KVM guest does not boot here (see vm_kvm_broken_reason); skipped"
  fi
else
  echo "vm kvm: no /dev/kvm, skipped"
fi
"$b/bin/bench_vm" --kernel "$k" --initrd "$i" --accel tcg -n "$n"

# VM pods through the CRI: RunPodSandbox + CreateContainer + StartContainer
# until the container's first line is in its CRI log, with handler "vm"
# (KVM when it boots guests here, else TCG), then memory per running VM pod.
echo "== VM pods through the CRI (handler vm, $(if [ -e /dev/kvm ]; then echo "KVM if it boots guests, else TCG"; else echo TCG; fi))"
py=/usr/bin/python3
tmp=$BENCH_TMP/vmpods
mkdir -p "$tmp"
cpid=
cleanup() { [ -n "$cpid" ] && { kill "$cpid" 2>/dev/null; wait "$cpid" 2>/dev/null; }
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1
            ip link del crlbenchv0 2>/dev/null; }
trap cleanup EXIT
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "vm pods: no registry, skipped"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-all --addr "$addr" --only busybox >/dev/null
mkdir -p "$tmp/cni" "$tmp/corral"
cat >"$tmp/cni/10-bench.conflist" <<J
{"cniVersion": "1.0.0", "name": "bench-vm", "plugins": [
 {"type": "bridge", "bridge": "crlbenchv0", "isGateway": true, "ipMasq": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.253.0.0/16"}]], "dataDir": "$tmp/cni/ipam"}},
 {"type": "loopback"}]}
J
# "vm" shares rootfs the default way (virtio-fs when virtiofsd is
# installed); "vm9p" forces virtio-9p, for the comparison.
cat >"$tmp/corral/c.json" <<J
{"cni": {"conf_dir": "$tmp/cni", "bin_dirs": ["/usr/lib/cni"]},
 "runtimes": {"vm": {"type": "vm", "vmm": "qemu", "kernel": "$k", "initrd": "$i", "cpus": 1, "memory_mib": 256},
              "vm9p": {"type": "vm", "vmm": "qemu", "kernel": "$k", "initrd": "$i", "cpus": 1, "memory_mib": 256,
                       "share": "9p"}}}
J
"$b/bin/corrald" --config "$tmp/corral/c.json" --root "$tmp/corral/root" --state "$tmp/corral/state" \
  --listen "unix://$tmp/corral/c.sock" --log-level warn 2>"$tmp/corral/log" &
cpid=$!
for _ in $(seq 200); do [ -S "$tmp/corral/c.sock" ] && break; sleep 0.05; done
ep="unix://$tmp/corral/c.sock" image="$addr/busybox:latest"
share=$("$b/bin/corralctl" --endpoint "$ep" -o json info 2>/dev/null | "$py" -c '
import json, sys
info = json.load(sys.stdin).get("info", {})
hs = json.loads(info.get("runtimeHandlers", "[]"))
print(next((h.get("share", "?") for h in hs if h.get("name") == "vm"), "?"))' 2>/dev/null)
echo "handler vm shares rootfs over: ${share:-?}"
# The first VM pod after a daemon start pays for the KVM probe (when
# /dev/kvm is there) and a cold page cache for the kernel and initramfs.
"$b/bin/bench_lifecycle" -r "$ep" -i "$image" -n 1 -H vm -F -l "first vm pod after daemon start" -L "$tmp/logs"
for h in vm vm9p; do
  "$b/bin/bench_lifecycle" -r "$ep" -i "$image" -n "${BENCH_VM_PODS_RUNS:-5}" -H $h -F -l "$h pod" -L "$tmp/logs"
done
"$b/bin/bench_lifecycle" -r "$ep" -i "$image" -n "${BENCH_VM_PODS_RUNS:-5}" -F -l "namespace pod, same daemon" -L "$tmp/logs"

# Memory: RSS and PSS (shared pages split between the processes that map
# them: libraries, and guest RAM that QEMU shares with virtiofsd) of every
# process a VM pod adds on the host.
np=${BENCH_VM_MEM_PODS:-3}
kib() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/$3" 2>/dev/null || echo 0; }
for h in vm vm9p; do
  coproc BL { "$b/bin/bench_lifecycle" -r "$ep" -i "$image" -n 0 -p "$np" -H $h -l "$h pods" -L "$tmp/logs"; }
  read -r line <&"${BL[0]}"; echo "$line"
  sleep 3
  total=0
  for what in "qemu-system" "corral-shim vm" "virtiofsd"; do
    rss=0 pss=0 n=0
    for p in $(pgrep -f "$what"); do
      grep -q "$tmp" "/proc/$p/cmdline" 2>/dev/null || continue
      rss=$((rss + $(kib "$p" VmRSS status))); pss=$((pss + $(kib "$p" Pss smaps_rollup))); n=$((n + 1))
    done
    total=$((total + pss))
    [ $n -gt 0 ] && echo "$h pods: $n $what processes, per pod RSS $((rss / np)) KiB, PSS $((pss / np)) KiB"
  done
  echo "$h pods: per pod PSS in all $((total / np)) KiB; corrald RSS $(kib "$cpid" VmRSS status) KiB with $np VM pods"
  echo >&"${BL[1]}"; wait "$BL_PID" 2>/dev/null
done
command -v kata-runtime >/dev/null || echo "kata: not installed here, no comparison"
