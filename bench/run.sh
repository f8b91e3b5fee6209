#!/usr/bin/env bash
# Benchmarks (not tests): print figures for corral and, in the same run, for
# Debian's containerd when it is installed.
#   bench/run.sh [build-dir] [version|all|kubesim|lifecycle|pull|streaming|images|vm]
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
b=${1:-$src/build/release}
what=${2:-all}
[ "$(id -u)" = 0 ] || { echo "bench: run as root"; exit 1; }
[ -x "$b/bin/corrald" ] || { cmake -S "$src" -B "$b" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null && cmake --build "$b" -j"$(nproc)" >/dev/null; }
tmp=$(mktemp -d /tmp/corral-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; umount -R "$tmp"/* 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

rss_kib() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

start_corrald() {
  mkdir -p "$tmp/corral/cni"
  echo "{\"cni\": {\"conf_dir\": \"$tmp/corral/cni\"}}" >"$tmp/corral/corral.json"
  "$b/bin/corrald" --config "$tmp/corral/corral.json" --root "$tmp/corral/root" --state "$tmp/corral/state" \
    --listen "unix://$tmp/corral/corral.sock" --log-level warn 2>"$tmp/corral/log" &
  pids+=($!); corrald_pid=$!
  for _ in $(seq 200); do [ -S "$tmp/corral/corral.sock" ] && return 0; sleep 0.05; done
  echo "corrald did not start"; cat "$tmp/corral/log"; exit 1
}

start_containerd() {
  command -v containerd >/dev/null || return 1
  mkdir -p "$tmp/ctrd"
  cat >"$tmp/ctrd/config.toml" <<TOML
version = 2
root = "$tmp/ctrd/root"
state = "$tmp/ctrd/state"
[grpc]
  address = "$tmp/ctrd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$tmp/ctrd/cni"
TOML
  mkdir -p "$tmp/ctrd/cni"
  containerd --config "$tmp/ctrd/config.toml" >"$tmp/ctrd/log" 2>&1 &
  pids+=($!); containerd_pid=$!
  for _ in $(seq 200); do [ -S "$tmp/ctrd/containerd.sock" ] && return 0; sleep 0.05; done
  echo "containerd did not start"; tail -5 "$tmp/ctrd/log"; return 1
}

start_corrald
have_ctrd=0
start_containerd && have_ctrd=1
sleep 1
echo "== idle RSS after start"
echo "corrald idle RSS: $(rss_kib "$corrald_pid") KiB"
[ $have_ctrd = 1 ] && echo "containerd idle RSS: $(rss_kib "$containerd_pid") KiB"

if [ "$what" = version ] || [ "$what" = all ]; then
  echo "== Version round trip (10,000 calls)"
  "$b/bin/bench_version" -r "unix://$tmp/corral/corral.sock" -n 10000 -c 8 -l corral
  [ $have_ctrd = 1 ] && "$b/bin/bench_version" -r "unix://$tmp/ctrd/containerd.sock" -n 10000 -c 8 -l containerd
  echo "corrald RSS after the run: $(rss_kib "$corrald_pid") KiB"
fi
for extra in "$src"/bench/run-*.sh; do
  [ -f "$extra" ] || continue
  name=$(basename "$extra" .sh); name=${name#run-}
  if [ "$what" = all ] || [ "$what" = "$name" ]; then
    CORRAL_BUILD="$b" BENCH_TMP="$tmp" bash "$extra"
  fi
done
