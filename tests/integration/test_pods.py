"""Pod sandboxes against a real corrald with real CNI plugins (Debian
containernetworking-plugins) on a bridge of the test's own, real network
namespaces and real nftables rules."""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.request

import grpc

from corral_harness import Daemon, api_pb2, main

CNI_BIN = "/usr/lib/cni"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Pods(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(CNI_BIN, "bridge")):
            raise unittest.SkipTest("containernetworking-plugins is not installed")
        cls.tmp = tempfile.mkdtemp(prefix="corral-pods-")
        n = os.getpid() % 200 + 20
        cls.bridge = "crltest%d" % n
        cls.subnet = "10.250.%d" % n
        cni = os.path.join(cls.tmp, "cni")
        os.makedirs(cni)
        conf = {"cniVersion": "1.0.0", "name": "corral-test", "plugins": [
            {"type": "bridge", "bridge": cls.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cls.subnet + ".0/24"}]],
                      "dataDir": os.path.join(cls.tmp, "ipam")}},
            {"type": "loopback"}]}
        with open(os.path.join(cni, "10-test.conflist"), "w") as f:
            json.dump(conf, f)
        cls.d = Daemon({"cni": {"conf_dir": cni, "bin_dirs": [CNI_BIN]}}).start()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n" + cls.d.read_log()[-30000:])
        for p in cls.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            try:
                cls.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id))
            except grpc.RpcError:
                pass
        cls.d.cleanup()
        subprocess.run(["ip", "link", "del", cls.bridge], capture_output=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # helpers
    def config(self, name, **kw):
        c = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name=name, uid="uid-" + name, namespace="test", attempt=0),
            hostname=name, log_directory=os.path.join(self.tmp, "logs", name), labels={"app": name, "t": "pods"})
        for k, v in kw.items():
            if k == "labels":
                c.labels.update(v)
            elif k == "port_mappings":
                c.port_mappings.extend(v)
            elif k == "sysctls":
                c.linux.sysctls.update(v)
            elif k == "network":
                c.linux.security_context.namespace_options.network = v
            elif k == "pid":
                c.linux.security_context.namespace_options.pid = v
            elif k == "dns":
                c.dns_config.CopyFrom(v)
            else:
                setattr(c, k, v)
        return c

    def run_pod(self, cfg, handler=""):
        return self.d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=handler),
                                            timeout=60).pod_sandbox_id

    def info(self, pod):
        r = self.d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod, verbose=True))
        return r.status, json.loads(r.info["info"])

    def remove(self, pod):
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))

    def in_netns(self, netns, *cmd, timeout=10):
        return subprocess.run(["nsenter", "--net=" + netns] + list(cmd), capture_output=True, text=True,
                              timeout=timeout)

    # tests
    def test_network_ready(self):
        s = self.d.runtime.Status(api_pb2.StatusRequest())
        conds = {c.type: c for c in s.status.conditions}
        self.assertTrue(conds["NetworkReady"].status, conds["NetworkReady"].message)

    def test_two_pods_ping(self):
        a = self.run_pod(self.config("ping-a"))
        b = self.run_pod(self.config("ping-b"))
        sa, ia = self.info(a)
        sb, ib = self.info(b)
        self.assertEqual(sa.state, api_pb2.SANDBOX_READY)
        self.assertTrue(sa.network.ip.startswith(self.subnet + "."), sa.network.ip)
        self.assertTrue(sb.network.ip.startswith(self.subnet + "."), sb.network.ip)
        self.assertNotEqual(sa.network.ip, sb.network.ip)
        r = self.in_netns(ia["netns"], "busybox", "ping", "-c", "1", "-W", "3", sb.network.ip)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        r = self.in_netns(ib["netns"], "busybox", "ping", "-c", "1", "-W", "3", sa.network.ip)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # the pod's hostname file and hosts entry
        with open(os.path.join(ia["podDir"], "hostname")) as f:
            self.assertEqual(f.read().strip(), "ping-a")
        with open(os.path.join(ia["podDir"], "hosts")) as f:
            self.assertIn(sa.network.ip, f.read())
        self.remove(a)
        self.remove(b)

    def test_hostport(self):
        port = free_port()
        pod = self.run_pod(self.config("web", port_mappings=[
            api_pb2.PortMapping(protocol=api_pb2.TCP, container_port=8080, host_port=port)]))
        st, info = self.info(pod)
        www = os.path.join(self.tmp, "www")
        os.makedirs(www, exist_ok=True)
        with open(os.path.join(www, "index.html"), "w") as f:
            f.write("hello from the pod\n")
        httpd = subprocess.Popen(["nsenter", "--net=" + info["netns"], "busybox", "httpd", "-f", "-p", "8080",
                                  "-h", www])
        try:
            body = None
            for _ in range(50):
                try:
                    body = urllib.request.urlopen("http://127.0.0.1:%d/index.html" % port, timeout=2).read()
                    break
                except OSError:
                    time.sleep(0.1)
            self.assertEqual(body, b"hello from the pod\n")
            gw = self.subnet + ".1"
            body = urllib.request.urlopen("http://%s:%d/index.html" % (gw, port), timeout=2).read()
            self.assertEqual(body, b"hello from the pod\n")
        finally:
            httpd.kill()
            httpd.wait()
        self.remove(pod)
        r = subprocess.run(["nft", "-a", "list", "table", "inet", "corral"], capture_output=True, text=True)
        self.assertNotIn(pod, r.stdout)

    def test_retry_returns_same_pod(self):
        cfg = self.config("retry")
        ids = []

        def go():
            ids.append(self.run_pod(cfg))

        ts = [threading.Thread(target=go) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(len(ids), 4)
        self.assertEqual(len(set(ids)), 1, ids)
        self.assertEqual(self.run_pod(cfg), ids[0])
        self.remove(ids[0])

    def test_remove_leaves_nothing(self):
        pod = self.run_pod(self.config("clean", pid=api_pb2.POD))
        st, info = self.info(pod)
        init = info["podInitPid"]
        self.assertGreater(init, 0)
        self.assertTrue(os.path.exists("/proc/%d" % init))
        veths_before = subprocess.run(["ip", "-o", "link", "show", "master", self.bridge], capture_output=True,
                                      text=True).stdout.count("\n")
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        st, _ = self.info(pod)
        self.assertEqual(st.state, api_pb2.SANDBOX_NOTREADY)
        self.assertFalse(os.path.exists("/proc/%d" % init) and
                         open("/proc/%d/stat" % init).read().split()[2] != "Z")
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn(pod, f.read())
        self.assertFalse(os.path.exists(info["nsDir"]))
        self.assertFalse(os.path.exists(info["podDir"]))
        veths_after = subprocess.run(["ip", "-o", "link", "show", "master", self.bridge], capture_output=True,
                                     text=True).stdout.count("\n")
        self.assertEqual(veths_after, veths_before - 1)
        with self.assertRaises(grpc.RpcError) as cm:
            self.info(pod)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        # Stop and remove are idempotent (kubelet retries both after a restart), also for
        # an id that never existed: CRI says so, and critest's Idempotence specs check it.
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id="f" * 64))

    def test_list_filters(self):
        a = self.run_pod(self.config("list-a", labels={"tier": "front"}))
        b = self.run_pod(self.config("list-b", labels={"tier": "back"}))
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=b))
        L = lambda f: {p.id for p in self.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest(filter=f)).items}
        self.assertEqual(L(api_pb2.PodSandboxFilter(label_selector={"tier": "front"})), {a})
        ready = L(api_pb2.PodSandboxFilter(state=api_pb2.PodSandboxStateValue(state=api_pb2.SANDBOX_READY)))
        self.assertIn(a, ready)
        self.assertNotIn(b, ready)
        self.assertEqual(L(api_pb2.PodSandboxFilter(id=a[:12])), {a})
        streamed = set()
        for m in self.d.runtime.StreamPodSandboxes(api_pb2.StreamPodSandboxesRequest()):
            streamed.update(p.id for p in m.pod_sandboxes)
        self.assertTrue({a, b} <= streamed)
        # corralctl shows them too
        r = self.d.ctl("pods")
        self.assertIn("list-a", r.stdout)
        self.remove(a)
        self.remove(b)

    def test_host_network(self):
        pod = self.run_pod(self.config("hostnet", network=api_pb2.NODE))
        st, info = self.info(pod)
        self.assertEqual(st.network.ip, "")
        self.assertEqual(st.linux.namespaces.options.network, api_pb2.NODE)
        self.remove(pod)

    def test_no_hostname_gets_the_nodes(self):
        # crictl and critest give no hostname and pod names longer than a hostname
        # may be: the pod runs, with the node's hostname (as containerd and CRI-O).
        name = "no-hostname-" + "x" * 70
        pod = self.run_pod(self.config(name, hostname=""))
        st, info = self.info(pod)
        r = subprocess.run(["nsenter", "--uts=" + os.path.join(info["nsDir"], "uts"), "hostname"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.stdout.strip(), socket.gethostname())
        with open(os.path.join(info["podDir"], "hostname")) as f:
            self.assertEqual(f.read().strip(), socket.gethostname())
        self.remove(pod)

    def test_sysctls_and_dns(self):
        pod = self.run_pod(self.config("sys", sysctls={"net.ipv4.ip_unprivileged_port_start": "0"},
                                       dns=api_pb2.DNSConfig(servers=["10.96.0.10"],
                                                             searches=["test.svc.cluster.local"],
                                                             options=["ndots:5"])))
        st, info = self.info(pod)
        r = self.in_netns(info["netns"], "cat", "/proc/sys/net/ipv4/ip_unprivileged_port_start")
        self.assertEqual(r.stdout.strip(), "0")
        with open(os.path.join(info["podDir"], "resolv.conf")) as f:
            rc = f.read()
        self.assertIn("nameserver 10.96.0.10", rc)
        self.assertIn("search test.svc.cluster.local", rc)
        self.assertIn("options ndots:5", rc)
        self.remove(pod)

    def test_update_pod_resources(self):
        pod = self.run_pod(self.config("resize"))
        mem = 96 << 20
        self.d.runtime.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
            pod_sandbox_id=pod, resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=mem)))
        cg_v1 = "/sys/fs/cgroup/memory/corral/pod-%s/memory.limit_in_bytes" % pod
        cg_v2 = "/sys/fs/cgroup/corral/pod-%s/memory.max" % pod
        path = cg_v1 if os.path.exists(cg_v1) else cg_v2
        with open(path) as f:
            self.assertEqual(int(f.read()), mem)
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.runtime.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
                pod_sandbox_id=pod, resources=api_pb2.LinuxContainerResources(memory_limit_in_bytes=-5)))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.runtime.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(
                pod_sandbox_id="e" * 64))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.remove(pod)
        self.assertFalse(os.path.exists(os.path.dirname(path)), "pod cgroup left behind")

    def test_bad_input_leaves_nothing(self):
        before = {p.id for p in self.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
        with self.assertRaises(grpc.RpcError) as cm:
            self.run_pod(self.config("badsys", sysctls={"kernel.panic": "1"}))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("kernel.panic", cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.run_pod(self.config("badh"), handler="nope")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("nope", cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=api_pb2.PodSandboxConfig()))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        after = {p.id for p in self.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
        self.assertEqual(before, after)
        nsroot = os.path.join(self.d.state, "ns")
        live = set(os.listdir(nsroot)) if os.path.isdir(nsroot) else set()
        self.assertTrue(live <= after, live - after)

    def test_restart_keeps_pods(self):
        pod = self.run_pod(self.config("survive"))
        st, info = self.info(pod)
        self.d.kill()
        self.d.start()
        st2, info2 = self.info(pod)
        self.assertEqual(st2.state, api_pb2.SANDBOX_READY)
        self.assertEqual(st2.network.ip, st.network.ip)
        r = self.in_netns(info2["netns"], "busybox", "ping", "-c", "1", "-W", "3", self.subnet + ".1")
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.remove(pod)


class CrashDuringRun(unittest.TestCase):
    """kill -9 of corrald while RunPodSandbox is inside CNI ADD: on restart the
    half-made pod is undone (CNI DEL from the cached config, namespaces
    unpinned, record gone) and a retry gets a working pod."""

    @classmethod
    def setUpClass(cls):
        if not os.path.exists(os.path.join(CNI_BIN, "bridge")):
            raise unittest.SkipTest("containernetworking-plugins is not installed")
        cls.tmp = tempfile.mkdtemp(prefix="corral-crash-")
        n = os.getpid() % 200 + 20
        cls.bridge = "crlcrash%d" % n
        cls.subnet = "10.249.%d" % n
        cls.ipam = os.path.join(cls.tmp, "ipam")
        bindir = os.path.join(cls.tmp, "bin")
        os.makedirs(bindir)
        # A real plugin chain made slow: the bridge plugin, 2 s late.
        slow = os.path.join(bindir, "slowbridge")
        with open(slow, "w") as f:
            f.write("#!/bin/sh\nsleep 2\nexec %s/bridge \"$@\"\n" % CNI_BIN)
        os.chmod(slow, 0o755)
        cni = os.path.join(cls.tmp, "cni")
        os.makedirs(cni)
        conf = {"cniVersion": "1.0.0", "name": "corral-crash", "plugins": [
            {"type": "slowbridge", "bridge": cls.bridge, "isGateway": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": cls.subnet + ".0/24"}]], "dataDir": cls.ipam}}]}
        with open(os.path.join(cni, "10-crash.conflist"), "w") as f:
            json.dump(conf, f)
        cls.d = Daemon({"cni": {"conf_dir": cni, "bin_dirs": [bindir, CNI_BIN]}}).start()

    @classmethod
    def tearDownClass(cls):
        cls.d.cleanup()
        subprocess.run(["ip", "link", "del", cls.bridge], capture_output=True)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def leases(self):
        d = os.path.join(self.ipam, "corral-crash")
        return [x for x in os.listdir(d) if x.startswith(self.subnet)] if os.path.isdir(d) else []

    def test_kill9_during_cni_add(self):
        cfg = api_pb2.PodSandboxConfig(
            metadata=api_pb2.PodSandboxMetadata(name="crash", uid="uid-crash", namespace="test"),
            hostname="crash", log_directory=os.path.join(self.tmp, "logs"))
        errors = []

        def run():
            try:
                self.d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=30)
            except grpc.RpcError as e:
                errors.append(e.code())

        t = threading.Thread(target=run)
        t.start()
        time.sleep(1.0)  # inside the slow plugin now
        self.d.kill()
        t.join()
        self.assertEqual(len(errors), 1)  # the client saw the daemon go away
        time.sleep(2.5)  # the orphaned plugin finishes its ADD: a veth and a lease exist
        self.assertEqual(len(self.leases()), 1, "the plugin's ADD should have completed")
        self.d.start()
        # Recovery ran CNI DEL with the cached config: lease and veth gone, nothing pinned.
        self.assertEqual(self.leases(), [])
        veths = subprocess.run(["ip", "-o", "link", "show", "master", self.bridge], capture_output=True,
                               text=True).stdout
        self.assertEqual(veths.strip(), "")
        self.assertEqual(list(self.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items), [])
        nsroot = os.path.join(self.d.state, "ns")
        self.assertEqual([x for x in os.listdir(nsroot)] if os.path.isdir(nsroot) else [], [])
        with open("/proc/self/mountinfo") as f:
            self.assertNotIn(os.path.join(self.d.state, "ns") + "/", f.read())
        # A retry now gets a working pod.
        pod = self.d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=30).pod_sandbox_id
        st = self.d.runtime.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
        self.assertEqual(st.state, api_pb2.SANDBOX_READY)
        self.assertTrue(st.network.ip.startswith(self.subnet + "."))
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod))
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod))
        self.assertEqual(self.leases(), [])


if __name__ == "__main__":
    main()
