"""VM pods end to end: RunPodSandbox with the `vm` runtime handler boots a
QEMU microVM (KVM when it works, else TCG) through the per-VM corral-shim;
busybox containers from the registry fixture run inside the guest via
corral-agent. Boots one VM for the main flow and one for the kill -9 case.
Skips (77) with the reason when QEMU or the guest image is not available.
Run as root."""
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import grpc

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED

_skip_reason = None
_images = None
_guest = None  # (kernel, initrd, kernel-release)


def _build_dir():
    bindir = os.environ.get("CORRAL_BIN_DIR")
    return os.path.dirname(bindir) if bindir else None


def _guest_image():
    """vmlinux + initramfs.img: <build>/vm when fresh (what the guest-image
    target writes), else built with vm/guest/build-initramfs.sh."""
    build = _build_dir()
    src = os.environ.get("CORRAL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
    if not build:
        return None, "CORRAL_BIN_DIR is not set (run through ctest)"
    agent = os.path.join(build, "bin", "corral-agent")
    if not os.path.exists(agent):
        return None, "corral-agent is not built (static archives missing)"
    out = os.path.join(build, "vm")
    kernel, initrd = os.path.join(out, "vmlinux"), os.path.join(out, "initramfs.img")
    fresh = all(os.path.exists(p) and os.path.getmtime(p) >= os.path.getmtime(agent) for p in (kernel, initrd))
    if not fresh:
        if not os.access(build, os.W_OK):
            out = tempfile.mkdtemp(prefix="corral-guest-")
            kernel, initrd = os.path.join(out, "vmlinux"), os.path.join(out, "initramfs.img")
        r = subprocess.run([os.path.join(src, "vm", "guest", "build-initramfs.sh"), "--agent", agent,
                            "--out", out], capture_output=True, text=True)
        if r.returncode != 0:
            return None, "guest image could not be built: %s" % (r.stderr or r.stdout)[-400:]
    try:
        with open(os.path.join(out, "kernel-release")) as f:
            release = f.read().strip()
    except OSError:
        release = ""
    return (kernel, initrd, release), None


def setUpModule():
    global _skip_reason, _images, _guest
    if subprocess.run(["sh", "-c", "command -v qemu-system-x86_64"], capture_output=True).returncode != 0:
        _skip_reason = "qemu-system-x86_64 not found (apt-get install qemu-system-x86)"
        return
    _guest, why = _guest_image()
    if why:
        _skip_reason = why
        return
    _images, _skip_reason = cp.start_images()


def tearDownModule():
    if _images:
        _images.stop()


def qemu_pids():
    pids = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % p, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]).startswith(b"qemu-system"):
            pids.append((int(p), b" ".join(argv).decode(errors="replace")))
    return pids


def icmp_ping(ip, tries=10, wait=1.0):
    """An ICMP echo from the host netns (raw socket: no ping binary needed)."""
    import select
    import socket
    import struct

    def csum(b):
        if len(b) % 2:
            b += b"\0"
        s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
        s = (s >> 16) + (s & 0xffff)
        s += s >> 16
        return ~s & 0xffff

    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    try:
        ident = os.getpid() & 0xffff
        for seq in range(tries):
            payload = b"corral-vm-pod-ping"
            hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
            pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + payload), ident, seq) + payload
            sock.sendto(pkt, (ip, 0))
            deadline = time.time() + wait
            while time.time() < deadline:
                r, _, _ = select.select([sock], [], [], max(0, deadline - time.time()))
                if not r:
                    break
                data, addr = sock.recvfrom(2048)
                ihl = (data[0] & 0x0f) * 4
                typ, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
                if addr[0] == ip and typ == 0 and rid == ident:
                    return True
        return False
    finally:
        sock.close()


