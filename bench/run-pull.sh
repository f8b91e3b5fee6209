#!/usr/bin/env bash
# Pull-and-unpack of a ~100 MiB, 5-layer image from a local registry, for
# corral (PullImage) and Debian's containerd (ctr image pull, which also
# unpacks into its overlayfs snapshotter), each from an empty store, 3 runs,
# in the same run. Called by bench/run.sh (CORRAL_BUILD, BENCH_TMP set).
set -uo pipefail
b=$CORRAL_BUILD
tmp=$BENCH_TMP/pull
src=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
mkdir -p "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1; }
trap cleanup EXIT
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "pull: no registry"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-big --addr "$addr" --mib 100 --layers 5 >/dev/null
ref="$addr/big:latest"
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== pull + unpack of $ref (~100 MiB, 5 layers)"
runs=()
for i in 1 2 3; do
  d="$tmp/corral-$i"; mkdir -p "$d/cni"
  echo "{\"cni\": {\"conf_dir\": \"$d/cni\"}}" >"$d/c.json"
  "$b/bin/corrald" --config "$d/c.json" --root "$d/root" --state "$d/state" --listen "unix://$d/c.sock" \
    --log-level warn 2>"$d/log" &
  p=$!; pids+=($p)
  for _ in $(seq 200); do [ -S "$d/c.sock" ] && break; sleep 0.05; done
  t0=$(now)
  "$b/bin/corralctl" -r "unix://$d/c.sock" pull "$ref" >/dev/null || { echo "corral pull failed"; cat "$d/log"; }
  t1=$(now)
  runs+=("$(echo "$t1 - $t0" | bc)")
  kill $p; wait $p 2>/dev/null
  umount -R "$d/root" 2>/dev/null; rm -rf "$d"
done
c=$(printf '%s\n' "${runs[@]}" | median)
echo "corral:     runs ${runs[*]} s, median $c s"

if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  runs=()
  for i in 1 2 3; do
    d="$tmp/ctrd-$i"; mkdir -p "$d"
    cat >"$d/config.toml" <<T
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/c.sock"
T
    containerd --config "$d/config.toml" >"$d/log" 2>&1 &
    p=$!; pids+=($p)
    for _ in $(seq 200); do [ -S "$d/c.sock" ] && break; sleep 0.05; done
    t0=$(now)
    ctr --address "$d/c.sock" -n k8s.io image pull --plain-http "$ref" >/dev/null || echo "containerd pull failed"
    t1=$(now)
    runs+=("$(echo "$t1 - $t0" | bc)")
    kill $p; wait $p 2>/dev/null
    umount -R "$d/root" 2>/dev/null; rm -rf "$d"
  done
  k=$(printf '%s\n' "${runs[@]}" | median)
  echo "containerd: runs ${runs[*]} s, median $k s"
  echo "speed-up: $(echo "scale=2; $k / $c" | bc)x"
else
  echo "containerd not installed: corral's figures only"
fi
