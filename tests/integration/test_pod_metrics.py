"""CRI metrics (KEP-2371): ListMetricDescriptors, ListPodSandboxMetrics and
StreamPodSandboxMetrics with cAdvisor's names and labels, values that move
with the workload (CPU burn, memory, disk, traffic to the pod IP), a stopped
pod's series gone; usage_nano_cores in the Stats calls. A real corrald, real
pods on a private CNI bridge; one VM pod when QEMU and the guest image are
here. Run as root."""
import os
import socket
import time
import unittest

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp
import test_vm_pods as vmp

RUNNING = api_pb2.CONTAINER_RUNNING
BASE_KEYS = ["container", "id", "image", "name", "namespace", "pod"]
# What kubelet's /metrics/cadvisor users read first; every one must be served.
EXPECTED = [
    "container_cpu_usage_seconds_total", "container_cpu_user_seconds_total",
    "container_cpu_system_seconds_total", "container_memory_working_set_bytes", "container_memory_rss",
    "container_memory_cache", "container_memory_usage_bytes", "container_memory_failcnt",
    "container_network_receive_bytes_total", "container_network_transmit_bytes_total",
    "container_network_receive_packets_total", "container_network_transmit_packets_total",
    "container_network_receive_errors_total", "container_network_transmit_errors_total",
    "container_network_receive_packets_dropped_total", "container_network_transmit_packets_dropped_total",
    "container_fs_usage_bytes", "container_processes", "container_threads", "container_start_time_seconds",
    "container_last_seen", "container_spec_memory_limit_bytes",
]

_skip_reason = None
_images = None


def setUpModule():
    global _skip_reason, _images
    vmp.setUpModule()
    if vmp._images:
        _images = vmp._images
        return
    _images, _skip_reason = cp.start_images()


def tearDownModule():
    if _images:
        _images.stop()
    vmp._images = None


def samples(metrics):
    """{(name, labels...): value} of a list of Metric."""
    return {(m.name,) + tuple(m.label_values): m.value.value for m in metrics}


def value(metrics, name, **labels):
    """The one sample of `name` whose labels include `labels` (by key)."""
    found = [m for m in metrics if m.name == name and all(
        dict(zip(BASE_KEYS + [_extra(m)], m.label_values)).get(k) == v for k, v in labels.items())]
    assert len(found) == 1, "%s %s: %d samples in %s" % (name, labels, len(found), sorted({m.name for m in metrics}))
    return found[0].value.value


def _extra(m):
    return {"container_cpu_usage_seconds_total": "cpu"}.get(m.name, "interface" if "network" in m.name
                                                           else "device" if "_fs_" in m.name else "")


def send_udp(ip, n, size=1000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for _ in range(n):
            s.sendto(b"m" * size, (ip, 9))
    finally:
        s.close()


class Base(unittest.TestCase):
    config = {"cgroup_driver": "cgroupfs"}
    handler = ""

    @classmethod
    def setUpClass(cls):
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        cls.d = Daemon(cls.config)
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.rt = cls.d.runtime
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=_images.busybox)),
                              timeout=120)
        cls.image = _images.busybox
        cls.logdir = os.path.join(cls.d.dir, "logs")

    @classmethod
    def tearDownClass(cls):
        cp.teardown_daemon(cls, timeout=60)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    def new_pod(self, name, timeout=60):
        cfg = cp.pod_config(name, os.path.join(self.logdir, name))
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg, runtime_handler=self.handler),
                                    timeout=timeout).pod_sandbox_id
        return pid, cfg

    def start(self, pod, pcfg, name, cmd):
        cfg = cp.ctr_config(name, self.image, cmd)
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                     sandbox_config=pcfg), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        cp.wait_state(self.rt, cid, RUNNING, timeout=60)
        return cid

    def exec(self, cid, script, timeout=60):
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=timeout),
                             timeout=timeout + 30)
        self.assertEqual(r.exit_code, 0, r.stderr)
        return r

    def pod_metrics(self, pid):
        pods = self.rt.ListPodSandboxMetrics(api_pb2.ListPodSandboxMetricsRequest(), timeout=60).pod_metrics
        mine = [p for p in pods if p.pod_sandbox_id == pid]
        return mine[0] if mine else None

    def ctr_metrics(self, pid, cid):
        pm = self.pod_metrics(pid)
        self.assertIsNotNone(pm, "pod %s has no metrics" % pid)
        cm = [c for c in pm.container_metrics if c.container_id == cid]
        self.assertEqual(len(cm), 1, "container %s: %s" % (cid, [c.container_id for c in pm.container_metrics]))
        return pm, cm[0]

    def check_against_descriptors(self, pm):
        descs = {d.name: list(d.label_keys)
                 for d in self.rt.ListMetricDescriptors(api_pb2.ListMetricDescriptorsRequest()).descriptors}
        for m in list(pm.metrics) + [m for c in pm.container_metrics for m in c.metrics]:
            self.assertIn(m.name, descs)
            self.assertEqual(len(m.label_values), len(descs[m.name]), m)
        return descs


