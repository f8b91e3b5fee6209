"""The Stats RPCs at kubelet's pace (issue #11: an idle corrald at 330x3
uses <= 2% of a core, and kubelet asks every container's and pod's stats
every 10 s): figures that still move with the workload, a cgroup read
costing a few reads of descriptors held open instead of a path walk and
open of every file, those descriptors given back when containers come and
go, and the writable layer's usage stamped with when it was walked. A real
corrald, real containers. Run as root."""
import os
import time

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc
from test_containers import Base

setUpModule = tc.setUpModule
tearDownModule = tc.tearDownModule

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED


def syscr(pid):
    """read(2)-family calls the process made so far (/proc/PID/io)."""
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            if line.startswith("syscr:"):
                return int(line.split()[1])
    raise AssertionError("no syscr in /proc/%d/io" % pid)


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class Stats(Base):
    def start(self, pod, pcfg, name, cmd):
        cid, _ = self.run_ctr(pod, pcfg, name, cmd, wait_exit=False)
        self.rt_wait(cid, RUNNING)
        return cid

    def rt_wait(self, cid, state):
        return cp.wait_state(self.rt, cid, state, timeout=30)

    def ctr_stats(self, cid, pod=None):
        ls = self.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(
            filter=api_pb2.ContainerStatsFilter(pod_sandbox_id=pod) if pod else None), timeout=60).stats
        mine = [s for s in ls if s.attributes.id == cid]
        self.assertEqual(len(mine), 1, [s.attributes.id for s in ls])
        return mine[0]

    def list_all(self):
        self.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(), timeout=60)
        self.rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(), timeout=60)

    def exec(self, cid, script, timeout=60):
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=timeout),
                             timeout=timeout + 30)
        self.assertEqual(r.exit_code, 0, r.stderr)

    def test_1_values_move(self):
        pod, pcfg = self.new_pod("moving")
        cid = self.start(pod, pcfg, "busy", ["sleep", "1000"])
        s0 = self.ctr_stats(cid)
        # A whole CPU second more (the machine may be busy: up to 60 s of
        # burning), and 40 MiB of tmpfs, charged to the container.
        c0 = s0.cpu.usage_core_nano_seconds.value
        deadline = time.time() + 60
        while time.time() < deadline:
            self.exec(cid, "timeout 2 sh -c 'while :; do :; done'; true")
            time.sleep(1.1)
            if self.ctr_stats(cid).cpu.usage_core_nano_seconds.value >= c0 + 10**9:
                break
        self.exec(cid, "dd if=/dev/zero of=/dev/shm/fill bs=1M count=40 2>/dev/null")
        time.sleep(1.1)
        s1 = self.ctr_stats(cid, pod=pod)
        print("cpu %d -> %d ns, working set %d -> %d" % (c0, s1.cpu.usage_core_nano_seconds.value,
                                                         s0.memory.working_set_bytes.value,
                                                         s1.memory.working_set_bytes.value))
        self.assertGreaterEqual(s1.cpu.usage_core_nano_seconds.value, c0 + 10**9)
        self.assertGreaterEqual(s1.memory.working_set_bytes.value, s0.memory.working_set_bytes.value + (32 << 20))
        self.assertGreaterEqual(s1.memory.usage_bytes.value, s1.memory.working_set_bytes.value)
        self.assertGreater(s1.cpu.timestamp, s0.cpu.timestamp)
        self.assertGreater(s1.cpu.timestamp, int((time.time() - 5) * 1e9))
        self.assertTrue(s1.cpu.HasField("usage_nano_cores"))
        # The pod's cgroup holds the container's: at least its figures, and
        # the container is listed under the pod with the same reading.
        ps = self.rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(
            filter=api_pb2.PodSandboxStatsFilter(id=pod)), timeout=60).stats
        self.assertEqual([p.attributes.id for p in ps], [pod])
        lx = ps[0].linux
        self.assertGreaterEqual(lx.cpu.usage_core_nano_seconds.value, s1.cpu.usage_core_nano_seconds.value)
        self.assertGreaterEqual(lx.memory.working_set_bytes.value, 32 << 20)
        self.assertGreaterEqual(lx.process.process_count.value, 1)
        self.assertIn(cid, [c.attributes.id for c in lx.containers])
        one = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid), timeout=60).stats
        self.assertGreaterEqual(one.cpu.usage_core_nano_seconds.value, s1.cpu.usage_core_nano_seconds.value)
        # Stopped: no figures, and no error.
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=60)
        s2 = self.ctr_stats(cid)
        self.assertFalse(s2.cpu.HasField("usage_core_nano_seconds"))
        self.assertFalse(s2.memory.HasField("working_set_bytes"))
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def test_2_reads_per_container(self):
        """A running container's cgroup costs a few reads per call: its files
        are held open, not opened and read to EOF one by one (12 read calls
        per container and call before, and a path walk for each open)."""
        pod, pcfg = self.new_pod("many")
        cids = [self.start(pod, pcfg, "s%d" % i, ["sleep", "1000"]) for i in range(10)]
        self.list_all()
        pid = self.d.proc.pid
        per = []
        for _ in range(3):
            time.sleep(1.1)  # past the second in which a reading is served again
            r0 = syscr(pid)
            n = len(self.rt.ListContainerStats(api_pb2.ListContainerStatsRequest(), timeout=60).stats)
            per.append((syscr(pid) - r0) / float(n))
        print("read calls per container and ListContainerStats: %s" % ["%.1f" % x for x in per])
        # cpuacct.usage, memory.usage_in_bytes, memory.stat (v2: cpu.stat,
        # memory.current, memory.stat): 3; the gRPC socket's reads spread
        # over the containers add a little.
        self.assertLessEqual(min(per), 4.0)
        for cid in cids:
            self.assertGreater(self.ctr_stats(cid).memory.working_set_bytes.value, 0)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)

    def test_3_descriptors_given_back(self):
        """Containers and pods come and go, some exit by themselves: after
        they are gone and kubelet listed the stats again, corrald holds no
        more descriptors than before."""
        pid = self.d.proc.pid
        self.list_all()
        base = nfds(pid)
        peak = base
        for r in range(3):
            pod, pcfg = self.new_pod("churn%d" % r)
            cids = [self.start(pod, pcfg, "c%d" % i, ["sleep", "1000"]) for i in range(5)]
            quick = self.start(pod, pcfg, "quick", ["sh", "-c", "sleep 1"])
            self.list_all()
            peak = max(peak, nfds(pid))
            self.rt_wait(quick, EXITED)
            time.sleep(1.1)
            self.list_all()
            self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
            self.list_all()
            self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
            self.list_all()
            self.assertNotIn(cids[0], [s.attributes.id for s in self.rt.ListContainerStats(
                api_pb2.ListContainerStatsRequest(), timeout=60).stats])
        end = nfds(pid)
        print("descriptors: %d before, %d at the most, %d after" % (base, peak, end))
        self.assertLessEqual(end, base + 2)

    def test_4_writable_layer(self):
        """The writable layer's usage says when it was walked. It is walked
        again once a minute or so old (cAdvisor's pace), and once more after
        the container exited: what it wrote is counted then."""
        pod, pcfg = self.new_pod("disk")
        cid = self.start(pod, pcfg, "writer", ["sleep", "1000"])
        w0 = self.ctr_stats(cid).writable_layer
        self.assertTrue(w0.fs_id.mountpoint)
        self.assertGreater(w0.timestamp, int((time.time() - 60) * 1e9))
        self.assertLessEqual(w0.timestamp, int(time.time() * 1e9))
        time.sleep(1.1)
        w1 = self.ctr_stats(cid).writable_layer
        self.assertEqual(w1.timestamp, w0.timestamp)  # not walked again at once
        self.assertEqual(w1.used_bytes.value, w0.used_bytes.value)
        self.exec(cid, "dd if=/dev/zero of=/disk bs=1M count=8 2>/dev/null")
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=60)
        finished = self.status(cid).status.finished_at
        w2 = self.ctr_stats(cid).writable_layer
        print("writable layer %d -> %d bytes, walked %.1f s apart" % (w0.used_bytes.value, w2.used_bytes.value,
                                                                      (w2.timestamp - w0.timestamp) / 1e9))
        self.assertGreaterEqual(w2.used_bytes.value, w0.used_bytes.value + (7 << 20))
        self.assertGreater(w2.inodes_used.value, w0.inodes_used.value)
        self.assertGreater(w2.timestamp, finished)
        time.sleep(1.1)
        self.assertEqual(self.ctr_stats(cid).writable_layer.timestamp, w2.timestamp)  # for good
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)


if __name__ == "__main__":
    main()
