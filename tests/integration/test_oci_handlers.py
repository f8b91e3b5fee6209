"""OCI runtime handlers end to end: pods with runtime_handler "crun" and
"runc" (configured by default when the binaries are on PATH), busybox from
the local registry fixture, containers created by the runtime binary that
corral-shim drives. The same CRI behaviour as corral's own containers: CRI
logs, exit codes, exec, attach, a tty, a SIGKILL of corrald, and removal that
leaves nothing behind. Run as root."""
import json
import os
import shutil
import subprocess
import time
import unittest

import grpc

from corral_harness import CORRALCTL, Daemon, api_pb2, main
import corral_pods as cp

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED

_skip_reason = None
_images = None


def setUpModule():
    global _skip_reason, _images
    _images, _skip_reason = cp.start_images()


def tearDownModule():
    if _images:
        _images.stop()


def which(name):
    return shutil.which(name) or (os.access("/usr/sbin/" + name, os.X_OK) and "/usr/sbin/" + name) or None


class OciBase(unittest.TestCase):
    handler = None  # "crun" or "runc"

    @classmethod
    def setUpClass(cls):
        if cls.handler is None:
            raise unittest.SkipTest("base class")
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        cls.runtime = which(cls.handler)
        if not cls.runtime:
            raise unittest.SkipTest("%s is not installed" % cls.handler)
        cls.d = Daemon({"cgroup_driver": "cgroupfs"})
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.rt = cls.d.runtime
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=_images.busybox)),
                              timeout=120)
        cls.image = _images.busybox
        cls.logdir = os.path.join(cls.d.dir, "logs")
        cls.runtime_root = os.path.join(cls.d.state, "oci", cls.handler)
        cls.pod, cls.pcfg = cls.new_pod(cls, "main")

    @classmethod
    def tearDownClass(cls):
        cp.teardown_daemon(cls, timeout=30)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # ---- helpers ----

    def new_pod(self, name):
        cfg = cp.pod_config(name, os.path.join(self.logdir, name))
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=self.handler),
                                    timeout=60).pod_sandbox_id
        return pid, cfg

    def start_ctr(self, name, cmd, pod=None, pcfg=None, **kw):
        cfg = cp.ctr_config(name, self.image, cmd, **kw)
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod or self.pod, config=cfg, sandbox_config=pcfg or self.pcfg), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        return cid

    def status(self, cid):
        return self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid, verbose=True))

    def oci_state(self, cid):
        """The runtime's own view (`RUNTIME --root R state ID`), None when it has no such container."""
        r = subprocess.run([self.runtime, "--root", self.runtime_root, "state", cid], capture_output=True,
                           text=True)
        return json.loads(r.stdout) if r.returncode == 0 else None

    # ---- tests ----

    def test_status_lists_the_handler(self):
        info = self.rt.Status(api_pb2.StatusRequest(verbose=True)).info
        hs = {h["name"]: h for h in json.loads(info["runtimeHandlers"])}
        self.assertEqual(hs[self.handler]["type"], "oci")
        self.assertTrue(hs[self.handler]["usable"], hs[self.handler])
        self.assertEqual(hs[self.handler]["runtimePath"], self.runtime)

    def test_logs_and_exit_code(self):
        cid = self.start_ctr("echo", ["sh", "-c", "echo hello out; echo hello err >&2; exit 3"])
        st = cp.wait_state(self.rt, cid, EXITED, timeout=20)
        self.assertEqual(st.exit_code, 3)
        self.assertEqual(st.reason, "Error")
        streams = {(s, tag, t) for _, s, tag, t in cp.read_log(st.log_path)}
        self.assertIn(("stdout", "F", "hello out"), streams)
        self.assertIn(("stderr", "F", "hello err"), streams)

    def test_runtime_created_it(self):
        cid = self.start_ctr("sleeper", ["sleep", "600"])
        cp.wait_state(self.rt, cid, RUNNING)
        st = self.oci_state(cid)
        self.assertIsNotNone(st, "%s has no container %s under %s" % (self.handler, cid, self.runtime_root))
        self.assertEqual(st["status"], "running")
        pid = json.loads(self.status(cid).info["info"])["pid"]
        self.assertEqual(st["pid"], pid)
        # the pod's pinned network namespace, as for corral's own containers
        pod = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=self.pod, verbose=True))
        netns = json.loads(pod.info["info"])["netns"]
        self.assertEqual(os.stat("/proc/%d/ns/net" % pid).st_ino, os.stat(netns).st_ino)

    def test_exec(self):
        cid = self.start_ctr("execme", ["sleep", "600"])
        cp.wait_state(self.rt, cid, RUNNING)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo hi; exit 7"],
                                                     timeout=10))
        self.assertEqual((r.stdout, r.exit_code), (b"hi\n", 7))
        r = self.d.ctl("exec", cid, "sh", "-c", "echo streamed; exit 5", check=False)
        self.assertEqual(r.stdout, "streamed\n")
        self.assertEqual(r.returncode, 5, r.stderr)

    def test_exec_timeout_kills_the_command(self):
        cid = self.start_ctr("slowexec", ["sleep", "600"], envs=[api_pb2.KeyValue(key="GREETING", value=b"hi")])
        cp.wait_state(self.rt, cid, RUNNING)
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sleep", "31"], timeout=1), timeout=20)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, cm.exception.details())
        deadline = time.time() + 5
        while True:
            ps = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["ps", "-o", "args"], timeout=10))
            if b"sleep 31" not in ps.stdout or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertNotIn(b"sleep 31", ps.stdout)
        # the container's environment and user
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $GREETING $(id -u)"],
                                                     timeout=10))
        self.assertEqual(r.stdout, b"hi 0\n")

    def test_attach(self):
        cid = self.start_ctr("ticker", ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"])
        p = subprocess.Popen([CORRALCTL, "--endpoint",
                              self.d.endpoint, "attach", cid], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            line = p.stdout.readline()
            self.assertTrue(line.startswith(b"tick "), line)
        finally:
            p.kill()
            p.communicate()

    def test_tty(self):
        cid = self.start_ctr("tty", ["sh", "-c", "tty; echo done"], tty=True)
        st = cp.wait_state(self.rt, cid, EXITED, timeout=20)
        self.assertEqual(st.exit_code, 0)
        text = "\n".join(t for _, _, _, t in cp.read_log(st.log_path))
        self.assertIn("/dev/pts/", text)
        self.assertIn("done", text)

    def test_kill9_restart(self):
        pod, pcfg = self.new_pod("survivor")
        cid = self.start_ctr("long", ["sleep", "600"], pod=pod, pcfg=pcfg)
        cp.wait_state(self.rt, cid, RUNNING)
        pid = json.loads(self.status(cid).info["info"])["pid"]
        quick = self.start_ctr("quick", ["sh", "-c", "sleep 1; echo bye; exit 4"], pod=pod, pcfg=pcfg)
        self.d.kill()
        time.sleep(1.5)
        os.unlink(self.d.socket)
        self.d.start(timeout=30)
        grpc.channel_ready_future(self.d.channel).result(timeout=30)
        self.rt = type(self).rt = self.d.runtime
        st = self.status(cid).status
        self.assertEqual(st.state, RUNNING)
        self.assertEqual(json.loads(self.status(cid).info["info"])["pid"], pid)
        os.kill(pid, 0)
        st = cp.wait_state(self.rt, quick, EXITED, timeout=10)
        self.assertEqual(st.exit_code, 4)
        self.assertIn("bye", [t for _, _, _, t in cp.read_log(st.log_path)])
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["echo", "alive"], timeout=5))
        self.assertEqual(r.stdout, b"alive\n")
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        st = cp.wait_state(self.rt, cid, EXITED)
        self.assertEqual(st.exit_code, 137)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def test_remove_leaves_nothing(self):
        pod, pcfg = self.new_pod("gone")
        cids = [self.start_ctr("r%d" % i, cmd, pod=pod, pcfg=pcfg)
                for i, cmd in enumerate((["sleep", "600"], ["true"]))]
        cp.wait_state(self.rt, cids[0], RUNNING)
        cp.wait_state(self.rt, cids[1], EXITED)
        for c in cids:
            self.assertIsNotNone(self.oci_state(c))
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        for c in cids:
            self.assertIsNone(self.oci_state(c))
            self.assertFalse(os.path.exists(os.path.join(self.runtime_root, c)))
            self.assertFalse(os.path.exists(os.path.join(self.d.root, "containers", c)))
            self.assertFalse(os.path.exists(os.path.join(self.d.state, "containers", c)))
        with open("/proc/self/mountinfo") as f:
            mounts = f.read()
        for c in cids:
            self.assertNotIn(c, mounts)
        left = [p for p, argv in cp.shim_pids() if any(c in " ".join(argv) for c in cids)]
        self.assertEqual(left, [])


class Crun(OciBase):
    handler = "crun"


class Runc(OciBase):
    handler = "runc"


if __name__ == "__main__":
    main()
