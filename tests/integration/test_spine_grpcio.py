"""The spine through an independent client: Python grpcio (C++ core) with
stubs compiled from the same api.proto."""
import json
import socket
import threading
import time
import urllib.request

import grpc

from corral_harness import DaemonTestCase, api_pb2, main


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


METRICS_PORT = free_port()


class Spine(DaemonTestCase):
    config = {"cgroup_driver": "cgroupfs", "metrics": {"address": "127.0.0.1:%d" % METRICS_PORT}}
    extra_args = ("--debug-delay", "ImageFsInfo=3000")

    def test_version(self):
        v = self.d.runtime.Version(api_pb2.VersionRequest(version="v1"))
        self.assertEqual(v.runtime_name, "corral")
        self.assertEqual(v.runtime_api_version, "v1")
        self.assertTrue(v.runtime_version.startswith("0.1.0"))

    def test_status_verbose(self):
        s = self.d.runtime.Status(api_pb2.StatusRequest(verbose=True))
        conds = {c.type: c for c in s.status.conditions}
        self.assertTrue(conds["RuntimeReady"].status)
        self.assertFalse(conds["NetworkReady"].status)
        self.assertEqual(conds["NetworkReady"].reason, "NoCNIConfig")
        host = json.loads(s.info["host"])
        self.assertIn(host["cgroupMode"], ("v1-legacy", "v1-hybrid", "v2"))
        cfg = json.loads(s.info["config"])
        self.assertEqual(cfg["root"], self.d.root)
        self.assertIn("", [h.name for h in s.runtime_handlers])

    def test_runtime_config(self):
        r = self.d.runtime.RuntimeConfig(api_pb2.RuntimeConfigRequest())
        self.assertEqual(r.linux.cgroup_driver, api_pb2.CGROUPFS)

    def test_unimplemented_names_method(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.d.runtime.CheckpointContainer(api_pb2.CheckpointContainerRequest(container_id="x"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("CheckpointContainer", cm.exception.details())

    def test_malformed_bytes(self):
        raw = self.d.channel.unary_unary("/runtime.v1.RuntimeService/Version",
                                         request_serializer=None, response_deserializer=None)
        with self.assertRaises(grpc.RpcError) as cm:
            raw(b"\xff\xff\xff\xff\x0f\x12\x80", timeout=5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        # and the daemon is still up
        self.assertEqual(self.d.runtime.Version(api_pb2.VersionRequest()).runtime_name, "corral")

    def test_concurrent_with_slow(self):
        """A slow ImageFsInfo (3 s debug delay) must not hold up 50 concurrent Version calls."""
        slow_done = threading.Event()
        slow_err = []

        def slow():
            try:
                self.d.image.ImageFsInfo(api_pb2.ImageFsInfoRequest(), timeout=20)
            except grpc.RpcError as e:  # unimplemented or not: it must only be slow
                slow_err.append(e.code())
            slow_done.set()

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.2)
        results = []

        def fast():
            for _ in range(4):
                self.d.runtime.Version(api_pb2.VersionRequest(), timeout=20)
            results.append(not slow_done.is_set())

        threads = [threading.Thread(target=fast) for _ in range(50)]
        for x in threads:
            x.start()
        for x in threads:
            x.join()
        t.join()
        self.assertEqual(len(results), 50)
        self.assertTrue(all(results), "some Version calls finished only after the slow call")
        self.assertNotIn(grpc.StatusCode.DEADLINE_EXCEEDED, slow_err)

    def test_metrics(self):
        for _ in range(3):
            self.d.runtime.Version(api_pb2.VersionRequest())
        with self.assertRaises(grpc.RpcError):
            self.d.runtime.CheckpointContainer(api_pb2.CheckpointContainerRequest(container_id="x"))
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT, timeout=5).read().decode()
        line = [l for l in body.splitlines() if l.startswith('corral_grpc_requests_total{method="Version",code="OK"}')]
        self.assertEqual(len(line), 1, body[:2000])
        self.assertGreaterEqual(int(line[0].split()[-1]), 3)
        self.assertIn('corral_grpc_requests_total{method="CheckpointContainer",code="UNIMPLEMENTED"}', body)
        self.assertIn('corral_grpc_request_duration_seconds_bucket{method="Version",le="+Inf"}', body)
        self.assertRegex(body, r"process_resident_memory_bytes [1-9][0-9]+")
        self.assertIn('corral_pods{state="ready"}', body)
        with self.assertRaises(urllib.error.HTTPError) as cm:
            urllib.request.urlopen("http://127.0.0.1:%d/nope" % METRICS_PORT, timeout=5)
        self.assertEqual(cm.exception.code, 404)

    def test_events_stream_deadline(self):
        stream = self.d.runtime.GetContainerEvents(api_pb2.GetEventsRequest(), timeout=1)
        with self.assertRaises(grpc.RpcError) as cm:
            for _ in stream:
                pass
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)


if __name__ == "__main__":
    main()