class NamespaceMetrics(Base):
    def test_1_descriptors(self):
        descs = self.rt.ListMetricDescriptors(api_pb2.ListMetricDescriptorsRequest()).descriptors
        names = [d.name for d in descs]
        self.assertEqual(len(names), len(set(names)))
        for want in EXPECTED:
            self.assertIn(want, names)
        for d in descs:
            self.assertEqual(list(d.label_keys)[:6], BASE_KEYS, d.name)
            self.assertTrue(d.help, d.name)
        by = {d.name: list(d.label_keys) for d in descs}
        self.assertEqual(by["container_network_receive_bytes_total"][-1], "interface")
        self.assertEqual(by["container_cpu_usage_seconds_total"][-1], "cpu")
        self.assertEqual(by["container_fs_usage_bytes"][-1], "device")

    def test_2_values_move(self):
        pid, pcfg = self.new_pod("metrics")
        cid = self.start(pid, pcfg, "work", ["sleep", "1000"])
        ip = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pid)).status.network.ip
        # One datagram first: datagrams sent while the host resolves the pod
        # IP's MAC may be dropped (the neighbour queue is short).
        send_udp(ip, 1)
        time.sleep(0.5)
        self.assertTrue(ip)

        pm, cm = self.ctr_metrics(pid, cid)
        self.check_against_descriptors(pm)
        names = {m.name for m in cm.metrics} | {m.name for m in pm.metrics}
        for want in EXPECTED:
            self.assertIn(want, names)
        labels = dict(zip(BASE_KEYS, [m for m in cm.metrics if m.name == "container_memory_rss"][0].label_values))
        self.assertEqual(labels["container"], "work")
        self.assertEqual(labels["pod"], "metrics")
        self.assertEqual(labels["namespace"], "default")
        self.assertEqual(labels["name"], cid)
        self.assertEqual(labels["image"], self.image)
        self.assertIn(cid, labels["id"])  # the cgroup path
        self.assertGreaterEqual(value(cm.metrics, "container_processes"), 1)
        self.assertGreater(value(cm.metrics, "container_start_time_seconds"), time.time() - 600)
        c0 = value(cm.metrics, "container_cpu_usage_seconds_total", cpu="total")
        ws0 = value(cm.metrics, "container_memory_working_set_bytes")
        fs0 = [m.value.value for m in cm.metrics if m.name == "container_fs_usage_bytes"][0]
        rx0 = value(pm.metrics, "container_network_receive_bytes_total", interface="eth0")
        rxp0 = value(pm.metrics, "container_network_receive_packets_total", interface="eth0")
        self.assertNotIn("lo", {dict(zip(BASE_KEYS + ["interface"], m.label_values))["interface"]
                                for m in pm.metrics if m.name == "container_network_receive_bytes_total"})

        # usage_nano_cores: a first sample, then one after >= 1 s of burn
        self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid))
        # Burn until a whole CPU second more is used (the machine may be busy:
        # a 2 s burn can get a third of a core), for at most 60 s.
        deadline = time.time() + 60
        while time.time() < deadline:
            self.exec(cid, "timeout 2 sh -c 'while :; do :; done'; true")
            used = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
            if used.cpu.usage_core_nano_seconds.value >= (c0 + 1) * 10**9 + 10**8:
                break
        self.exec(cid, "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null && "
                       "dd if=/dev/zero of=/disk bs=1M count=8 2>/dev/null")
        send_udp(ip, 200)
        time.sleep(0.2)

        pm, cm = self.ctr_metrics(pid, cid)
        c1 = value(cm.metrics, "container_cpu_usage_seconds_total", cpu="total")
        ws1 = value(cm.metrics, "container_memory_working_set_bytes")
        fs1 = [m.value.value for m in cm.metrics if m.name == "container_fs_usage_bytes"][0]
        rx1 = value(pm.metrics, "container_network_receive_bytes_total", interface="eth0")
        rxp1 = value(pm.metrics, "container_network_receive_packets_total", interface="eth0")
        print("cpu %d -> %d s, working set %d -> %d, fs %d -> %d, eth0 rx %d -> %d bytes" %
              (c0, c1, ws0, ws1, fs0, fs1, rx0, rx1))
        self.assertGreaterEqual(c1, c0 + 1)
        self.assertGreaterEqual(ws1, ws0 + 32 * 2**20)
        # The writable layer is walked once a minute (as cAdvisor did), one
        # walk shared with ContainerStats and ImageFsInfo: the same figure
        # as ContainerStats, never a per-call walk. That a write shows up
        # after the exit walk is test_cpu_stats's part.
        ws_layer = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats.writable_layer
        self.assertEqual(fs1, ws_layer.used_bytes.value)
        self.assertGreater(fs0, 0)
        self.assertGreaterEqual(rx1, rx0 + 200 * 1000)
        self.assertGreaterEqual(rxp1, rxp0 + 200)

        cs = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
        self.assertTrue(cs.cpu.HasField("usage_nano_cores"))
        self.assertGreater(cs.cpu.usage_nano_cores.value, 10 * 1000 * 1000)  # > 0.01 core over the burn
        self.assertLess(cs.cpu.usage_nano_cores.value, os.cpu_count() * 10**9 * 1.1)

        # Stream: the same pods, in batches
        streamed = [p for r in self.rt.StreamPodSandboxMetrics(api_pb2.StreamPodSandboxMetricsRequest(),
                                                               timeout=60) for p in r.pod_sandbox_metrics]
        self.assertIn(pid, [p.pod_sandbox_id for p in streamed])

        # A stopped pod's series are gone; a running one's stay
        pid2, pcfg2 = self.new_pod("other")
        cid2 = self.start(pid2, pcfg2, "idle", ["sleep", "1000"])
        self.ctr_metrics(pid2, cid2)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=60)
        self.assertIsNone(self.pod_metrics(pid))
        self.assertIsNotNone(self.pod_metrics(pid2))
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=60)

    def test_3_exited_container_has_no_series(self):
        pid, pcfg = self.new_pod("exited")
        live = self.start(pid, pcfg, "live", ["sleep", "1000"])
        done = self.start(pid, pcfg, "done", ["sh", "-c", "sleep 0.3"])
        cp.wait_state(self.rt, done, api_pb2.CONTAINER_EXITED, timeout=20)
        pm = self.pod_metrics(pid)
        self.assertEqual([c.container_id for c in pm.container_metrics], [live])


