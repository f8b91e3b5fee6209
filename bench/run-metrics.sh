#!/usr/bin/env bash
# CRI metrics: the cost of one ListPodSandboxMetrics with 10 and 50 pods
# (bench/pod_metrics.py). Called by bench/run.sh with CORRAL_BUILD set.
set -uo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
b=${CORRAL_BUILD:-$src/build/release}
echo "== CRI metrics (ListPodSandboxMetrics vs ListPodSandboxStats)"
[ -f "$b/py/runtime/v1/api_pb2.py" ] || cmake --build "$b" --target pyproto >/dev/null
CORRALD=$b/bin/corrald PYTHONPATH=$b/py:$src/tests/integration:$src/tests/fixtures \
  /usr/bin/python3 "$src/bench/pod_metrics.py" ${METRICS_BENCH_PODS:-10 50}