def mounts_under(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return [l.split()[1] for l in f if l.split()[1].startswith(path + "/")]


def vm_handler(kernel, initrd):
    """The "vm" handler every VM test runs: QEMU, one vCPU, 256 MiB, and an
    agent timeout that TCG on a busy machine can meet."""
    return {"type": "vm", "vmm": "qemu", "kernel": kernel, "initrd": initrd,
            "cpus": 1, "memory_mib": 256, "agent_timeout_seconds": 60}


class VMPods(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        kernel, initrd, cls.release = _guest
        cls.config = {"cgroup_driver": "cgroupfs",
                      "runtimes": {"vm": vm_handler(kernel, initrd),
                                   "vm-nokernel": {"type": "vm", "vmm": "qemu",
                                                   "kernel": "/nonexistent/vmlinux", "initrd": initrd},
                                   # virtio-fs asked for, with no virtiofsd to run it
                                   "vm-novirtiofsd": {"type": "vm", "vmm": "qemu", "kernel": kernel,
                                                      "initrd": initrd, "share": "virtiofs",
                                                      "virtiofsd_path": "/nonexistent/virtiofsd"},
                                   # a "cloud-hypervisor" that exists (never started: every
                                   # test refuses it before a VM is made)
                                   "vm-chv": {"type": "vm", "vmm": "cloud-hypervisor",
                                              "vmm_path": "/bin/true", "kernel": kernel,
                                              "initrd": initrd, "share": "virtiofs"}}}
        cls.d = Daemon(cls.config)
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.rt = cls.d.runtime
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=_images.busybox)),
                              timeout=120)
        cls.image = _images.busybox
        cls.logdir = os.path.join(cls.d.dir, "logs")
        cls.qemu_before = {p for p, _ in qemu_pids()}
        cls.timings = {}

    @classmethod
    def tearDownClass(cls):
        cp.teardown_daemon(cls, timeout=60)
        for k, v in sorted(cls.timings.items()):
            print("timing %s: %s" % (k, v))

    def run(self, result=None):
        r = super().run(result)
        if result and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # Other suites may boot VMs at the same time: only ours count (their
    # command lines name our state dir).
    def our_qemus(self):
        return [p for p, a in qemu_pids() if p not in self.qemu_before and self.d.state in a]

    def our_vm_shims(self):
        return [p for p, a in cp.shim_pids() if "vm" in a[1:2] and any(self.d.state in x for x in a)]

    def runp(self, name, handler="vm", timeout=120):
        cfg = cp.pod_config(name, self.logdir)
        return self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                     timeout=timeout).pod_sandbox_id, cfg

    def create(self, pid, pcfg, name, cmd):
        return self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pid, config=cp.ctr_config(name, self.image, cmd), sandbox_config=pcfg),
            timeout=60).container_id

    def wait_log(self, path, want, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path):
                lines = cp.read_log(path)
                if any(want in t for _, _, _, t in lines):
                    return lines
            time.sleep(0.02)
        self.fail("%r never appeared in %s" % (want, path))

    def test_1_missing_kernel(self):
        """A handler whose kernel is missing: FailedPrecondition naming it; nothing left."""
        before = self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
        with self.assertRaises(grpc.RpcError) as cm:
            self.runp("nokernel", handler="vm-nokernel")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertIn("/nonexistent/vmlinux", cm.exception.details())
        self.assertIn("guest-image", cm.exception.details())
        self.assertEqual(len(self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items), len(before))
        self.assertEqual(os.listdir(os.path.join(self.d.state, "ns")) if os.path.isdir(
            os.path.join(self.d.state, "ns")) else [], [])

    def test_2_status_handler(self):
        st = self.rt.Status(api_pb2.StatusRequest(verbose=True))
        handlers = {h["name"]: h for h in json.loads(st.info["runtimeHandlers"])} \
            if "runtimeHandlers" in st.info else None
        if handlers is None:
            info = json.dumps(dict(st.info))
            self.assertIn("vm-nokernel", info)
            return
        self.assertTrue(handlers["vm"]["usable"], handlers["vm"])
        self.assertFalse(handlers["vm-nokernel"]["usable"])
        self.assertIn("/nonexistent/vmlinux", handlers["vm-nokernel"]["reason"])

    def assert_nothing_left(self, before):
        self.assertEqual(len(self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items), len(before))
        ns = os.path.join(self.d.state, "ns")
        self.assertEqual(os.listdir(ns) if os.path.isdir(ns) else [], [])
        pods = os.path.join(self.d.state, "pods")
        self.assertEqual(os.listdir(pods) if os.path.isdir(pods) else [], [])
        # no veth on our bridge from a CNI ADD, and no IP lease (the other
        # tests run after this one: every pod of this suite counts)
        brif = "/sys/class/net/%s/brif" % self.bridge
        self.assertEqual(os.listdir(brif) if os.path.isdir(brif) else [], [])
        leases = []
        for root, _, files in os.walk(os.path.join(self.d.dir, "cni", "ipam")):
            leases += [f for f in files if f[0].isdigit() or ":" in f]
        self.assertEqual(leases, [])

    def handlers(self):
        st = self.rt.Status(api_pb2.StatusRequest(verbose=True))
        return {h["name"]: h for h in json.loads(st.info["runtimeHandlers"])}

    def test_2b_share_unavailable(self):
        """virtio-fs with no virtiofsd: refused at RunPodSandbox, before anything is made."""
        before = self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
        with self.assertRaises(grpc.RpcError) as cm:
            self.runp("novirtiofsd", handler="vm-novirtiofsd")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION, cm.exception.details())
        self.assertIn('"vm-novirtiofsd"', cm.exception.details())
        self.assertIn("virtiofsd_path", cm.exception.details())
        self.assert_nothing_left(before)
        h = self.handlers()["vm-novirtiofsd"]
        self.assertFalse(h["usable"], h)
        self.assertIn("virtiofsd", h["reason"])
        self.assertIn(h["shareReason"], h["reason"])
        self.assertIn(h["reason"], cm.exception.details())

    def test_2c_chv_kvm_verdict(self):
        """cloud-hypervisor is refused without usable KVM, and when corrald's
        recorded verdict says KVM boots no guest here; Status says the same."""
        host = json.loads(self.rt.Status(api_pb2.StatusRequest(verbose=True)).info["host"])
        has_kvm = not any(m.startswith("/dev/kvm") for m in host["missing"])
        verdict = os.path.join(self.d.state, "vm-kvm-broken")
        injected = not os.path.exists(verdict)
        if injected:
            with open(verdict, "w") as f:
                f.write("injected by test_2c: KVM boots no guest here")
        try:
            before = self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
            with self.assertRaises(grpc.RpcError) as cm:
                self.runp("chv", handler="vm-chv")
            self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION, cm.exception.details())
            self.assertIn('"vm-chv"', cm.exception.details())
            self.assertIn("KVM", cm.exception.details())
            if not has_kvm:
                self.assertIn("/dev/kvm is not usable", cm.exception.details())
            elif injected:
                self.assertIn("injected by test_2c", cm.exception.details())
            self.assert_nothing_left(before)
            h = self.handlers()["vm-chv"]
            self.assertFalse(h["usable"], h)
            self.assertIn("KVM", h["reason"])
            self.assertIn(h["reason"], cm.exception.details())
        finally:
            if injected:
                os.unlink(verdict)
        # the verdict alone made the difference: without it, a host whose
        # guests boot under KVM has nothing against this handler
        if injected:
            h = self.handlers()["vm-chv"]
            host = json.loads(self.rt.Status(api_pb2.StatusRequest(verbose=True)).info["host"])
            self.assertEqual(h["usable"], host["kvm"] and not h["shareReason"], (h, host))

    def test_3_vm_pod(self):
        t0 = time.time()
        pid, pcfg = self.runp("vmpod")
        t_run = time.time() - t0
        cid = self.create(pid, pcfg, "echo", ["sh", "-c", "echo hello from the vm; exec sleep 1000"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        log = os.path.join(self.logdir, "echo.log")
        lines = self.wait_log(log, "hello from the vm")
        t_first = time.time() - t0
        self.timings["vm pod start (RunPodSandbox + Create + Start until the first log line)"] = \
            "%.2f s (RunPodSandbox %.2f s)" % (t_first, t_run)
        # CRI log format: <RFC3339Nano> stdout F <line>
        ts, stream, tag, text = [l for l in lines if "hello" in l[3]][0]
        self.assertEqual((stream, tag, text), ("stdout", "F", "hello from the vm"))
        self.assertRegex(ts, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+")

        # verbose status: vmm, accel, pid, console log
        st = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pid, verbose=True))
        self.assertEqual(st.status.state, api_pb2.SANDBOX_READY)
        info = json.loads(st.info["info"])["vm"]
        self.assertEqual(info["vmm"], "qemu")
        self.assertIn(info["accel"], ("kvm", "tcg"))
        self.assertTrue(os.path.exists("/proc/%d" % info["vmmPid"]))
        self.assertTrue(info["consoleLog"])
        self.timings["memory per VM pod"] = "qemu RSS %.1f MiB + shim RSS %.1f MiB (accel %s, boot %d ms)" % (
            info["vmmRssBytes"] / 2**20, info.get("shimRssBytes", 0) / 2**20, info["accel"], info["bootMs"])
        # Status "kvm" means guests boot under KVM here, not just that /dev/kvm opens
        host = json.loads(self.rt.Status(api_pb2.StatusRequest(verbose=True)).info["host"])
        self.assertEqual(host["kvm"], info["accel"] == "kvm", host)
        ip = st.status.network.ip
        self.assertTrue(ip)

        # ExecSync: the guest's kernel, not the host's
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["uname", "-r"], timeout=30),
                             timeout=60)
        self.assertEqual(r.exit_code, 0)
        guest = r.stdout.decode().strip()
        self.assertEqual(guest, self.release or guest)
        self.assertNotEqual(guest, os.uname().release)
        cs = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid), timeout=30).stats
        self.assertGreater(cs.memory.working_set_bytes.value, 0)
        self.assertGreater(cs.cpu.usage_core_nano_seconds.value, 0)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "exit 7"], timeout=30),
                             timeout=60)
        self.assertEqual(r.exit_code, 7)

        # the pod IP answers ping from the host (through the bridge, veth, tc redirect, tap)
        self.assertTrue(icmp_ping(ip), "no echo reply from the pod IP %s" % ip)

        # kill -9 of corrald and a restart: the VM, its shim and the container live on
        self.d.kill()
        self.d.start()
        type(self).rt = self.rt = self.d.runtime
        self.assertTrue(os.path.exists("/proc/%d" % info["vmmPid"]))
        self.assertEqual(cp.wait_state(self.rt, cid, RUNNING, timeout=5).state, RUNNING)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["echo", "again"], timeout=30),
                             timeout=60)
        self.assertEqual(r.stdout, b"again\n")

        # tty exec and attach hand out streaming URLs as for namespace pods
        # (the sessions themselves: test_vm_streaming.py)
        self.assertTrue(self.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["sh"], tty=True, stdin=True,
                                                         stdout=True)).url.startswith("http"))
        self.assertTrue(self.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdout=True)).url.startswith("http"))

        # an exit code comes back
        c3 = self.create(pid, pcfg, "exit3", ["sh", "-c", "echo bye; exit 3"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=c3), timeout=60)
        s3 = cp.wait_state(self.rt, c3, EXITED, timeout=30)
        self.assertEqual(s3.exit_code, 3)
        self.assertEqual(s3.reason, "Error")
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=c3), timeout=60)

        # stop + remove leave nothing: no qemu, tap, socket, mount
        vmm_pid = info["vmmPid"]
        t1 = time.time()
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.timings["StopPodSandbox"] = "%.2f s" % (time.time() - t1)
        s = cp.wait_state(self.rt, cid, EXITED, timeout=5)
        self.assertNotEqual(s.exit_code, 0)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.assertFalse(os.path.exists("/proc/%d" % vmm_pid), "qemu still running")
        self.assertEqual(self.our_qemus(), [])
        self.assertEqual(mounts_under(self.d.state), [m for m in mounts_under(self.d.state)
                                                       if m == os.path.join(self.d.state, "ns")])
        self.assertEqual(mounts_under(self.d.root), [])
        vmroot = os.path.join(self.d.state, "vm")
        self.assertEqual(os.listdir(vmroot) if os.path.isdir(vmroot) else [], [])
        self.assertFalse(self.our_vm_shims(), "a VM shim is left")
        self.assertEqual(len(self.rt.ListContainers(api_pb2.ListContainersRequest()).containers), 0)

    def test_4_vmm_killed(self):
        """kill -9 of QEMU: the pod turns NOTREADY, its container EXITED with a reason,
        both as events on GetContainerEvents (the VM shim answers the exit
        monitor's wait on the VM socket; nobody polls). The latency is printed,
        not asserted."""
        pid, pcfg = self.runp("vmkill")
        cid = self.create(pid, pcfg, "sleeper", ["sh", "-c", "echo up; exec sleep 1000"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        self.wait_log(os.path.join(self.logdir, "sleeper.log"), "up")
        st = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pid, verbose=True))
        vmm_pid = json.loads(st.info["info"])["vm"]["vmmPid"]
        # an attach and an interactive exec in flight end with the VM
        bindir = os.environ.get("CORRAL_BIN_DIR", "")
        att = subprocess.Popen([os.environ.get("CORRALCTL", os.path.join(bindir, "corralctl")), "--endpoint",
                                self.d.endpoint, "attach", cid], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        ex = subprocess.Popen([os.path.join(bindir, "bench_streaming"), "-r", self.d.endpoint, "exec", cid, "sh",
                               "-c", "echo in; exec sleep 1000"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.assertEqual(ex.stdout.readline(), b"in\n")
        seen = []
        stream = self.rt.GetContainerEvents(api_pb2.GetEventsRequest(), timeout=120)

        def reader():
            try:
                for ev in stream:
                    seen.append((time.monotonic(), ev.container_id, ev.container_event_type,
                                 ev.pod_sandbox_status.state))
            except grpc.RpcError:
                pass

        t = threading.Thread(target=reader)
        t.start()
        time.sleep(0.2)  # the subscription is in place before the kill
        t_kill = time.monotonic()
        os.kill(vmm_pid, signal.SIGKILL)
        deadline = time.time() + 15
        pod_ev = ctr_ev = None
        while time.time() < deadline and (pod_ev is None or ctr_ev is None):
            for ts, c, ty, pst in list(seen):
                if ty != api_pb2.CONTAINER_STOPPED_EVENT:
                    continue
                if c == pid and pst == api_pb2.SANDBOX_NOTREADY and pod_ev is None:
                    pod_ev = ts
                if c == cid and ctr_ev is None:
                    ctr_ev = ts
            time.sleep(0.02)
        stream.cancel()
        t.join(10)
        self.assertIsNotNone(pod_ev, "no NOTREADY event for the pod after QEMU was killed")
        self.assertIsNotNone(ctr_ev, "no STOPPED event for the container after QEMU was killed")
        print("\nVM death to events: container STOPPED %.0f ms, pod NOTREADY %.0f ms after kill -9"
              % ((ctr_ev - t_kill) * 1000, (pod_ev - t_kill) * 1000))
        s = cp.wait_state(self.rt, cid, EXITED, timeout=15)
        self.assertEqual(s.reason, "VMDied")
        self.assertIn("signal 9", s.message)
        self.assertNotEqual(ex.wait(30), 0)
        att.wait(30)
        ex.stdout.close()
        deadline = time.time() + 10
        while time.time() < deadline:
            st = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pid))
            if st.status.state == api_pb2.SANDBOX_NOTREADY:
                break
            time.sleep(0.1)
        self.assertEqual(st.status.state, api_pb2.SANDBOX_NOTREADY)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.assertEqual(self.our_qemus(), [])
        self.assertEqual(mounts_under(self.d.root), [])

    def test_5_kill9_during_boot(self):
        """kill -9 of corrald while RunPodSandbox waits for the guest to boot:
        after the restart nothing of the half-made pod is left (no QEMU, VM
        shim, tap, state dir or mount) and a retry gets a working VM pod."""
        cfg = cp.pod_config("vmcrash", self.logdir)
        errors = []

        def run():
            try:
                self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler="vm"), timeout=120)
            except grpc.RpcError as e:
                errors.append(e.code())

        t = threading.Thread(target=run)
        t.start()
        deadline = time.time() + 60
        while time.time() < deadline and not self.our_qemus():
            time.sleep(0.02)
        self.assertTrue(self.our_qemus(), "no QEMU started")
        self.d.kill()  # QEMU is up, the agent not yet: the guest is booting
        t.join()
        self.assertEqual(len(errors), 1)  # the client saw the daemon go away
        self.d.start()
        type(self).rt = self.rt = self.d.runtime
        pods = list(self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items)
        self.assertEqual([p.metadata.name for p in pods if p.metadata.name == "vmcrash"], [])
        deadline = time.time() + 15  # the VM shim may still be shutting its VM down
        while time.time() < deadline and (self.our_qemus() or
                                          self.our_vm_shims()):
            time.sleep(0.1)
        self.assertEqual(self.our_qemus(), [], "QEMU left running")
        self.assertFalse(self.our_vm_shims(), "a VM shim is left")
        vmroot = os.path.join(self.d.state, "vm")
        self.assertEqual(os.listdir(vmroot) if os.path.isdir(vmroot) else [], [])
        self.assertEqual(mounts_under(self.d.root), [])
        # a retry boots a working VM pod
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler="vm"),
                                    timeout=120).pod_sandbox_id
        st = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pid)).status
        self.assertEqual(st.state, api_pb2.SANDBOX_READY)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.assertEqual(self.our_qemus(), [])

    def test_6_corralctl_run_vm(self):
        """corralctl run --runtime vm: the operator's one-liner boots a VM pod."""
        from google.protobuf import json_format
        tmp = tempfile.mkdtemp(dir=self.d.dir)
        pod_json, ctr_json = os.path.join(tmp, "pod.json"), os.path.join(tmp, "ctr.json")
        with open(pod_json, "w") as f:
            f.write(json_format.MessageToJson(cp.pod_config("ctlvm", self.logdir)))
        with open(ctr_json, "w") as f:
            f.write(json_format.MessageToJson(cp.ctr_config("ctlvm", self.image, ["sleep", "1000"])))
        cid = self.d.ctl("run", "--runtime", "vm", ctr_json, pod_json).stdout.strip()
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        self.assertEqual(st.state, RUNNING)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["uname", "-r"], timeout=30),
                             timeout=60)
        self.assertEqual(r.stdout.decode().strip(), self.release)
        pods = [p for p in self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
                if p.metadata.name == "ctlvm"]
        self.assertEqual([p.runtime_handler for p in pods], ["vm"])
        self.d.ctl("stopp", pods[0].id)
        self.d.ctl("rmp", pods[0].id)
        self.assertEqual(self.our_qemus(), [])
        # a handler that does not exist: a clear error, nothing left
        r = self.d.ctl("run", "--runtime", "no-such-handler", ctr_json, pod_json, check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("no-such-handler", r.stderr)

    def test_7_events_and_stats(self):
        """Events and stats for VM containers, as for namespace ones: CREATED,
        STARTED, STOPPED (from the exit monitor, nobody polling) and DELETED;
        ListContainerStats and PodSandboxStats name the VM pod's container."""
        seen = []
        stream = self.rt.GetContainerEvents(api_pb2.GetEventsRequest(), timeout=90)

        def reader():
            try:
                for ev in stream:
                    seen.append((ev.container_id, ev.container_event_type, ev.pod_sandbox_status.id))
            except grpc.RpcError:
                pass

        t = threading.Thread(target=reader)
        t.start()
        pid, pcfg = self.runp("vmevents")
        cid = self.create(pid, pcfg, "evented", ["sh", "-c", "echo up; sleep 2; exit 4"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        self.wait_log(os.path.join(self.logdir, "evented.log"), "up")
        cs = self.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
            filter=api_pb2.ContainerStatsFilter(pod_sandbox_id=pid))).stats
        self.assertEqual([c.attributes.id for c in cs], [cid])
        self.assertGreater(cs[0].memory.working_set_bytes.value, 0)
        ps = self.rt.PodSandboxStats(api_pb2.PodSandboxStatsRequest(pod_sandbox_id=pid)).stats
        self.assertEqual(ps.attributes.id, pid)
        self.assertIn(cid, [c.attributes.id for c in ps.linux.containers])
        deadline = time.time() + 30
        while time.time() < deadline and not any(c == cid and ty == api_pb2.CONTAINER_STOPPED_EVENT
                                                 for c, ty, _ in seen):
            time.sleep(0.05)
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        self.assertEqual((st.state, st.exit_code), (EXITED, 4))
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=60)
        deadline = time.time() + 5
        while time.time() < deadline and not any(c == cid and ty == api_pb2.CONTAINER_DELETED_EVENT
                                                 for c, ty, _ in seen):
            time.sleep(0.05)
        stream.cancel()
        t.join()
        types = [ty for c, ty, _ in seen if c == cid]
        self.assertEqual(types, [api_pb2.CONTAINER_CREATED_EVENT, api_pb2.CONTAINER_STARTED_EVENT,
                                 api_pb2.CONTAINER_STOPPED_EVENT, api_pb2.CONTAINER_DELETED_EVENT], seen)
        self.assertTrue(all(p == pid for c, _, p in seen if c == cid), seen)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)

    def test_8_deep_image(self):
        """A 121-layer image in a VM pod: the shim mounts its overlay on the host past mount(2)'s page."""
        deep = _images.deep()
        self.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=deep)), timeout=120)
        pid, pcfg = self.runp("vmdeep")
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pid, config=cp.ctr_config("deep", deep, ["sh", "-c", "ls /deep | wc -l; cat /deep/f119"]),
            sandbox_config=pcfg), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        st = cp.wait_state(self.rt, cid, EXITED, timeout=30)
        self.assertEqual(st.exit_code, 0)
        self.assertEqual([t for _, _, _, t in cp.read_log(st.log_path)], ["120", "119"])
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.assertEqual(mounts_under(self.d.root), [])

    def test_9_sysctls(self):
        """Pod sysctls are set in the guest (its kernel is the pod's own, so a
        non-namespaced one is fine too); one the guest does not have fails
        RunPodSandbox naming it, and leaves nothing."""
        cfg = cp.pod_config("vmsysctl", self.logdir)
        cfg.linux.sysctls["net.ipv4.ip_unprivileged_port_start"] = "80"
        cfg.linux.sysctls["vm.swappiness"] = "17"
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler="vm"),
                                    timeout=120).pod_sandbox_id
        cid = self.create(pid, cfg, "sysctl", ["sleep", "1000"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(
            container_id=cid, cmd=["cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start", "/proc/sys/vm/swappiness"],
            timeout=30), timeout=60)
        self.assertEqual(r.stdout.decode().split(), ["80", "17"])
        with open("/proc/sys/vm/swappiness") as f:
            self.assertNotEqual(f.read().strip(), "17")  # the host's stays as it was
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)

        bad = cp.pod_config("vmbadsysctl", self.logdir)
        bad.linux.sysctls["net.no.such.sysctl"] = "1"
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=bad, runtime_handler="vm"), timeout=120)
        self.assertIn("net.no.such.sysctl", cm.exception.details())
        self.assertEqual([p for p in self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
                          if p.metadata.name == "vmbadsysctl"], [])
        deadline = time.time() + 15
        while time.time() < deadline and (self.our_qemus() or self.our_vm_shims()):
            time.sleep(0.1)
        self.assertEqual(self.our_qemus(), [])
        self.assertEqual(self.our_vm_shims(), [])
        self.assertEqual(mounts_under(self.d.root), [])


if __name__ == "__main__":
    main()
