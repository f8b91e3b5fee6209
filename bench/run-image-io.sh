#!/usr/bin/env bash
# Image archives in and out: a ~100 MiB, 5-layer image saved by skopeo as an
# OCI archive and a docker-archive, imported into an empty corral root
# (corralctl images import: stream, hash, check diff_ids, unpack), then
# exported again (corralctl images export), 3 runs each, median and MB/s of
# the archive's size; Debian's containerd (ctr images import / export) side
# by side where installed. Called by bench/run.sh (CORRAL_BUILD, BENCH_TMP
# set) or alone.
set -uo pipefail
b=${CORRAL_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
tmp=${BENCH_TMP:-/tmp/corral-bench}/image-io
src=$(cd "$(dirname "$0")/.." && pwd)
py=/usr/bin/python3
mkdir -p "$tmp"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done;
            "$py" "$src/tests/fixtures/registry.py" stop --dir "$tmp/reg" >/dev/null 2>&1; rm -rf "$tmp"; }
trap cleanup EXIT
command -v skopeo >/dev/null || { echo "image-io: skopeo not installed"; exit 0; }
addr=$("$py" "$src/tests/fixtures/registry.py" start --dir "$tmp/reg") || { echo "image-io: no registry"; exit 0; }
"$py" "$src/tests/fixtures/registry.py" push-big --addr "$addr" --mib 100 --layers 5 >/dev/null
ref="$addr/big:latest"
skopeo copy -q --src-tls-verify=false "docker://$ref" "oci-archive:$tmp/big-oci.tar:bench.local/big:1" || exit 1
skopeo copy -q --src-tls-verify=false "docker://$ref" "docker-archive:$tmp/big-docker.tar:bench.local/big:1" || exit 1
now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mbs() { echo "scale=1; $1 / 1000000 / $2" | bc; }

start_corral() { # dir
  mkdir -p "$1/cni"; echo "{\"cni\": {\"conf_dir\": \"$1/cni\"}}" >"$1/c.json"
  "$b/bin/corrald" --config "$1/c.json" --root "$1/root" --state "$1/state" --listen "unix://$1/c.sock" \
    --log-level warn 2>"$1/log" &
  p=$!; pids+=($p)
  for _ in $(seq 200); do [ -S "$1/c.sock" ] && break; sleep 0.05; done
}

for fmt in oci docker; do
  f="$tmp/big-$fmt.tar"; size=$(stat -c %s "$f")
  imp=(); exp=()
  for i in 1 2 3; do
    d="$tmp/corral-$fmt-$i"; start_corral "$d"
    t0=$(now)
    "$b/bin/corralctl" -r "unix://$d/c.sock" images import "$f" >/dev/null 2>&1 || { echo "import failed"; cat "$d/log"; }
    t1=$(now)
    "$b/bin/corralctl" -r "unix://$d/c.sock" images export --format "$fmt-archive" -o "$d/out.tar" bench.local/big:1 \
      >/dev/null 2>&1 || echo "export failed"
    t2=$(now)
    imp+=("$(echo "$t1 - $t0" | bc)"); exp+=("$(echo "$t2 - $t1" | bc)")
    kill "$p"; wait "$p" 2>/dev/null
    umount -R "$d/root" 2>/dev/null; rm -rf "$d"
  done
  mi=$(printf '%s\n' "${imp[@]}" | median); me=$(printf '%s\n' "${exp[@]}" | median)
  echo "corral $fmt-archive ($((size / 1000000)) MB): import median $mi s ($(mbs "$size" "$mi") MB/s)," \
       "export median $me s ($(mbs "$size" "$me") MB/s)"
done

if command -v containerd >/dev/null && command -v ctr >/dev/null; then
  for fmt in oci docker; do
    f="$tmp/big-$fmt.tar"; size=$(stat -c %s "$f")
    imp=(); exp=()
    for i in 1 2 3; do
      d="$tmp/ctrd-$fmt-$i"; mkdir -p "$d"
      printf 'version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\n  address = "%s/c.sock"\n' "$d" "$d" "$d" \
        >"$d/config.toml"
      containerd --config "$d/config.toml" >"$d/log" 2>&1 &
      p=$!; pids+=($p)
      for _ in $(seq 200); do [ -S "$d/c.sock" ] && break; sleep 0.05; done
      t0=$(now)
      ctr --address "$d/c.sock" -n k8s.io images import --base-name bench.local/big "$f" >/dev/null 2>&1 ||
        echo "containerd import failed"
      t1=$(now)
      name=$(ctr --address "$d/c.sock" -n k8s.io images ls -q | head -1)
      ctr --address "$d/c.sock" -n k8s.io images export "$d/out.tar" "$name" >/dev/null 2>&1 ||
        echo "containerd export failed"
      t2=$(now)
      imp+=("$(echo "$t1 - $t0" | bc)"); exp+=("$(echo "$t2 - $t1" | bc)")
      kill "$p"; wait "$p" 2>/dev/null
      umount -R "$d/root" 2>/dev/null; rm -rf "$d"
    done
    mi=$(printf '%s\n' "${imp[@]}" | median); me=$(printf '%s\n' "${exp[@]}" | median)
    echo "containerd $fmt-archive: import median $mi s ($(mbs "$size" "$mi") MB/s)," \
         "export median $me s ($(mbs "$size" "$me") MB/s)"
  done
fi
