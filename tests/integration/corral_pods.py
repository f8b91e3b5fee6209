"""Helpers for tests that run real pods and containers: a CNI bridge config
private to one daemon, the local registry fixture with busybox images, and
small builders for CRI configs."""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

import grpc

from corral_harness import Daemon, api_pb2

try:
    import registry  # tests/fixtures/registry.py (on PYTHONPATH)
except ImportError:  # pragma: no cover
    sys.path.insert(0, os.path.join(os.environ.get("CORRAL_SOURCE_DIR", "."), "tests", "fixtures"))
    import registry


def cni_conflist(cni_dir, tag=None):
    """A bridge conflist with a unique bridge and a 10.250.x.0/24 subnet.
    Returns the bridge name (delete it with delete_bridge)."""
    # Free names only: a run that was killed may have left its bridge (with
    # another subnet) on this host, and CNI refuses to reuse it.
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    addrs = subprocess.run(["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True).stdout
    while True:
        tag = tag or "%04x" % random.randrange(0x10000)
        bridge = "crl%s" % tag
        x = random.randrange(1, 250)
        if (": %s:" % bridge) not in links and (" 10.250.%d." % x) not in addrs:
            break
        tag = None
    conf = {
        "cniVersion": "1.0.0",
        "name": "corral-test-%s" % tag,
        "plugins": [
            {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.250.%d.0/24" % x}]],
                      "routes": [{"dst": "0.0.0.0/0"}],
                      "dataDir": os.path.join(cni_dir, "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    os.makedirs(cni_dir, exist_ok=True)
    with open(os.path.join(cni_dir, "10-corral-test.conflist"), "w") as f:
        json.dump(conf, f)
    return bridge


def unmount_under(path):
    """Lazily unmount whatever a daemon left mounted under `path` (e.g. the
    <state>/ns self-bind), deepest first, so that the directory can go."""
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        targets = [line.split()[1] for line in f]
    for t in sorted((t for t in targets if t == path or t.startswith(path + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", t], capture_output=True)


def delete_bridge(name):
    subprocess.run(["ip", "link", "del", name], capture_output=True)


def start_images():
    """The registry fixture of a test module: (Images, None), or (None, why)
    when it cannot run here, for setUpModule; the tests skip with that reason."""
    try:
        return Images(), None
    except registry.Skip as e:
        return None, "registry fixture unavailable: %s" % e
    except Exception as e:  # noqa: BLE001 - any failure to get images is a skip with its reason
        return None, "registry fixture failed: %s" % e


class Images:
    """The fixture registry with the busybox image pushed; pull through the daemon."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="corral-reg-")
        self.reg = registry.Registry(self.dir).start()
        self.info = registry.push_all(self.reg.addr, only={"busybox"})
        self.busybox = "%s/busybox:latest" % self.reg.addr

    def deep(self):
        """A 121-layer image (pushed on first use)."""
        if not getattr(self, "_deep", None):
            registry.push_all(self.reg.addr, only={"deep"})
            self._deep = "%s/deep:latest" % self.reg.addr
        return self._deep

    def stop(self):
        self.reg.stop()
        subprocess.run(["rm", "-rf", self.dir])


def teardown_daemon(cls, timeout=30):
    """A test class's daemon: its log when a test failed, every pod it left
    stopped and removed through the CRI, then the daemon, mounts, state and
    bridge gone."""
    if getattr(cls, "_failed", False):
        print("----- corrald log -----\n%s" % cls.d.read_log()[-30000:])
    try:
        if cls.d.channel:
            for p in cls.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
                try:
                    cls.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=timeout)
                    cls.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id),
                                                   timeout=timeout)
                except grpc.RpcError:
                    pass
    finally:
        cls.d.stop()
        unmount_under(cls.d.dir)
        cls.d.cleanup()
        delete_bridge(cls.bridge)


def pod_config(name, log_dir, uid=None, namespace="default", attempt=0, labels=None, pid_mode=None):
    cfg = api_pb2.PodSandboxConfig(
        metadata=api_pb2.PodSandboxMetadata(name=name, uid=uid or ("uid-" + name), namespace=namespace,
                                            attempt=attempt),
        hostname=name, log_directory=log_dir, labels=labels or {"app": name})
    cfg.linux.cgroup_parent = "/corral-test"
    cfg.linux.security_context.namespace_options.network = api_pb2.POD
    # kubelet's default (shareProcessNamespace: false)
    cfg.linux.security_context.namespace_options.pid = api_pb2.CONTAINER if pid_mode is None else pid_mode
    return cfg


def ctr_config(name, image, cmd, log=None, attempt=0, **kw):
    cfg = api_pb2.ContainerConfig(
        metadata=api_pb2.ContainerMetadata(name=name, attempt=attempt),
        image=api_pb2.ImageSpec(image=image), command=cmd, log_path=log or (name + ".log"),
        labels={"ctr": name})
    cfg.linux.security_context.namespace_options.pid = api_pb2.CONTAINER
    for k, v in kw.items():
        if isinstance(v, (list, tuple)):
            getattr(cfg, k).extend(v)
        else:
            setattr(cfg, k, v)
    return cfg


def wait_state(rt, cid, state, timeout=10):
    deadline = time.time() + timeout
    st = None
    while time.time() < deadline:
        st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        if st.state == state:
            return st
        time.sleep(0.05)
    raise AssertionError("container %s did not reach state %d (last: %s)" % (cid, state, st))


def read_log(path):
    """(stream, tag, text) tuples of a CRI log file."""
    out = []
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            ts, stream, tag, text = (line.split(" ", 3) + [""])[:4]
            out.append((ts, stream, tag, text))
    return out


def shim_pids():
    """Pids of every corral-shim on the host."""
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"corral-shim":
            pids.append((int(p), [a.decode(errors="replace") for a in argv]))
    return pids


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
