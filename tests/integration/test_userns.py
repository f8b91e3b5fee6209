"""Pods with their own user namespace (KEP-127, namespace_options.userns_options
mode POD): the mappings inside, idmapped rootfs and volumes, the pod's other
namespaces owned by it, what RunPodSandbox refuses, and the Status feature.
Run as root; skipped (77) where the host cannot make idmapped overlay mounts."""
import json
import os
import tempfile
import unittest

import grpc

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc

INVALID = grpc.StatusCode.INVALID_ARGUMENT
HOST_ID = 100000
SIZE = 65536


def setUpModule():
    tc.setUpModule()


def tearDownModule():
    tc.tearDownModule()


def userns(cfg, mode=api_pb2.POD, maps=((0, HOST_ID, SIZE),), gmaps=None):
    u = cfg.linux.security_context.namespace_options.userns_options
    u.mode = mode
    for c, h, n in maps:
        u.uids.add(container_id=c, host_id=h, length=n)
    for c, h, n in (maps if gmaps is None else gmaps):
        u.gids.add(container_id=c, host_id=h, length=n)
    return cfg


def host_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1:]
    return None


class UserNamespaces(tc.Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        st = cls.rt.Status(api_pb2.StatusRequest(verbose=True))
        cls.handlers = {h.name: h for h in st.runtime_handlers}
        host = json.loads(dict(st.info)["host"])
        cls.feature = cls.handlers[""].features.user_namespaces
        handlers = json.loads(dict(st.info)["runtimeHandlers"])
        cls.reason = [h for h in handlers if h["name"] == ""][0]["userNamespacesReason"]
        cls.host_userns = host["userNamespaces"]

    def setUp(self):
        if not self.feature:
            self.skipTest("no user namespace pods on this host: %s" % self.reason)

    def userns_pod(self, name, **kw):
        cfg = userns(cp.pod_config(name, os.path.join(self.logdir, name), **kw))
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        self.addCleanup(self.remove_pod, pid)
        return pid, cfg

    def remove_pod(self, pid):
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=30)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=30)

    def exec_out(self, cid, cmd):
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=20), timeout=30)
        self.assertEqual(r.exit_code, 0, (cmd, r.stdout, r.stderr))
        return r.stdout.decode()

    def test_pod_userns_container_view_and_host_view(self):
        vol = tempfile.mkdtemp(prefix="corral-userns-vol-")
        self.addCleanup(lambda: os.system("rm -rf %s" % vol))
        pod, pcfg = self.userns_pod("userns-a")
        cfg = cp.ctr_config("main", self.image, ["sh", "-c", "sleep 60"])
        cfg.linux.security_context.capabilities.add_capabilities.extend(["NET_ADMIN"])
        cfg.mounts.add(container_path="/vol", host_path=vol)
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                     sandbox_config=pcfg)).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        cp.wait_state(self.rt, cid, tc.RUNNING)

        # Inside: the one mapping, root, and the image's root-owned files as root's.
        self.assertEqual(self.exec_out(cid, ["cat", "/proc/self/uid_map"]).split(), ["0", str(HOST_ID), str(SIZE)])
        self.assertEqual(self.exec_out(cid, ["cat", "/proc/self/gid_map"]).split(), ["0", str(HOST_ID), str(SIZE)])
        self.assertEqual(self.exec_out(cid, ["id", "-u"]).strip(), "0")
        self.assertEqual(self.exec_out(cid, ["stat", "-c", "%u:%g", "/bin/busybox"]).strip(), "0:0")
        self.assertEqual(self.exec_out(cid, ["stat", "-c", "%u:%g", "/etc/hosts"]).strip(), "0:0")
        # The rootfs is writable by the container's root (idmapped overlay).
        self.exec_out(cid, ["sh", "-c", "echo x > /made-inside && mkdir -p /tmp/d && echo u:x:5:5::/:/bin/sh >> /etc/passwd"])
        self.assertEqual(self.exec_out(cid, ["stat", "-c", "%u:%g", "/made-inside", "/etc/passwd", "/"]).split(),
                         ["0:0"] * 3)  # new, copied up, the merged root
        # /dev is the container root's; proc and sysfs are the pod's.
        self.assertEqual(self.exec_out(cid, ["stat", "-c", "%u", "/dev"]).strip(), "0")
        self.assertIn("eth0", self.exec_out(cid, ["ls", "/sys/class/net"]).split())
        # The pod's netns and uts ns belong to its user namespace: its root may use them.
        self.exec_out(cid, ["ip", "addr", "add", "127.0.0.2/8", "dev", "lo"])
        self.assertEqual(self.exec_out(cid, ["hostname"]).strip(), "userns-a")

        # The host sees the process as the mapped id.
        info = json.loads(dict(self.status(cid, verbose=True).info)["info"])
        self.assertEqual(host_status(info["pid"], "Uid")[0], str(HOST_ID))
        self.assertEqual(host_status(info["pid"], "Gid")[0], str(HOST_ID))
        # ContainerStatus reports the user as the container sees it.
        self.assertEqual(self.status(cid).status.user.linux.uid, 0)

        # A volume written from inside: on disk as the host's root (idmapped bind).
        self.exec_out(cid, ["sh", "-c", "echo hi > /vol/f"])
        st = os.stat(os.path.join(vol, "f"))
        self.assertEqual((st.st_uid, st.st_gid), (0, 0))
        self.assertEqual(self.exec_out(cid, ["stat", "-c", "%u", "/vol/f"]).strip(), "0")

        # A second container joins the same user namespace.
        cfg2 = cp.ctr_config("second", self.image, ["sh", "-c", "readlink /proc/self/ns/user; id -u"])
        cid2 = self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg2,
                                                                      sandbox_config=pcfg)).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid2))
        st2 = cp.wait_state(self.rt, cid2, tc.EXITED, timeout=20)
        self.assertEqual(st2.exit_code, 0, self.log_text(st2))
        ns1 = self.exec_out(cid, ["readlink", "/proc/self/ns/user"]).strip()
        self.assertEqual(self.log_text(st2).split(), [ns1, "0"])
        self.assertNotEqual(ns1, os.readlink("/proc/self/ns/user"))

    def test_shared_pid_pod(self):
        pod, pcfg = self.userns_pod("userns-pid", pid_mode=api_pb2.POD)
        cfg = cp.ctr_config("c", self.image, ["sh", "-c", "cat /proc/self/uid_map; ls /proc/1/ >/dev/null && echo ok"])
        cfg.linux.security_context.namespace_options.pid = api_pb2.POD
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                     sandbox_config=pcfg)).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid))
        st = cp.wait_state(self.rt, cid, tc.EXITED, timeout=20)
        self.assertEqual(st.exit_code, 0, self.log_text(st))
        self.assertEqual(self.log_text(st).split(), ["0", str(HOST_ID), str(SIZE), "ok"])

    def test_node_mode_is_the_hosts(self):
        cfg = cp.pod_config("userns-node", os.path.join(self.logdir, "userns-node"))
        cfg.linux.security_context.namespace_options.userns_options.mode = api_pb2.NODE
        pod = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        self.addCleanup(self.remove_pod, pod)
        _, st = self.run_ctr(pod, cfg, "c", ["cat", "/proc/self/uid_map"])
        with open("/proc/self/uid_map") as f:
            self.assertEqual(self.log_text(st).split(), f.read().split())

    def refused(self, name, cfg, *words):
        e = self.assertCode(INVALID, self.rt.RunPodSandbox, api_pb2.RunPodSandboxRequest(config=cfg), timeout=60)
        for w in words:
            self.assertIn(w, e.details())
        pods = self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items
        self.assertNotIn(name, [p.metadata.name for p in pods])

    def test_refused(self):
        def base(n):
            return cp.pod_config(n, os.path.join(self.logdir, n))
        self.refused("two", userns(base("two"), maps=((0, 1000, 100000), (0, 2000, 100000))), "exactly one uid")
        self.refused("no-root", userns(base("no-root"), maps=((1, 1000, 100000),)), "container id 0")
        self.refused("gid-no-root", userns(base("gid-no-root"), gmaps=((1, 1000, 100000),)), "gid", "container id 0")
        self.refused("none", userns(base("none"), maps=()), "exactly one uid")
        for mode, word in ((api_pb2.CONTAINER, "CONTAINER"), (api_pb2.TARGET, "TARGET")):
            cfg = base("mode")
            cfg.linux.security_context.namespace_options.userns_options.mode = mode
            self.refused("mode", cfg, word, "not supported")
        for field, word in (("network", "network"), ("pid", "PID"), ("ipc", "IPC")):
            cfg = userns(base("host-" + field))
            setattr(cfg.linux.security_context.namespace_options, field, api_pb2.NODE)
            self.refused("host-" + field, cfg, word, "host")
        cfg = userns(base("node-maps"), mode=api_pb2.NODE)
        self.refused("node-maps", cfg, "NODE")
        # Nothing was left behind for the refused pods.
        ns_dir = os.path.join(self.d.state, "ns")
        left = set(os.listdir(ns_dir)) if os.path.isdir(ns_dir) else set()
        self.assertLessEqual(left, {p.id for p in self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items})


