"""Reads come from corrald's memory, kept current by events: a container
that exits by itself is EXITED with its exit code at the next list and
status, its CONTAINER_STOPPED_EVENT went out exactly once, before anyone
asked; and after a kill -9 of corrald what it lists is what it listed
before (the journal)."""
import os
import threading
import time
import unittest

import corral_harness
import corral_pods as cp
from corral_harness import Daemon, api_pb2


class ModelEvents(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        try:
            cls.images = cp.Images()
        except Exception as e:  # noqa: BLE001
            raise unittest.SkipTest("registry fixture unavailable: %s" % e)
        cls.d = Daemon({"cgroup_driver": "cgroupfs"})
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=cls.images.busybox)),
                              timeout=120)

    @classmethod
    def tearDownClass(cls):
        cp.teardown_daemon(cls, timeout=30)
        cls.images.stop()

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    def test_exit_is_an_event_and_in_memory(self):
        rt = self.d.runtime
        events = []
        stream = rt.GetContainerEvents(api_pb2.GetEventsRequest())

        def listen():
            try:
                for ev in stream:
                    events.append((ev.container_id, ev.container_event_type))
            except Exception:  # noqa: BLE001 - cancelled at the end
                pass

        t = threading.Thread(target=listen, daemon=True)
        t.start()
        logdir = os.path.join(self.d.dir, "logs")
        os.makedirs(logdir, exist_ok=True)
        pcfg = cp.pod_config("ev", logdir)
        pcfg.linux.security_context.namespace_options.network = api_pb2.NODE
        pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pcfg), timeout=60).pod_sandbox_id
        ids = []
        for i, code in enumerate((7, 0)):
            cfg = cp.ctr_config("c%d" % i, self.images.busybox, ["sh", "-c", "sleep 0.5; exit %d" % code])
            cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                    sandbox_config=pcfg), timeout=60).container_id
            rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
            ids.append((cid, code))
        # No list or status call until the events came: they must not need one.
        stopped = api_pb2.CONTAINER_STOPPED_EVENT
        deadline = time.time() + 20
        while time.time() < deadline and not all((cid, stopped) in events for cid, _ in ids):
            time.sleep(0.05)
        for cid, code in ids:
            self.assertEqual(events.count((cid, stopped)), 1, "one STOPPED event for %s: %s" % (cid, events))
            st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
            self.assertEqual((st.state, st.exit_code), (api_pb2.CONTAINER_EXITED, code))
            self.assertEqual(st.reason, "Error" if code else "Completed")
        listed = {c.id: c.state for c in rt.ListContainers(api_pb2.ListContainersRequest(
            filter=api_pb2.ContainerFilter(pod_sandbox_id=pod[:12]))).containers}
        self.assertEqual(listed, {cid: api_pb2.CONTAINER_EXITED for cid, _ in ids})
        # Filters answered from memory: by state, by label, by id prefix.
        f = api_pb2.ContainerFilter(state=api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_EXITED),
                                    label_selector={"ctr": "c0"})
        self.assertEqual([c.id for c in rt.ListContainers(api_pb2.ListContainersRequest(filter=f)).containers],
                         [ids[0][0]])
        f = api_pb2.ContainerFilter(id=ids[1][0][:10])
        self.assertEqual([c.id for c in rt.ListContainers(api_pb2.ListContainersRequest(filter=f)).containers],
                         [ids[1][0]])
        time.sleep(0.5)
        self.assertEqual(sum(1 for e in events if e == (ids[0][0], stopped)), 1, "no second STOPPED")
        stream.cancel()

        # kill -9 and start: the same pods and containers, the same states.
        before_pods = {p.id: p.state for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items}
        before_ctrs = {(c.id, c.state) for c in rt.ListContainers(api_pb2.ListContainersRequest()).containers}
        self.d.kill()
        self.d.start()
        rt = self.d.runtime
        self.assertEqual({p.id: p.state for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items},
                         before_pods)
        self.assertEqual({(c.id, c.state) for c in rt.ListContainers(api_pb2.ListContainersRequest()).containers},
                         before_ctrs)
        st = rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=ids[0][0])).status
        self.assertEqual(st.exit_code, 7)


if __name__ == "__main__":
    corral_harness.main()
