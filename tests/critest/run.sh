#!/usr/bin/env bash
# critest v1.32 (Kubernetes' CRI conformance suite) against a private corrald:
# its own root, state dir, socket and CNI network, registry mirrors for
# registry.k8s.io, gcr.io and docker.io pointing at a docker-registry on
# 127.0.0.1:5000 that ../shared/tools/critest-images.sh fills.
#
# Usage: tests/critest/run.sh BUILD_DIR [HANDLER...]   (HANDLER "" = the default;
# default list: "" vm, then crun and runc where corrald finds them). Prints "critest <handler>: N passed, N failed, N skipped"
# per handler; exits 1 on any failure, 77 when cri-tools are not there.
# Extra ginkgo arguments: CRITEST_ARGS (e.g. -ginkgo.focus='Idempotence').
# CRITEST_NET (default 78): the bridge crt<N> and subnet 10.<N>.0.0/16, so that
# two runs side by side do not share a network.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR [HANDLER...]}" && pwd)
shift
handlers=("$@")
if [ $# -eq 0 ]; then
  handlers=("" vm)
  # corrald configures the OCI handlers "crun" and "runc" when the binaries are there.
  for r in crun runc; do
    if command -v "$r" >/dev/null || [ -x "/usr/sbin/$r" ]; then handlers+=("$r"); fi
  done
fi
shared=${CORRAL_SHARED_DIR:-$src/../shared}
skip_re=${CRITEST_SKIP:-'digest|Windows|MaskedPaths'}

if [ ! -x "$shared/cri-tools/unpack.sh" ] || [ ! -x "$shared/tools/critest-images.sh" ]; then
  echo "critest: skipped: cri-tools not found (looked for $shared/cri-tools and $shared/tools/critest-images.sh)"
  exit 77
fi
for p in docker-registry umoci skopeo; do
  command -v "$p" >/dev/null || { echo "critest: skipped: $p not installed"; exit 77; }
done

tools="$build/cri-tools"
if [ ! -x "$tools/critest" ] || [ ! -x "$tools/crictl" ]; then
  mkdir -p "$tools" && "$shared/cri-tools/unpack.sh" "$tools" >/dev/null || { echo "critest: unpack failed"; exit 1; }
fi

# The fixture images, built once per build dir (the registry is restarted if gone).
imgdir="$build/critest-images"
stamp="$imgdir/.pushed"
if [ ! -f "$stamp" ] || ! curl -sf http://127.0.0.1:5000/v2/ >/dev/null; then
  mkdir -p "$imgdir"
  if ! W="$imgdir" bash "$shared/tools/critest-images.sh" >"$imgdir/build.log" 2>&1; then
    echo "critest: fixture images failed:"; tail -20 "$imgdir/build.log"; exit 1
  fi
  touch "$stamp"
fi

# The VM guest image, when a handler needs it.
for h in "${handlers[@]}"; do
  if [ "$h" = vm ] && { [ ! -f "$build/vm/initramfs.img" ] || [ "$build/bin/corral-agent" -nt "$build/vm/initramfs.img" ]; }; then
    cmake --build "$build" --target guest-image >"$build/guest-image.log" 2>&1 ||
      { echo "critest: guest image failed:"; tail -20 "$build/guest-image.log"; exit 1; }
  fi
done

net=${CRITEST_NET:-78}
dir=$(mktemp -d /tmp/corral-critest.XXXXXX)
mkdir -p "$dir/cni" "$dir/logs"
# Its own bridge and subnet, so a corrald or containerd on the host is not disturbed.
cat >"$dir/cni/10-critest.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "corral-critest", "plugins": [
  {"type": "bridge", "bridge": "crt$net", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.$net.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$dir/ipam"}},
  {"type": "loopback"}]}
JSON
mirror='{"mirrors": ["http://127.0.0.1:5000"]}'
cat >"$dir/corral.json" <<JSON
{"cni": {"conf_dir": "$dir/cni"},
 "registries": {"registry.k8s.io": $mirror, "gcr.io": $mirror, "docker.io": $mirror,
                "127.0.0.1:5000": {"insecure": true}},
 "runtimes": {"vm": {"kernel": "$build/vm/vmlinux", "initrd": "$build/vm/initramfs.img"}}}
JSON
sock="$dir/state/corral.sock"
"$build/bin/corrald" --config "$dir/corral.json" --root "$dir/root" --state "$dir/state" \
  --listen "unix://$sock" --log-level debug >"$dir/corrald.log" 2>&1 &
