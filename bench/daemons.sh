# Sourced by the bench/run-*.sh scripts: a private corrald or containerd
# in a directory of its own. Each sets $daemon_pid and appends it to pids.

# start_corrald DIR [EXTRA_JSON_KEYS]: config, root, state and socket in DIR.
start_corrald() {
  local d=$1; mkdir -p "$d/cni"
  echo "{\"cni\": {\"conf_dir\": \"$d/cni\"}${2:+, $2}}" >"$d/c.json"
  "$b/bin/corrald" --config "$d/c.json" --root "$d/root" --state "$d/state" \
    --listen "unix://$d/c.sock" --log-level warn 2>"$d/log" &
  daemon_pid=$!; pids+=("$daemon_pid")
  for _ in $(seq 200); do [ -S "$d/c.sock" ] && return 0; sleep 0.05; done
  echo "corrald did not start"; tail -5 "$d/log"; return 1
}

# start_containerd DIR REGISTRY: Debian's containerd with the CRI plugin,
# restrict_oom_score_adj (no CAP_SYS_RESOURCE here), the pause image and a
# mirror from the local registry.
start_containerd() {
  local d=$1 addr=$2; mkdir -p "$d/cni"
  cat >"$d/config.toml" <<T
version = 2
root = "$d/root"
state = "$d/state"
[grpc]
  address = "$d/c.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$addr/pause:latest"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "$d/cni"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$addr"]
    endpoint = ["http://$addr"]
T
  containerd --config "$d/config.toml" >"$d/log" 2>&1 &
  daemon_pid=$!; pids+=("$daemon_pid")
  for _ in $(seq 200); do [ -S "$d/c.sock" ] && return 0; sleep 0.05; done
  echo "containerd did not start"; tail -5 "$d/log"; return 1
}

stop_daemon() { kill "$1" 2>/dev/null; wait "$1" 2>/dev/null; }
