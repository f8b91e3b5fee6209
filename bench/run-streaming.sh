#!/usr/bin/env bash
# Streaming benchmarks (called by bench/run.sh with CORRAL_BUILD and BENCH_TMP):
#   exec round-trip latency: Exec RPC + SPDY session of `true`, 100 times
#   port-forward throughput: 1 GiB through one SPDY port-forward connection
#     into a sink (busybox nc) in the pod, MiB/s
# Each runtime gets its own pod on a private CNI bridge, images from the
# test registry fixture (bench/streaming_setup.py). containerd's figures
# come from the same client (bench_streaming speaks CRI and SPDY; Debian
# has no crictl) when containerd is installed and its set-up works here.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
b=${CORRAL_BUILD:-$src/build/release}
tmp=${BENCH_TMP:-$(mktemp -d /tmp/corral-bench-XXXXXX)}
mib=${STREAM_BENCH_MIB:-1024}
n=${STREAM_BENCH_N:-100}
py=/usr/bin/python3
export CORRALD=$b/bin/corrald
export PYTHONPATH=$b/py:$src/tests/integration:$src/tests/fixtures:$src/bench
[ -x "$b/bin/bench_streaming" ] || { echo "bench: $b/bin/bench_streaming is not built"; exit 1; }
[ -f "$b/py/runtime/v1/api_pb2.py" ] || cmake --build "$b" --target pyproto >/dev/null

bench_one() { # kind label
  local kind=$1 label=$2
  coproc SETUP { "$py" "$src/bench/streaming_setup.py" "$kind" "$tmp" 2>"$tmp/setup-$kind.log"; }
  local line=""
  read -r -t 300 line <&"${SETUP[0]}" || true
  case "$line" in
    unix://*) ;;
    *) echo "$label: skipped (${line:-set-up failed: $(tail -3 "$tmp/setup-$kind.log" | tr '\n' ' ')})"
       exec {SETUP[1]}>&-; wait "$SETUP_PID" 2>/dev/null; return 0 ;;
  esac
  local ep pod ctr port
  read -r ep pod ctr port <<<"$line"
  "$b/bin/bench_streaming" -r "$ep" latency -n "$n" -l "$label" "$ctr" true
  "$b/bin/bench_streaming" -r "$ep" pf -m "$mib" -l "$label" "$pod" "$port"
  exec {SETUP[1]}>&-
  wait "$SETUP_PID" 2>/dev/null
}

echo "== streaming: exec round trip (true x$n) and port-forward throughput ($mib MiB)"
bench_one corral corral
if command -v containerd >/dev/null && command -v runc >/dev/null; then
  bench_one containerd containerd
else
  echo "containerd: not installed, no figures"
fi
