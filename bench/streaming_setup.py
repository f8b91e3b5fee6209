"""Set-up for bench/run-streaming.sh: a CRI runtime (corrald of the build,
or Debian's containerd when asked and installed) with a pod on a private CNI
bridge, a `sleep` container and a TCP sink container (busybox nc), images
from the test registry fixture. Prints one line
    ENDPOINT POD SLEEPER SINK_PORT
then waits for stdin to close and tears everything down.
    streaming_setup.py corral|containerd TMPDIR
Exit 77 when the runtime or the fixtures are not available here."""
import os
import subprocess
import sys
import time

import grpc

import corral_pods as cp
from corral_harness import Daemon
from runtime.v1 import api_pb2, api_pb2_grpc

SINK_PORT = 9000


def containerd(tmp, images):
    d = os.path.join(tmp, "ctrd-stream")
    cni = os.path.join(d, "cni")
    bridge = cp.cni_conflist(cni)
    reg = images.reg.addr
    with open(os.path.join(d, "config.toml"), "w") as f:
        f.write("""version = 2
root = "%(d)s/root"
state = "%(d)s/state"
[grpc]
  address = "%(d)s/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "%(reg)s/pause:latest"
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    conf_dir = "%(cni)s"
    bin_dir = "/usr/lib/cni"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."%(reg)s"]
    endpoint = ["http://%(reg)s"]
""" % {"d": d, "reg": reg, "cni": cni})
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen(["containerd", "--config", os.path.join(d, "config.toml")], stdout=log, stderr=log)
    sock = os.path.join(d, "containerd.sock")
    for _ in range(200):
        if os.path.exists(sock):
            break
        time.sleep(0.05)
    time.sleep(0.5)
    ch = grpc.insecure_channel("unix://" + sock)
    return proc, ch, "unix://" + sock, bridge


def main():
    kind, tmp = sys.argv[1], sys.argv[2]
    try:
        images = cp.Images()
        if kind == "containerd":
            cp.registry.push_all(images.reg.addr, only={"pause"})
    except Exception as e:  # noqa: BLE001
        print("SKIP registry fixture: %s" % e, flush=True)
        sys.exit(77)
    daemon = proc = None
    try:
        if kind == "corral":
            daemon = Daemon({"cgroup_driver": "cgroupfs"})
            bridge = cp.cni_conflist(os.path.join(daemon.dir, "cni"))
            daemon.start()
            ch, endpoint = daemon.channel, daemon.endpoint
        else:
            os.makedirs(os.path.join(tmp, "ctrd-stream"), exist_ok=True)
            proc, ch, endpoint, bridge = containerd(tmp, images)
        rt = api_pb2_grpc.RuntimeServiceStub(ch)
        im = api_pb2_grpc.ImageServiceStub(ch)
        im.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=images.busybox)), timeout=120)
        pcfg = cp.pod_config("bench-stream", os.path.join(tmp, "logs-" + kind))
        pcfg.linux.cgroup_parent = ""
        pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pcfg), timeout=120).pod_sandbox_id
        ids = []
        for name, cmd in (("sleeper", ["sleep", "3600"]),
                          # nc ends a connection when its stdin ends: give it one that never does
                          ("sink", ["sh", "-c", "while true; do sleep 1000000 | nc -l -p %d >/dev/null; done" % SINK_PORT])):
            cfg = cp.ctr_config(name, images.busybox, cmd)
            cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                    sandbox_config=pcfg), timeout=60).container_id
            rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
            ids.append(cid)
        time.sleep(0.5)
        print(endpoint, pod, ids[0], SINK_PORT, flush=True)
        sys.stdin.read()
        try:
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=30)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)
        except grpc.RpcError:
            pass
        cp.delete_bridge(bridge)
    except Exception as e:  # noqa: BLE001
        print("SKIP %s set-up failed: %s" % (kind, e), flush=True)
        sys.exit(77)
    finally:
        if daemon:
            daemon.cleanup()
        if proc:
            proc.terminate()
            proc.wait(30)
        images.stop()


if __name__ == "__main__":
    main()
