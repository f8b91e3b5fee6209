#!/bin/bash
# In the test guest, at boot (corral-guest.service): mount the host's 9p
# shares where the kernel command line says (corral.share=TAG:PATH ...),
# bring up the user-net interface, run corral.run (a path in a share) with
# its output and exit code in the share tagged "out".
set -u
run=
for a in $(cat /proc/cmdline); do
  case $a in
    corral.share=*)
      v=${a#corral.share=}; tag=${v%%:*}; path=${v#*:}
      mkdir -p "$path"
      mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose "$tag" "$path" ||
        echo "corral-guest: mount $tag on $path failed" ;;
    corral.run=*) run=${a#corral.run=} ;;
  esac
done
out=/run/corral-guest/out
mountpoint -q $out || { echo "corral-guest: no out share"; exit 1; }
ip link set lo up
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 && ip route add default via 10.0.2.2
echo "nameserver 10.0.2.3" >/etc/resolv.conf
echo "corral-guest: up after $(cut -d' ' -f1 /proc/uptime) s, running $run"
bash "$run" >"$out/log" 2>&1
rc=$?
echo $rc >"$out/rc"
sync
echo "corral-guest: $run exited $rc"
exit 0
