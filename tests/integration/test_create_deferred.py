"""CreateContainer records the container; its shim and process come with
StartContainer (issue #12: CreateContainer <= 5 ms). A created container must
still behave as one: listed and reported CREATED, no Exec, stoppable,
removable, and startable after a corrald SIGKILL between Create and Start."""
import os
import time

import grpc

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc
from test_containers import Base

setUpModule = tc.setUpModule
tearDownModule = tc.tearDownModule

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED
CREATED = api_pb2.CONTAINER_CREATED


def shims_of(cid):
    return [p for p, argv in cp.shim_pids() if cid in " ".join(argv)]


class Deferred(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pod, cls.pcfg = cls.new_pod(cls, "deferred")

    def test_created_has_no_process_until_started(self):
        cid = self.create(self.pod, self.pcfg, "later", ["sleep", "600"])
        st = self.status(cid).status
        self.assertEqual(st.state, CREATED)
        self.assertTrue(st.log_path.endswith("later.log"), st.log_path)
        self.assertGreater(st.created_at, 0)
        self.assertEqual(shims_of(cid), [])
        lst = self.rt.ListContainers(api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(
            pod_sandbox_id=self.pod, state=api_pb2.ContainerStateValue(state=CREATED))))
        self.assertIn(cid, [c.id for c in lst.containers])
        with self.assertRaises(grpc.RpcError):
            self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["true"], timeout=5))
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        self.assertEqual(self.status(cid).status.state, RUNNING)
        self.assertEqual(len(shims_of(cid)), 1)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["echo", "up"], timeout=5))
        self.assertEqual(r.stdout, b"up\n")
        # A second start is refused, and spawns nothing.
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.rt.StartContainer,
                        api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        self.assertEqual(len(shims_of(cid)), 1)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)
        self.assertEqual(shims_of(cid), [])

    def test_stop_and_remove_created(self):
        cid = self.create(self.pod, self.pcfg, "never", ["sleep", "600"])
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=5), timeout=30)
        st = self.status(cid).status
        self.assertEqual(st.state, EXITED)
        self.assertEqual(st.exit_code, 137)
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.rt.StartContainer,
                        api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        self.assertEqual(shims_of(cid), [])
        cid2 = self.create(self.pod, self.pcfg, "removed", ["sleep", "600"])
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid2), timeout=30)
        self.assertCode(grpc.StatusCode.NOT_FOUND, self.status, cid2)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    def test_update_resources_before_start(self):
        cid = self.create(self.pod, self.pcfg, "upd", ["sleep", "600"])
        self.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=96 << 20)), timeout=30)
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        self.assertEqual(self.status(cid).status.state, RUNNING)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    def test_kill9_between_create_and_start(self):
        a = self.create(self.pod, self.pcfg, "a", ["sleep", "600"])
        b = self.create(self.pod, self.pcfg, "b", ["sleep", "600"])
        self.d.kill()
        time.sleep(0.5)
        os.unlink(self.d.socket)
        self.d.start(timeout=30)
        grpc.channel_ready_future(self.d.channel).result(timeout=30)
        self.rt = type(self).rt = self.d.runtime
        self.assertEqual(self.status(a).status.state, CREATED)
        self.assertEqual(self.status(b).status.state, CREATED)
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=a), timeout=30)
        self.assertEqual(self.status(a).status.state, RUNNING)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=a, cmd=["echo", "alive"], timeout=5))
        self.assertEqual(r.stdout, b"alive\n")
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=b), timeout=30)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=a), timeout=30)
        self.assertEqual(shims_of(a) + shims_of(b), [])


if __name__ == "__main__":
    main()