class VMMetrics(Base):
    """The same for a VM pod: the guest cgroup's figures through the VM shim
    and agent, the network of the pod netns's veth. One test: slow under TCG."""
    handler = "vm"

    @classmethod
    def setUpClass(cls):
        if vmp._skip_reason:
            raise unittest.SkipTest(vmp._skip_reason)
        kernel, initrd, _ = vmp._guest
        cls.config = {"cgroup_driver": "cgroupfs", "runtimes": {"vm": vmp.vm_handler(kernel, initrd)}}
        super().setUpClass()

    def test_vm_pod(self):
        pid, pcfg = self.new_pod("vmmetrics", timeout=180)
        cid = self.start(pid, pcfg, "guest", ["sleep", "1000"])
        ip = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=pid)).status.network.ip
        # One datagram first: datagrams sent while the host resolves the pod
        # IP's MAC may be dropped (the neighbour queue is short).
        send_udp(ip, 1)
        time.sleep(0.5)
        pm, cm = self.ctr_metrics(pid, cid)
        self.check_against_descriptors(pm)
        labels = dict(zip(BASE_KEYS, [m for m in cm.metrics if m.name == "container_memory_rss"][0].label_values))
        self.assertEqual((labels["container"], labels["pod"], labels["name"]), ("guest", "vmmetrics", cid))
        self.assertGreater(value(cm.metrics, "container_memory_working_set_bytes"), 0)
        self.assertGreater(value(cm.metrics, "container_memory_usage_bytes"), 0)
        self.assertGreaterEqual(value(cm.metrics, "container_processes"), 1)
        ifaces = {dict(zip(BASE_KEYS + ["interface"], m.label_values))["interface"]
                  for m in pm.metrics if m.name == "container_network_receive_bytes_total"}
        self.assertIn("eth0", ifaces)
        self.assertFalse([i for i in ifaces if i.startswith("tap") or i == "lo"], ifaces)
        c0 = value(cm.metrics, "container_cpu_usage_seconds_total", cpu="total")
        ws0 = value(cm.metrics, "container_memory_working_set_bytes")
        rx0 = value(pm.metrics, "container_network_receive_bytes_total", interface="eth0")

        deadline = time.time() + 120
        while time.time() < deadline:
            self.exec(cid, "timeout 3 sh -c 'while :; do :; done'; true", timeout=90)
            _, cm = self.ctr_metrics(pid, cid)
            if value(cm.metrics, "container_cpu_usage_seconds_total", cpu="total") >= c0 + 1:
                break
        self.exec(cid, "dd if=/dev/zero of=/dev/shm/fill bs=1M count=16 2>/dev/null", timeout=90)
        send_udp(ip, 100)
        time.sleep(0.5)
        pm, cm = self.ctr_metrics(pid, cid)
        c1 = value(cm.metrics, "container_cpu_usage_seconds_total", cpu="total")
        ws1 = value(cm.metrics, "container_memory_working_set_bytes")
        rx1 = value(pm.metrics, "container_network_receive_bytes_total", interface="eth0")
        print("vm: cpu %d -> %d s, working set %d -> %d, eth0 rx %d -> %d bytes" % (c0, c1, ws0, ws1, rx0, rx1))
        self.assertGreaterEqual(c1, c0 + 1)
        self.assertGreaterEqual(ws1, ws0 + 12 * 2**20)
        self.assertGreaterEqual(rx1, rx0 + 100 * 1000)
        cs = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid), timeout=30).stats
        self.assertGreater(cs.cpu.usage_core_nano_seconds.value, 0)

        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=120)
        self.assertIsNone(self.pod_metrics(pid))


if __name__ == "__main__":
    main()
