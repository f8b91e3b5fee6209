#!/usr/bin/env bash
# Pod/container lifecycle (critest-style, 30 samples), 10 pods started one at
# a time and in parallel (LIFECYCLE_ROUNDS=5 rounds of each, in turn, medians),
# and memory per pod with 50 running pods, for corral
# (its native bridge path, and the same with cni.native off: the plugins
# run) and, in the same run, Debian's containerd; one CNI config shape
# (bridge + host-local with ipMasq, loopback) for all.
# Called by bench/run.sh (CORRAL_BUILD, BENCH_TMP set).
set -uo pipefail
b=$CORRAL_BUILD
tmp=$BENCH_TMP/lifecycle
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$tmp"
py=/usr/bin/python3
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1;
            ip link del crlbench0 2>/dev/null; ip link del crlbench1 2>/dev/null; ip link del crlbench2 2>/dev/null; }
trap cleanup EXIT
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "lifecycle: no registry"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-all --addr "$addr" --only busybox,pause >/dev/null
image="$addr/busybox:latest"

cni() { # dir bridge subnet
  mkdir -p "$1"
  cat >"$1/10-bench.conflist" <<J
{"cniVersion": "1.0.0", "name": "bench-$2", "plugins": [
 {"type": "bridge", "bridge": "$2", "isGateway": true, "ipMasq": true,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$3"}]], "dataDir": "$1/ipam"}},
 {"type": "loopback"}]}
J
}
# 0 for a process gone or a zombie (no VmRSS line): sum_rss's arithmetic
# failed on an empty answer while shims of removed pods exited.
rss_kib() { awk '/VmRSS/ {print $2; f = 1} END {if (!f) print 0}' "/proc/$1/status" 2>/dev/null || echo 0; }
# Processes by their command line (comm is cut at 15 characters:
# "containerd-shim-runc-v2" would never match pgrep -x).
sum_rss() { local s=0; for p in $(pgrep -f "$1"); do s=$((s + $(rss_kib "$p"))); done; echo $s; }

load() { echo "($1: load average $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) CPUs)"; }

measure() { # label endpoint daemon-pid shim-name [nomem]
  load "$1"
  "$b/bin/bench_lifecycle" -r "$2" -i "$image" -n 30 -P 10 -R "${LIFECYCLE_ROUNDS:-5}" -l "$1" -L "$tmp/logs-$1"
  [ "${5:-}" = nomem ] && return
  coproc BL { "$b/bin/bench_lifecycle" -r "$2" -i "$image" -n 0 -p 50 -l "$1" -L "$tmp/logs-$1"; }
  read -r line <&"${BL[0]}"; echo "$line"
  sleep 2
  local shims; shims=$(sum_rss "$4")
  local n; n=$(pgrep -fc "$4")
  echo "$1 with 50 pods: daemon RSS $(rss_kib "$3") KiB, $n $4 processes, $((shims / (n > 0 ? n : 1))) KiB RSS each" \
       "($shims KiB total)"
  if [ "$4" = containerd-shim-runc-v2 ]; then
    local pauses; pauses=$(pgrep -f "sleep 2147483647" | wc -l)
    echo "$1: $pauses pause containers (busybox sleep), $(( $(sum_rss "sleep 2147483647") / (pauses > 0 ? pauses : 1) )) KiB RSS each"
  fi
  echo >&"${BL[1]}"; wait "$BL_PID" 2>/dev/null
}

start_corral() { # dir bridge subnet native
  cni "$tmp/$1-cni" "$2" "$3"
  mkdir -p "$tmp/$1"
  echo "{\"cni\": {\"conf_dir\": \"$tmp/$1-cni\", \"bin_dirs\": [\"/usr/lib/cni\"], \"native\": $4}}" >"$tmp/$1/c.json"
  "$b/bin/corrald" --config "$tmp/$1/c.json" --root "$tmp/$1/root" --state "$tmp/$1/state" \
    --listen "unix://$tmp/$1/c.sock" --log-level warn 2>"$tmp/$1/log" &
  cpid=$!; pids+=($cpid)
  for _ in $(seq 200); do [ -S "$tmp/$1/c.sock" ] && break; sleep 0.05; done
}

echo "== CNI ADD + DEL alone (bench_cni: the native path, then the plugins; same config shape)"
cni "$tmp/cni-alone" crlbench3 10.254.0.0/16
load bench_cni
"$b/bin/bench_cni" -c "$tmp/cni-alone" -b /usr/lib/cni -n 30 -s "$tmp/cni-alone/state"
ip link del crlbench3 2>/dev/null
umount -l "$tmp/cni-alone/state/ns" 2>/dev/null # the pins' private bind of their root

echo "== lifecycle"
start_corral corral crlbench0 10.251.0.0/16 true
measure corral "unix://$tmp/corral/c.sock" $cpid corral-shim
kill $cpid; wait $cpid 2>/dev/null
start_corral corral-plugins crlbench2 10.253.0.0/16 false
measure "corral (cni.native off)" "unix://$tmp/corral-plugins/c.sock" $cpid corral-shim nomem
kill $cpid; wait $cpid 2>/dev/null

# containerd (Debian), with a busybox-based pause image from the same registry
if command -v containerd >/dev/null && command -v runc >/dev/null; then
  cni "$tmp/ctrd-cni" crlbench1 10.252.0.0/16
  mkdir -p "$tmp/ctrd"
  cat >"$tmp/ctrd/config.toml" <<T
version = 2
root = "$tmp/ctrd/root"
state = "$tmp/ctrd/state"
[grpc]
  address = "$tmp/ctrd/c.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$addr/pause:latest"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$tmp/ctrd-cni"
    bin_dir = "/usr/lib/cni"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$addr"]
    endpoint = ["http://$addr"]
T
  containerd --config "$tmp/ctrd/config.toml" >"$tmp/ctrd/log" 2>&1 &
  dpid=$!; pids+=($dpid)
  for _ in $(seq 200); do [ -S "$tmp/ctrd/c.sock" ] && break; sleep 0.05; done
  measure containerd "unix://$tmp/ctrd/c.sock" $dpid containerd-shim-runc-v2
else
  echo "containerd or runc not installed: corral's figures only"
fi
