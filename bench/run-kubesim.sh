#!/usr/bin/env bash
# The kubelet simulator (bench/kubesim.py) against corral and, in the same
# run, Debian's containerd: relist latency, events delivered vs expected,
# the daemon's CPU per minute and RSS. Called by bench/run.sh (CORRAL_BUILD,
# BENCH_TMP set). KUBESIM_SIZES="110x3 330x3" (pods x containers),
# KUBESIM_DURATION=180 seconds measured per size (30 for a quick look),
# KUBESIM_ARGS for more kubesim.py options, KUBESIM_RUNTIMES="corral containerd".
set -uo pipefail
b=$CORRAL_BUILD
tmp=$BENCH_TMP/kubesim
src=$(cd "$(dirname "$0")/.." && pwd)
. "$src/bench/daemons.sh"
mkdir -p "$tmp"
py=/usr/bin/python3
export CORRAL_PYGEN=${CORRAL_PYGEN:-$b/py}
[ -f "$CORRAL_PYGEN/runtime/v1/api_pb2.py" ] || { echo "kubesim: build the pyproto target first ($CORRAL_PYGEN)"; exit 0; }
sizes=${KUBESIM_SIZES:-110x3 330x3}
dur=${KUBESIM_DURATION:-180}
runtimes=${KUBESIM_RUNTIMES:-corral containerd}
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1; }
trap cleanup EXIT
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "kubesim: no registry"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-all --addr "$addr" --only busybox,pause >/dev/null
image="$addr/busybox:latest"


for size in $sizes; do
  n=${size%x*}; m=${size#*x}
  echo "== kubesim ${n} pods x ${m} containers, ${dur} s"
  if [[ " $runtimes " == *" corral "* ]]; then
  d="$tmp/corral-$size"
  start_corrald "$d" || exit 1
  cpid=$daemon_pid
  "$py" "$src/bench/kubesim.py" --endpoint "unix://$d/c.sock" --pid $cpid --label corral --image "$image" \
    --pods "$n" --ctrs "$m" --duration "$dur" ${KUBESIM_ARGS:-}
  stop_daemon $cpid
  fi

  [[ " $runtimes " == *" containerd "* ]] || continue
  if command -v containerd >/dev/null && command -v runc >/dev/null; then
    d="$tmp/ctrd-$size"
    start_containerd "$d" "$addr" || continue
    dpid=$daemon_pid
    "$py" "$src/bench/kubesim.py" --endpoint "unix://$d/c.sock" --pid $dpid --label containerd --image "$image" \
      --pods "$n" --ctrs "$m" --duration "$dur" ${KUBESIM_ARGS:-}
    stop_daemon $dpid
  else
    echo "containerd or runc not installed: corral's figures only"
  fi
done
