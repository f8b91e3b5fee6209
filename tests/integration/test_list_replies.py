"""List and status replies are copied from what the model keeps packed, and
an unfiltered ListContainers / ListPodSandbox is kept and sent again while
nothing changed (issue #11: ListContainers <= 1 ms at 1,000 containers).
A kept reply must never be stale: every kind of change (create, start, a
container that exits by itself, stop, update, remove, a new pod, a pod
stopped) shows in the very next unfiltered list, and each status agrees
with the list and with PodSandboxStatus."""
import time

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc
from test_containers import Base

setUpModule = tc.setUpModule
tearDownModule = tc.tearDownModule

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED
CREATED = api_pb2.CONTAINER_CREATED


class ListReplies(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pod, cls.pcfg = cls.new_pod(cls, "lists")

    def all_ctrs(self):
        r = self.rt.ListContainers(api_pb2.ListContainersRequest())
        return {c.id: c for c in r.containers}

    def all_pods(self):
        r = self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest())
        return {p.id: p for p in r.items}

    def test_unfiltered_list_follows_every_change(self):
        before = self.rt.ListContainers(api_pb2.ListContainersRequest()).SerializeToString()
        again = self.rt.ListContainers(api_pb2.ListContainersRequest()).SerializeToString()
        self.assertEqual(before, again)

        cid = self.create(self.pod, self.pcfg, "short", ["sh", "-c", "sleep 2; exit 3"])
        self.assertEqual(self.all_ctrs()[cid].state, CREATED)
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        self.assertEqual(self.all_ctrs()[cid].state, RUNNING)
        # It exits by itself: the exit monitor's write shows in the next list.
        deadline = time.time() + 20
        while self.all_ctrs()[cid].state != EXITED and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.all_ctrs()[cid].state, EXITED)
        self.assertEqual(self.status(cid).status.exit_code, 3)

        long = self.create(self.pod, self.pcfg, "long", ["sleep", "600"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=long), timeout=30)
        self.assertEqual(self.all_ctrs()[long].state, RUNNING)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=long, timeout=1), timeout=30)
        self.assertEqual(self.all_ctrs()[long].state, EXITED)
        for c in (cid, long):
            self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=c), timeout=30)
            self.assertNotIn(c, self.all_ctrs())

    def test_filters_are_subsets_of_the_whole(self):
        a = self.create(self.pod, self.pcfg, "fa", ["sleep", "600"])
        b = self.create(self.pod, self.pcfg, "fb", ["sleep", "600"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=a), timeout=30)
        whole = self.all_ctrs()
        running = self.rt.ListContainers(api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
            state=api_pb2.ContainerStateValue(state=RUNNING)))).containers
        self.assertEqual({c.id for c in running}, {i for i, c in whole.items() if c.state == RUNNING})
        one = self.rt.ListContainers(api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
            id=b[:12]))).containers
        self.assertEqual([c.SerializeToString() for c in one], [whole[b].SerializeToString()])
        for c in (a, b):
            self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=c), timeout=30)

    def test_statuses_agree(self):
        a = self.create(self.pod, self.pcfg, "sa", ["sleep", "600"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=a), timeout=30)
        b = self.create(self.pod, self.pcfg, "sb", ["sleep", "600"])
        self.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
            container_id=b, linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=80 << 20)), timeout=30)
        t0 = time.time_ns()
        ps = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=self.pod[:10]))
        self.assertEqual(ps.status.id, self.pod)
        self.assertGreaterEqual(ps.timestamp, t0)
        self.assertEqual(ps.info, {})
        by_id = {s.id: s for s in ps.containers_statuses}
        for c in (a, b):
            st = self.status(c).status
            self.assertEqual(by_id[c].SerializeToString(), st.SerializeToString())
            self.assertEqual(self.all_ctrs()[c].state, st.state)
        self.assertEqual(by_id[b].resources.linux.memory_limit_in_bytes, 80 << 20)
        self.assertEqual(by_id[a].state, RUNNING)
        self.assertGreater(by_id[a].started_at, 0)
        v = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=a, verbose=True))
        self.assertIn('"pid":', v.info["info"])
        self.assertEqual(v.status.SerializeToString(), by_id[a].SerializeToString())
        pv = self.rt.PodSandboxStatus(api_pb2.PodSandboxStatusRequest(pod_sandbox_id=self.pod, verbose=True))
        self.assertIn('"podDir":', pv.info["info"])
        self.assertEqual(pv.status.SerializeToString(), ps.status.SerializeToString())
        self.assertGreaterEqual(pv.timestamp, ps.timestamp)
        for c in (a, b):
            self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=c), timeout=30)

    def test_pod_list_follows_pods(self):
        whole = self.all_pods()
        self.assertEqual(whole[self.pod].state, api_pb2.SANDBOX_READY)
        pod, _ = self.new_pod("lists-2")
        self.assertEqual(self.all_pods()[pod].state, api_pb2.SANDBOX_READY)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.assertEqual(self.all_pods()[pod].state, api_pb2.SANDBOX_NOTREADY)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
        self.assertNotIn(pod, self.all_pods())
        self.assertEqual(set(self.all_pods()), set(whole))


if __name__ == "__main__":
    main()
