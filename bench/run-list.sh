#!/usr/bin/env bash
# kubelet's relist at node scale from a C client (bench/bench_list.c):
# LIST_SIZES pods x containers (default 334x3, about 1,000 created
# containers), LIST_CALLS calls of each of ListContainers, ListPodSandbox,
# ContainerStatus, PodSandboxStatus; corral and, in the same run, Debian's
# containerd. LIST_ARGS=-L gives each container kubelet's labels and
# annotations. Called by bench/run.sh (CORRAL_BUILD, BENCH_TMP set).
set -uo pipefail
b=$CORRAL_BUILD
tmp=$BENCH_TMP/list
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/daemons.sh"
mkdir -p "$tmp"
py=/usr/bin/python3
sizes=${LIST_SIZES:-334x3}
calls=${LIST_CALLS:-1000}
extra=${LIST_ARGS:-}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1; }
trap cleanup EXIT
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "list: no registry"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-all --addr "$addr" --only busybox,pause >/dev/null
image="$addr/busybox:latest"
cpu_s() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }

for size in $sizes; do
  n=${size%x*}; m=${size#*x}
  echo "== list and status calls, ${n} pods x ${m} created containers, ${calls} calls each"
  d="$tmp/corral-$size"
  start_corrald "$d" "\"registries\": {\"$addr\": {\"insecure\": true}}" || exit 1
  cpid=$daemon_pid
  "$b/bin/bench_list" -r "unix://$d/c.sock" -i "$image" -p "$n" -c "$m" -n "$calls" -P "$cpid" $extra -l corral
  echo "  corrald CPU $(cpu_s $cpid) s in all, RSS $(awk '/VmRSS/ {print $2}' /proc/$cpid/status) KiB"
  stop_daemon $cpid

  if command -v containerd >/dev/null && command -v runc >/dev/null; then
    d="$tmp/ctrd-$size"
    start_containerd "$d" "$addr" || continue
    dpid=$daemon_pid
    "$b/bin/bench_list" -r "unix://$d/c.sock" -i "$image" -p "$n" -c "$m" -n "$calls" -P "$dpid" $extra -l containerd
    echo "  containerd CPU $(cpu_s $dpid) s in all"
    stop_daemon $dpid
  else
    echo "containerd or runc not installed: corral's figures only"
  fi
done
