"""Churn with crashes: parallel pod lifecycles (RunPodSandbox, CreateContainer,
StartContainer, StopPodSandbox, RemovePodSandbox; host network and CNI both)
while corrald is killed with SIGKILL at random points and started again.

After each restart corrald must start and answer, and what it lists must be
what its journal (the store) holds. At the end, once every pod is stopped
and removed the way kubelet would (retrying on the same ids), nothing may be
left: no shim or corrald fork, no mount or pinned namespace under its
directories, no veth on the bridge, no cgroup, no nft rule, no store row."""
import json
import os
import random
import signal
import sqlite3
import subprocess
import threading
import time
import unittest

import grpc

import corral_harness
from corral_harness import Daemon, api_pb2
from corral_pods import Images, cni_conflist, ctr_config, delete_bridge, unmount_under

WORKERS = 4
KILLS = 6
RUN_SECONDS = 40


def procs_mentioning(text):
    """(pid, argv0) of processes whose command line mentions text."""
    out = []
    me = os.getpid()
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == me:
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if any(text.encode() in a for a in argv):
            out.append((int(p), os.path.basename(argv[0]).decode(errors="replace")))
    return out


def describe(pids):
    out = []
    for p in pids:
        try:
            with open("/proc/%d/status" % p) as f:
                st = {k: v.strip() for k, v in (line.split(":", 1) for line in f if ":" in line)}
            with open("/proc/%d/wchan" % p) as f:
                wchan = f.read()
            fds = {fd: os.readlink("/proc/%d/fd/%s" % (p, fd)) for fd in os.listdir("/proc/%d/fd" % p)}
            out.append("pid %d ppid %s state %s wchan %s sigblk %s fds %s" % (
                p, st.get("PPid"), st.get("State"), wchan, st.get("SigBlk"), fds))
        except OSError as ex:
            out.append("pid %d: %s" % (p, ex))
    return "; ".join(out)


def mounts_under(path):
    path = os.path.realpath(path)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            target = parts[4]
            fstype = parts[parts.index("-") + 1]
            if target == path or target.startswith(path + "/"):
                out.append((target, fstype))
    return out