class StatusFeature(unittest.TestCase):
    """The default handler says user_namespaces exactly where the host can;
    a VM handler never does, and says why."""

    def test_features(self):
        d = tc.Daemon({"runtimes": {"vm": {"kernel": "/nonexistent", "initrd": "/nonexistent"}}})
        d.start()
        try:
            st = d.runtime.Status(api_pb2.StatusRequest(verbose=True))
            h = {x.name: x for x in st.runtime_handlers}
            host = json.loads(dict(st.info)["host"])
            info = {x["name"]: x for x in json.loads(dict(st.info)["runtimeHandlers"])}
            self.assertFalse(h["vm"].features.user_namespaces)
            self.assertFalse(info["vm"]["userNamespaces"])
            self.assertIn("own guest kernel", info["vm"]["userNamespacesReason"])
            self.assertEqual(h[""].features.user_namespaces, info[""]["userNamespaces"])
            if not h[""].features.user_namespaces:
                self.assertTrue(info[""]["userNamespacesReason"])
            else:
                self.assertTrue(host["userNamespaces"])
            # The VM handler refuses a pod user namespace by name.
            cfg = userns(cp.pod_config("vmu", "/tmp"))
            with self.assertRaises(grpc.RpcError) as cm:
                d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler="vm"), timeout=60)
            self.assertEqual(cm.exception.code(), INVALID, cm.exception.details())
            self.assertIn("own kernel", cm.exception.details())
        finally:
            d.stop()
            cp.unmount_under(d.dir)
            d.cleanup()


if __name__ == "__main__":
    main()
