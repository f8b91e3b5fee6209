#!/usr/bin/env bash
# kubelet's image calls with many images, from a C client (bench/bench_images.c):
# IMAGES_N images (default 50, distinct ids on one shared layer) pulled from a
# local registry, then IMAGES_CALLS calls (default 1000) of each of ListImages,
# ImageStatus by tag and by id, and ImageFsInfo, first without containers,
# then with IMAGES_CTRS created containers (default 100, one host-network pod:
# ImageFsInfo counts their writable layers); corral and, in the same run,
# Debian's containerd (IMAGES_CONTAINERD=0: corral only). Called by bench/run.sh
# (CORRAL_BUILD, BENCH_TMP set).
set -uo pipefail
b=$CORRAL_BUILD
tmp=$BENCH_TMP/images
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/daemons.sh"
mkdir -p "$tmp"
py=/usr/bin/python3
n=${IMAGES_N:-50}
calls=${IMAGES_CALLS:-1000}
ctrs=${IMAGES_CTRS:-100}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1; }
trap cleanup EXIT
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "images: no registry"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-many --addr "$addr" --n "$n" >/dev/null
"$py" "$src/tests/fixtures/registry.py" push-all --addr "$addr" --only pause >/dev/null
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

echo "== image calls, $n images, $calls calls each (load average $(cut -d' ' -f1-3 /proc/loadavg))"
d="$tmp/corral"
start_corrald "$d" "\"registries\": {\"$addr\": {\"insecure\": true}}" || exit 1
cpid=$daemon_pid
for c in 0 "$ctrs"; do
  "$b/bin/bench_images" -r "unix://$d/c.sock" -i "$addr/many" -N "$n" -n "$calls" -C "$c" -l corral
done
echo "  corrald CPU $(cpu_s $cpid) s in all, RSS $(awk '/VmRSS/ {print $2}' /proc/$cpid/status) KiB"
stop_daemon $cpid

if [ "${IMAGES_CONTAINERD:-1}" = 1 ] && command -v containerd >/dev/null; then
  d="$tmp/ctrd"
  start_containerd "$d" "$addr" || exit 0
  dpid=$daemon_pid
  for c in 0 "$ctrs"; do
    "$b/bin/bench_images" -r "unix://$d/c.sock" -i "$addr/many" -N "$n" -n "$calls" -C "$c" -l containerd
  done
  echo "  containerd CPU $(cpu_s $dpid) s in all"
  stop_daemon $dpid
else
  echo "containerd not installed: corral's figures only"
fi
echo "  (load average after $(cut -d' ' -f1-3 /proc/loadavg))"