class Churn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.images = Images()
        cls.cni_dir = os.path.join("/tmp", "corral-churn-cni-%d" % os.getpid())
        cls.bridge = cni_conflist(cls.cni_dir)
        cls.cgroup = "/corral-churn-%04x" % random.randrange(0x10000)
        cls.d = Daemon(cni_dir=cls.cni_dir).start()
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=cls.images.busybox)),
                              timeout=120)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n%s" % cls.d.read_log()[-30000:])
        try:  # after a failure: what the test did not get to remove
            if cls.d.proc is None:
                cls.d.start(timeout=20)
            for p in cls.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
                try:
                    cls.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                    cls.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id),
                                                   timeout=60)
                except grpc.RpcError:
                    pass
        except Exception:  # noqa: BLE001
            pass
        cls.d.stop()
        unmount_under(cls.d.dir)
        cls.d.cleanup()
        delete_bridge(cls.bridge)
        subprocess.run(["rm", "-rf", cls.cni_dir])
        cls.images.stop()

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # ---------- the workload ----------

    def rt(self):
        """The current daemon's stub; waits while it is down."""
        while True:
            with self.mu:
                if self.up:
                    return self.d.runtime
            time.sleep(0.05)

    def call(self, name, req, timeout=60):
        """One CRI call, retried (as kubelet does) while the daemon is down;
        a stop or remove also on any error (kubelet retries those until
        they succeed), each such error counted and shown."""
        tries = 0
        while True:
            try:
                return getattr(self.rt(), name)(req, timeout=timeout)
            except grpc.RpcError as ex:
                if ex.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                 grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNKNOWN):
                    time.sleep(0.1)
                    continue
                tries += 1
                if name in ("StopPodSandbox", "RemovePodSandbox") and tries < 5:
                    with self.mu:
                        self.retried.append("%s: %s" % (name, ex.details()))
                    time.sleep(0.2)
                    continue
                raise

    def worker(self, w):
        n = 0
        try:
            while not self.done.is_set():
                n += 1
                name = "churn-%d-%d" % (w, n)
                cfg = api_pb2.PodSandboxConfig(
                    metadata=api_pb2.PodSandboxMetadata(name=name, uid="uid-" + name, namespace="churn"),
                    hostname=name, labels={"app": "churn"})
                cfg.linux.cgroup_parent = self.cgroup
                host = (w + n) % 2 == 0
                cfg.linux.security_context.namespace_options.network = api_pb2.NODE if host else api_pb2.POD
                if not host:  # a hostPort: nft rules to leave nothing of
                    cfg.port_mappings.append(api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=80,
                                                                 host_port=random.randrange(20000, 60000)))
                # Same metadata on a retry: the daemon hands back the same pod.
                pod = self.call("RunPodSandbox", api_pb2.RunPodSandboxRequest(config=cfg)).pod_sandbox_id
                with self.mu:
                    self.pods.add(pod)
                    self.all_pods.add(pod)
                cc = ctr_config("c", self.images.busybox, ["sleep", "3600"], log="")
                cc.ClearField("log_path")
                try:
                    cid = self.call("CreateContainer", api_pb2.CreateContainerRequest(
                        pod_sandbox_id=pod, config=cc, sandbox_config=cfg)).container_id
                    self.call("StartContainer", api_pb2.StartContainerRequest(container_id=cid))
                except grpc.RpcError:
                    pass  # e.g. the create was repeated after a kill: kubelet would go on too
                self.call("StopPodSandbox", api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=90)
                self.call("RemovePodSandbox", api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=90)
                with self.mu:
                    self.pods.discard(pod)
                    self.cycles += 1
        except Exception as ex:  # noqa: BLE001
            self.errors.append("worker %d: %r" % (w, ex))

    # ---------- the checks ----------

    def pod_inits(self):
        """Pids of the pods' init processes (forks of corrald by design, like pause)."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.root, "corral.db"), uri=True)
        try:
            return {json.loads(r[0] or "{}").get("pod_init_pid", 0) for r in db.execute("SELECT extra_json FROM pods")}
        finally:
            db.close()

    def journal(self):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.root, "corral.db"), uri=True)
        try:
            pods = {r[0]: r[1] for r in db.execute("SELECT id, state FROM pods")}
            ctrs = {r[0]: (r[1], r[2]) for r in db.execute("SELECT id, state, extra_json FROM containers")}
        finally:
            db.close()
        return pods, ctrs

    def check_listing_is_journal(self):
        listed_pods = {p.id for p in self.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
        listed_ctrs = {c.id for c in self.d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers}
        pods, ctrs = self.journal()
        self.assertEqual(listed_pods, {i for i, st in pods.items() if st != 100})  # 100: CREATING
        ready = {i for i, (st, x) in ctrs.items() if st != 0 or '"ready":true' in (x or "")}
        self.assertEqual(listed_ctrs, ready)

    def test_churn_with_kills(self):
        self.mu = threading.Lock()
        self.up = True
        self.done = threading.Event()
        self.pods = set()
        self.all_pods = set()
        self.cycles = 0
        self.errors = []
        self.retried = []
        threads = [threading.Thread(target=self.worker, args=(w,), daemon=True) for w in range(WORKERS)]
        for t in threads:
            t.start()
        d = self.d
        deadline = time.time() + RUN_SECONDS
        kills = 0
        while kills < KILLS and time.time() < deadline:
            time.sleep(random.uniform(1.0, 4.0))
            with self.mu:
                self.up = False
            old = d.proc.pid
            d.kill()
            kills += 1
            # corrald starts again, and answers.
            d.start(timeout=20)
            self.assertNotEqual(d.proc.pid, old)
            # It answers. (Until the new daemon has bound its socket, a
            # connection may still reach the killed one's, held for an
            # instant by a fork of it between fork and exec.)
            answer_by = time.time() + 15
            while True:
                try:
                    d.runtime.Version(api_pb2.VersionRequest(), timeout=5)
                    break
                except grpc.RpcError:
                    if time.time() > answer_by:
                        raise
                    time.sleep(0.1)
            # Nothing of the killed daemon kept running as a fork of it.
            # (A fork between fork and exec, or a pod init being made, lives
            # for an instant: look again before calling it left over.)
            for _ in range(20):
                inits = self.pod_inits()
                forks = [p for p, name in procs_mentioning(d.config)
                         if p != d.proc.pid and name != "corral-shim" and p not in inits]
                if not forks:
                    break
                time.sleep(0.1)
            self.assertEqual(forks, [], "processes of the killed corrald are still there: %s" % describe(forks))
            self.check_listing_is_journal()
            with self.mu:
                self.up = True
        self.done.set()
        for t in threads:
            t.join(timeout=120)
        self.assertEqual(self.errors, [])
        self.assertGreater(self.cycles, 0)
        for r in self.retried:
            print("retried (kubelet would): %s" % r)

        # What a kill interrupted is finished the way kubelet would.
        for p in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=90)
            d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=90)
        self.assertEqual(list(d.runtime.ListContainers(api_pb2.ListContainersRequest()).containers), [])
        d.stop()

        pods, ctrs = self.journal()
        self.assertEqual((pods, ctrs), ({}, {}), "store rows left")
        left = procs_mentioning(d.dir)
        self.assertEqual(left, [], "processes left (shims, corrald forks)")
        # The state dir's own bind may stay; no pinned namespace, no rootfs.
        mounts = [m for m in mounts_under(d.dir) if m[1] != "tmpfs" or "/ns" not in m[0]]
        mounts = [m for m in mounts if not (m[0].endswith("/state/ns") or m[0].endswith("/ns"))]
        self.assertEqual(mounts, [], "mounts left")
        self.assertEqual([m for m in mounts_under(d.dir) if m[1] == "nsfs"], [], "pinned namespaces left")
        links = subprocess.run(["ip", "-o", "link", "show", "master", self.bridge], capture_output=True,
                               text=True).stdout
        self.assertEqual(links.strip(), "", "veths left on the bridge")
        cg = []
        for root, dirs, _ in os.walk("/sys/fs/cgroup"):
            if os.path.basename(root) == self.cgroup.strip("/"):
                cg += [os.path.join(root, x) for x in dirs]
                dirs[:] = []
        self.assertEqual(cg, [], "cgroups left")
        nft = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
        seen = set()
        for line in nft.splitlines():
            if "corral:" in line:
                seen.add(line.split("corral:")[1].split('"')[0])
        self.assertEqual(seen & self.all_pods, set(), "nft rules left")


if __name__ == "__main__":
    corral_harness.main()
