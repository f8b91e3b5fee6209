"""What CRI conformance (critest) asks of VM pods, checked against a real
corrald with the `vm` handler (QEMU microVM, KVM or TCG): stopping
containers that were never started or whose pid 1 ignores SIGTERM, the
pod's sysctls as its containers see them, a pod-level PID and IPC
namespace shared by the pod's containers in the guest, OOMKilled from the
guest's cgroup, read-only volumes, privileged containers and added
capabilities; host namespaces refused before anything is made.
Boots one VM for every test.
Skips (77) with the reason when QEMU or the guest image is not available,
as test_vm_pods.py. Run as root."""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

import grpc

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp
import test_vm_pods as vmp

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED


def setUpModule():
    vmp.setUpModule()


def tearDownModule():
    vmp.tearDownModule()


class VMConformance(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if vmp._skip_reason:
            raise unittest.SkipTest(vmp._skip_reason)
        kernel, initrd, _ = vmp._guest
        cls.d = Daemon({"cgroup_driver": "cgroupfs", "runtimes": {"vm": vmp.vm_handler(kernel, initrd)}})
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.rt = cls.d.runtime
        cls.image = vmp._images.busybox
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=cls.image)), timeout=120)
        cls.logdir = os.path.join(cls.d.dir, "logs")
        # One pod for every test: critest's sysctls (both IPC-namespaced), a
        # pod-level PID namespace (kubelet's shareProcessNamespace), privileged.
        cls.pcfg = cp.pod_config("vmconf", cls.logdir, pid_mode=api_pb2.POD)
        cls.pcfg.linux.sysctls["kernel.shm_rmid_forced"] = "1"
        cls.pcfg.linux.sysctls["fs.mqueue.msg_max"] = "100"
        cls.pcfg.linux.security_context.privileged = True
        t0 = time.time()
        cls.pod = cls.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cls.pcfg, runtime_handler="vm"),
                                       timeout=120).pod_sandbox_id
        cls.boot_s = time.time() - t0

    @classmethod
    def tearDownClass(cls):
        cp.teardown_daemon(cls, timeout=60)
        print("VM boot (RunPodSandbox): %.2f s" % getattr(cls, "boot_s", 0))

    def run(self, result=None):
        r = super().run(result)
        if result and (result.failures or result.errors):
            type(self)._failed = True
        return r

    def create(self, name, cmd, **kw):
        cfg = cp.ctr_config(name, self.image, cmd)
        for k, v in kw.items():
            if k == "mounts":
                for m in v:
                    cfg.mounts.add(**m)
            elif k == "linux":
                cfg.linux.MergeFrom(v)
            elif k == "pid":  # POD is proto3's default: MergeFrom would keep ctr_config's CONTAINER
                cfg.linux.security_context.namespace_options.pid = v
        return self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod, config=cfg, sandbox_config=self.pcfg), timeout=60).container_id

    def start(self, name, cmd, **kw):
        cid = self.create(name, cmd, **kw)
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        return cid

    def exec(self, cid, cmd):
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=30), timeout=60)
        return r.exit_code, r.stdout.decode(), r.stderr.decode()

    def remove(self, cid):
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=60)

    def test_stop_created(self):
        """StopContainer of a container that was created, never started: it
        ends at once (it waited for an exit the shim never heard of)."""
        cid = self.create("created", ["sleep", "1000"])
        t0 = time.time()
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10), timeout=30)
        self.assertLess(time.time() - t0, 10)
        self.assertEqual(self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status.state,
                         EXITED)
        self.remove(cid)

    def test_stop_right_after_start(self):
        """critest's "stopping container": SIGTERM right after StartContainer
        to a pid 1 (`top`) that handles it once it runs."""
        cid = self.start("top", ["top"])
        t0 = time.time()
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=10), timeout=30)
        took = time.time() - t0
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        print("stop right after start: %.2f s exit %d" % (took, st.exit_code))
        self.assertLess(took, 8)
        self.remove(cid)

    def test_stop_pid1_ignores_sigterm(self):
        """pid 1 of the container ignores SIGTERM (no handler, as critest's
        `top`): SIGKILL after the grace period ends it."""
        cid = self.start("noterm", ["sh", "-c", "trap '' TERM; echo up; while :; do sleep 1; done"])
        cp.wait_state(self.rt, cid, RUNNING, timeout=30)
        t0 = time.time()
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=2), timeout=30)
        took = time.time() - t0
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        self.assertEqual((st.state, st.exit_code), (EXITED, 137))
        self.assertLess(took, 15)
        self.remove(cid)

    def shared_pid(self, name, cmd):
        return self.start(name, cmd, pid=api_pb2.POD)

    def test_pod_namespaces(self):
        """The pod's sysctls (critest's two, both IPC-namespaced) are what
        its containers see; they share the pod's IPC and UTS namespaces, and
        with pid POD one PID namespace whose pid 1 is none of theirs, while
        a container with pid CONTAINER is pid 1 of its own."""
        a = self.shared_pid("pidA", ["sh", "-c", "exec sleep 1001"])
        b = self.shared_pid("pidB", ["sh", "-c", "exec sleep 1002"])
        own = self.start("pidown", ["sh", "-c", "exec sleep 1003"])
        for cid in (a, b, own):
            cp.wait_state(self.rt, cid, RUNNING, timeout=30)
        code, out, err = self.exec(a, ["cat", "/proc/sys/kernel/shm_rmid_forced", "/proc/sys/fs/mqueue/msg_max"])
        self.assertEqual((code, out.split()), (0, ["1", "100"]), err)
        ns = {}
        for cid in (a, b, own):
            code, out, err = self.exec(cid, ["sh", "-c", "for n in ipc uts pid; do readlink /proc/self/ns/$n; done; "
                                                         "cat /proc/1/cmdline | tr '\\0' ' '"])
            self.assertEqual(code, 0, err)
            ns[cid] = out.split("\n")
        self.assertEqual(ns[a][:2], ns[b][:2])
        self.assertEqual(ns[a][:2], ns[own][:2])
        self.assertEqual(ns[a][2], ns[b][2])
        self.assertNotEqual(ns[a][2], ns[own][2])
        self.assertNotIn("sleep", ns[a][3])
        self.assertEqual(ns[own][3].strip(), "sleep 1003")
        code, out, _ = self.exec(b, ["ps", "-o", "args"])
        self.assertIn("sleep 1001", out)
        self.assertNotIn("sleep 1003", out)
        for cid in (a, b, own):
            self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
            self.remove(cid)

    def test_oom_killed(self):
        """critest's OOM container: reason OOMKilled, exit code 137, from the guest's cgroup."""
        res = api_pb2.LinuxContainerConfig()
        res.resources.memory_limit_in_bytes = 15 << 20
        res.resources.memory_swap_limit_in_bytes = 15 << 20
        cid = self.start("oom", ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=20M"], linux=res)
        st = cp.wait_state(self.rt, cid, EXITED, timeout=60)
        self.assertEqual((st.exit_code, st.reason), (137, "OOMKilled"), st)
        self.remove(cid)

    def test_readonly_volume_keeps_submounts(self):
        """critest's non-recursive read-only mount: a volume mounted
        readonly keeps the writable tmpfs below it writable in the guest, and
        while the container runs its owner can unmount that tmpfs and remove
        the volume (no mount of the VM shim's pins its directories)."""
        host = tempfile.mkdtemp(prefix="vmvol-")
        sub = os.path.join(host, "tmpfs")
        os.mkdir(sub)
        subprocess.run(["mount", "-t", "tmpfs", "none", sub], check=True)
        try:
            cid = self.start("rovol", ["sleep", "1000"],
                             mounts=[{"container_path": "/mnt", "host_path": host, "readonly": True}])
            cp.wait_state(self.rt, cid, RUNNING, timeout=30)
            code, _, err = self.exec(cid, ["touch", "/mnt/tmpfs/file"])
            self.assertEqual(code, 0, err)
            self.assertTrue(os.path.exists(os.path.join(sub, "file")))
            code, _, err = self.exec(cid, ["touch", "/mnt/x"])
            self.assertNotEqual(code, 0)
            self.assertIn("Read-only file system", err)
            subprocess.run(["umount", "-l", sub], check=True)
            shutil.rmtree(host)  # critest's cleanup, container still running
            self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
            self.remove(cid)
        finally:
            subprocess.run(["umount", "-l", sub], capture_output=True)
            shutil.rmtree(host, ignore_errors=True)

    def test_recursive_read_only_volume(self):
        """KEP-3857 in the guest: a recursive read-only volume makes its
        submounts read-only too (the agent applies it to each submount the
        VM shim shares), and the handler says so in Status."""
        host = tempfile.mkdtemp(prefix="vmrro-")
        sub = os.path.join(host, "tmpfs")
        os.mkdir(sub)
        subprocess.run(["mount", "-t", "tmpfs", "none", sub], check=True)
        try:
            cid = self.start("rrovol", ["sleep", "1000"],
                             mounts=[{"container_path": "/mnt", "host_path": host, "readonly": True,
                                      "recursive_read_only": True}])
            cp.wait_state(self.rt, cid, RUNNING, timeout=30)
            code, _, err = self.exec(cid, ["touch", "/mnt/tmpfs/file"])
            self.assertNotEqual(code, 0)
            self.assertIn("Read-only file system", err)
            self.assertFalse(os.path.exists(os.path.join(sub, "file")))
            self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
            self.remove(cid)
        finally:
            subprocess.run(["umount", "-l", sub], capture_output=True)
            shutil.rmtree(host, ignore_errors=True)
        handlers = {h.name: h.features for h in self.rt.Status(api_pb2.StatusRequest()).runtime_handlers}
        self.assertTrue(handlers["vm"].recursive_read_only_mounts)

    def test_declared_unsupported(self):
        """What a VM pod cannot do is declared in Status (verbose), and a
        bidirectional volume is refused at CreateContainer, naming why."""
        st = self.rt.Status(api_pb2.StatusRequest(verbose=True))
        vm = [h for h in json.loads(st.info["runtimeHandlers"]) if h["name"] == "vm"][0]
        declared = {u["feature"] for u in vm["unsupported"]}
        self.assertEqual(declared, {"hostNetwork", "hostPID", "hostIPC", "mountPropagationBidirectional"})
        self.assertTrue(all(u["reason"] for u in vm["unsupported"]))
        host = tempfile.mkdtemp(prefix="vmbidi-")
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                self.create("bidi", ["true"], mounts=[{"container_path": "/mnt", "host_path": host,
                                                       "propagation": api_pb2.PROPAGATION_BIDIRECTIONAL}])
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("bidirectional", cm.exception.details())
        finally:
            shutil.rmtree(host, ignore_errors=True)
        names = {c.metadata.name for c in self.rt.ListContainers(api_pb2.ListContainersRequest()).containers}
        self.assertNotIn("bidi", names)

    def test_net_admin(self):
        """critest's Privileged and adding-capability checks make a bridge
        (`brctl addbr`): the guest kernel loads its module on demand."""
        priv = api_pb2.LinuxContainerConfig()
        priv.security_context.privileged = True
        capc = api_pb2.LinuxContainerConfig()
        capc.security_context.capabilities.add_capabilities.append("NET_ADMIN")
        for name, linux, br in (("priv", priv, "brpriv"), ("netadmin", capc, "brcap")):
            cid = self.start(name, ["sleep", "1000"], linux=linux)
            cp.wait_state(self.rt, cid, RUNNING, timeout=30)
            code, out, err = self.exec(cid, ["busybox", "brctl", "addbr", br])
            self.assertEqual(code, 0, out + err)
            code, out, err = self.exec(cid, ["busybox", "brctl", "delbr", br])
            self.assertEqual(code, 0, out + err)
            self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
            self.remove(cid)

    def test_host_namespaces_refused(self):
        """A VM pod cannot have the host's network, PID or IPC namespace:
        InvalidArgument naming the handler, before anything is made."""
        before = len(self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items)
        for field, what in (("network", "network"), ("pid", "PID"), ("ipc", "IPC")):
            cfg = cp.pod_config("host" + field, self.logdir)
            setattr(cfg.linux.security_context.namespace_options, field, api_pb2.NODE)
            with self.assertRaises(grpc.RpcError) as cm:
                self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler="vm"), timeout=60)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("host's %s namespace" % what, cm.exception.details())
            self.assertIn('"vm"', cm.exception.details())
        self.assertEqual(len(self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items), before)
        self.assertEqual(os.listdir(os.path.join(self.d.state, "ns")), [self.pod])  # only ours


if __name__ == "__main__":
    main()
