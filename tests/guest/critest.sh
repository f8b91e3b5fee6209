#!/usr/bin/env bash
# critest inside the test guest: a private corrald with the cgroup driver
# CRITEST_DRIVER, registry mirrors to the host's docker-registry (10.0.2.2:5000
# through QEMU's user network), the specs CRITEST_FOCUS (tests/guest/tests.txt).
set -uo pipefail
build=$1
drv=${CRITEST_DRIVER:-systemd}
dir=$(mktemp -d /tmp/corral-critest.XXXXXX)
mkdir -p "$dir/cni"
cat >"$dir/cni/10-critest.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "corral-critest", "plugins": [
  {"type": "bridge", "bridge": "crt0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/16"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "$dir/ipam"}},
  {"type": "loopback"}]}
JSON
mirror='{"mirrors": ["http://10.0.2.2:5000"]}'
cat >"$dir/corral.json" <<JSON
{"cni": {"conf_dir": "$dir/cni"}, "cgroup_driver": "$drv",
 "registries": {"registry.k8s.io": $mirror, "gcr.io": $mirror, "docker.io": $mirror,
                "10.0.2.2:5000": {"insecure": true}}}
JSON
sock="$dir/state/corral.sock"
# As a service of its own, the way a host runs it (deploy/systemd).
systemd-run --unit "corral-critest-$drv" --quiet --collect -p KillMode=process \
  -p StandardOutput=file:"$dir/corrald.log" -p StandardError=file:"$dir/corrald.log" \
  "$build/bin/corrald" --config "$dir/corral.json" --root "$dir/root" --state "$dir/state" \
  --listen "unix://$sock" --log-level debug
crictl=/opt/cri/crictl
for _ in $(seq 200); do "$crictl" -r "unix://$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
cleanup() {
  "$crictl" -r "unix://$sock" rmp -af >/dev/null 2>&1
  systemctl stop "corral-critest-$drv" 2>/dev/null
  for m in $(awk -v d="$dir" 'index($2, d) == 1 {print $2}' /proc/self/mounts | sort -r); do umount -l "$m" 2>/dev/null; done
  ip link del crt0 2>/dev/null
  rm -rf "$dir"
}
trap cleanup EXIT
"$crictl" -r "unix://$sock" version >/dev/null 2>&1 || { echo "critest: corrald did not start:"; journalctl -u "corral-critest-$drv" | tail -20; tail -20 "$dir/corrald.log"; exit 1; }
grep -o 'started version.*' "$dir/corrald.log" | head -1
out=$dir/critest.log
start=$(date +%s)
/opt/cri/critest --runtime-endpoint "unix://$sock" --image-endpoint "unix://$sock" \
  "-ginkgo.focus=$CRITEST_FOCUS" "-ginkgo.skip=${CRITEST_SKIP:-digest|Windows|MaskedPaths}" -ginkgo.no-color >"$out" 2>&1
rc=$?
summary=$(grep -Eo '[0-9]+ Passed \| [0-9]+ Failed \| [0-9]+ Pending \| [0-9]+ Skipped' "$out" | tail -1)
echo "critest (cgroup driver $drv): ${summary:-no summary} ($(( $(date +%s) - start ))s, exit $rc)"
if [ $rc != 0 ] || [ -z "$summary" ]; then
  grep -E '^\s*\[FAIL\]' "$out" | sort -u | sed 's/^/  /'
  tail -60 "$out"; echo "--- corrald log (tail)"; tail -60 "$dir/corrald.log"
  exit 1
fi