daemon=$!
cleanup() {
  # VM pods outlive corrald by design (their shims survive a restart): remove what
  # critest left, through the CRI, before the daemon goes.
  left=$("$tools/crictl" -r "unix://$sock" pods -q 2>/dev/null | wc -l)
  [ "$left" = 0 ] || { echo "critest: removing $left pods left behind"; "$tools/crictl" -r "unix://$sock" rmp -af >/dev/null 2>&1; }
  kill "$daemon" 2>/dev/null
  wait "$daemon" 2>/dev/null
  # Anything critest left behind goes with the daemon's state.
  for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
  ip link del "crt$net" 2>/dev/null
  [ -n "${CRITEST_KEEP:-}" ] || rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && "$tools/crictl" -r "unix://$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
"$tools/crictl" -r "unix://$sock" version >/dev/null 2>&1 || { echo "critest: corrald did not start:"; tail -20 "$dir/corrald.log"; exit 1; }

fail=0
for h in "${handlers[@]}"; do
  name=${h:-default}
  out="$build/critest-$name.log"
  echo "critest $name: running (log in $out)"
  # What the handler declares it cannot do (Status verbose, runtimeHandlers[].unsupported)
  # is skipped by name, with the handler's reason printed: a declared limit, not a failure.
  # critest has no skip of its own for these (it has for user namespaces and recursive
  # read-only mounts, which handlers declare in their CRI features).
  declared=$("$tools/crictl" -r "unix://$sock" info -o json 2>/dev/null | /usr/bin/python3 -c '
import json, sys
specs = {  # a declared feature -> the critest v1.32 specs that need it
    "hostNetwork": ["HostNetwork is true", "portforward in host network"],
    "hostPID": ["runtime should support HostPID"],
    "hostIPC": ["HostIpc is true"],
    "mountPropagationBidirectional": ["mount with .rshared."],
}
handlers = json.loads(json.load(sys.stdin)["runtimeHandlers"])
for h in handlers:
    if h["name"] == sys.argv[1]:
        for u in h.get("unsupported", []):
            for spec in specs.get(u["feature"], []):
                print("%s	%s	%s" % (spec, u["feature"], u["reason"]))
' "$h")
  hskip=$skip_re
  if [ -n "$declared" ]; then
    echo "critest $name: the handler declares unsupported (skipped by name):"
    while IFS=$'\t' read -r spec feature reason; do
      echo "  $feature: '$spec' ($reason)"
      hskip="$hskip|$spec"
    done <<<"$declared"
  fi
  report="$build/critest-$name.json"
  rm -f "$report"
  args=(--runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" "-ginkgo.skip=$hskip" -ginkgo.no-color
        "-ginkgo.json-report=$report")
  [ -n "$h" ] && args+=(-runtime-handler "$h")
  start=$(date +%s)
  # shellcheck disable=SC2086
  "$tools/critest" "${args[@]}" ${CRITEST_ARGS:-} >"$out" 2>&1
  rc=$?
  secs=$(($(date +%s) - start))
  # ginkgo's summary: "Ran 87 of 97 Specs ..." then "SUCCESS! -- 80 Passed | 0 Failed | 0 Pending | 17 Skipped"
  summary=$(grep -Eo '[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped' "$out" | tail -1)
  if [ -z "$summary" ]; then
    echo "critest $name: no summary (exit $rc, ${secs}s); last lines of $out:"; tail -30 "$out"; fail=1; continue
  fi
  read -r np _ _ nf _ _ _ _ _ ns _ <<<"$summary"
  echo "critest $name: $np passed, $nf failed, $ns skipped (${secs}s)"
  # Every skip and why: ours (-ginkgo.skip) or the spec's own (a handler feature, the host).
  [ -f "$report" ] && /usr/bin/python3 - "$report" "$hskip" <<'PY'
import collections, json, sys
why = collections.Counter()
for suite in json.load(open(sys.argv[1])):
    for s in suite.get("SpecReports") or []:
        if s.get("State") != "skipped":
            continue
        msg = ((s.get("Failure") or {}).get("Message") or "").strip()
        why[msg or "not selected (-ginkgo.skip=%s, or a focus)" % sys.argv[2]] += 1
for msg, n in sorted(why.items()):
    print("  skipped %2d: %s" % (n, msg))
PY
  if [ "$nf" != 0 ] || [ $rc != 0 ]; then
    fail=1
    grep -E '^\s*\[FAIL\]' "$out" | sort -u | sed 's/^/  /'
  fi
done
[ $fail = 0 ] || { cp "$dir/corrald.log" "$build/critest-corrald.log" 2>/dev/null; echo "critest: corrald log in $build/critest-corrald.log"; }
exit $fail
