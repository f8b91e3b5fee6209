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
