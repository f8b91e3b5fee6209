"""cri-api v0.37 wire changes, end to end: KeyValue.value is bytes (an env
value need not be UTF-8; a NUL is refused), and the Signal enum's values are
named SIGNAL_... (a container's stop_signal is honoured by StopContainer).
Run as root."""
import os
import time

import grpc

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc

RUNNING = api_pb2.CONTAINER_RUNNING
EXITED = api_pb2.CONTAINER_EXITED


def setUpModule():
    tc.setUpModule()


def tearDownModule():
    tc.tearDownModule()


def hex_bytes(text):
    """b"\\xff\\xfe" from od -An -tx1's "ff fe" (over any number of lines)."""
    return bytes(int(x, 16) for x in text.split())


class ProtoCompat(tc.Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pod, cls.pcfg = cls.new_pod(cls, "compat")

    def test_env_value_bytes_reach_the_container(self):
        raw = b"\xff\xfe-caf\xc3\xa9"  # not UTF-8, then UTF-8
        envs = [api_pb2.KeyValue(key="X", value=raw), api_pb2.KeyValue(key="Y", value=b"plain")]
        cid, _ = self.run_ctr(self.pod, self.pcfg, "envbytes",
                              ["sh", "-c", "echo \"$X\" | od -An -tx1; echo Y=$Y; trap 'exit 0' TERM; sleep 600 & wait"],
                              wait_exit=False, envs=envs)
        deadline = time.time() + 10
        text = ""
        while time.time() < deadline and "Y=" not in text:
            time.sleep(0.1)
            text = self.log_text(self.status(cid).status)
        lines = text.splitlines()
        self.assertIn("Y=plain", lines)
        self.assertEqual(hex_bytes(" ".join(lines[:lines.index("Y=plain")])), raw + b"\n")
        # exec sessions get the container's environment, bytes and all
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo \"$X\""], timeout=10))
        self.assertEqual((r.stdout, r.exit_code), (raw + b"\n", 0), r.stderr)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=5))

    def test_env_value_with_nul_is_refused(self):
        cfg = cp.ctr_config("envnul", self.image, ["true"],
                            envs=[api_pb2.KeyValue(key="NULLY", value=b"a\x00b")])
        e = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.rt.CreateContainer,
                            api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                           sandbox_config=self.pcfg), timeout=60)
        self.assertIn("NULLY", e.details())
        # nothing half-made is left behind
        names = [c.metadata.name for c in self.rt.ListContainers(api_pb2.ListContainersRequest()).containers]
        self.assertNotIn("envnul", names)

    def test_stop_signal_by_new_enum_name(self):
        self.assertEqual(api_pb2.Signal.Value("SIGNAL_SIGUSR1"), 29)
        cid, _ = self.run_ctr(self.pod, self.pcfg, "usr1",
                              ["sh", "-c", "trap 'exit 42' USR1; trap '' TERM; echo ready; sleep 600 & wait"],
                              wait_exit=False, stop_signal=api_pb2.SIGNAL_SIGUSR1)
        cp.wait_state(self.rt, cid, RUNNING)
        self.assertEqual(self.status(cid).status.stop_signal, api_pb2.SIGNAL_SIGUSR1)
        deadline = time.time() + 10
        while time.time() < deadline and "ready" not in self.log_text(self.status(cid).status):
            time.sleep(0.05)
        t0 = time.time()
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=20))
        self.assertLess(time.time() - t0, 10)  # not the SIGKILL at the timeout
        self.assertEqual(self.status(cid).status.exit_code, 42)

    def test_stop_signal_realtime(self):
        # SIGRTMIN+1 is 35 (glibc keeps 32 and 33; moby and kubelet count the same)
        cid, _ = self.run_ctr(self.pod, self.pcfg, "rt1",
                              ["sh", "-c", "trap 'exit 43' 35; trap '' TERM; echo ready; sleep 600 & wait"],
                              wait_exit=False, stop_signal=api_pb2.SIGNAL_SIGRTMINPLUS1)
        deadline = time.time() + 10
        while time.time() < deadline and "ready" not in self.log_text(self.status(cid).status):
            time.sleep(0.05)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=20))
        st = self.status(cid).status
        self.assertEqual(st.exit_code, 43)

    def test_stop_signal_runtime_default_is_term(self):
        cid, _ = self.run_ctr(self.pod, self.pcfg, "deflt",
                              ["sh", "-c", "trap 'exit 15' TERM; echo ready; sleep 600 & wait"],
                              wait_exit=False, stop_signal=api_pb2.SIGNAL_RUNTIME_DEFAULT)
        deadline = time.time() + 10
        while time.time() < deadline and "ready" not in self.log_text(self.status(cid).status):
            time.sleep(0.05)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=20))
        self.assertEqual(self.status(cid).status.exit_code, 15)

    def test_corralctl_env_text_and_signal_name(self):
        ctr = os.path.join(self.d.dir, "compat-ctr.json")
        with open(ctr, "w") as f:
            f.write('{"metadata": {"name": "ctlcompat"}, "image": {"image": "%s"},'
                    ' "command": ["sh", "-c", "trap \'exit 42\' USR1; sleep 600 & wait"],'
                    ' "log_path": "ctlcompat.log", "stop_signal": "SIGNAL_SIGUSR1",'
                    ' "linux": {"security_context": {"namespace_options": {"pid": "CONTAINER"}}},'
                    ' "envs": [{"key": "WHO", "value": "ctl"}, {"key": "UNI", "value": "caf\\u00e9"}]}'
                    % self.image)
        pod = os.path.join(self.d.dir, "compat-pod.json")
        with open(pod, "w") as f:
            f.write('{"metadata": {"name": "compat", "namespace": "default", "uid": "compat-uid"},'
                    ' "log_directory": "%s"}' % self.pcfg.log_directory)
        cid = self.d.ctl("create", self.pod, ctr, pod).stdout.strip()
        self.d.ctl("start", cid)
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "echo $WHO $UNI"],
                                                     timeout=10))
        self.assertEqual(r.stdout, "ctl café\n".encode())
        self.d.ctl("stop", "-t", "20", cid)
        self.assertEqual(self.status(cid).status.exit_code, 42)


if __name__ == "__main__":
    main()
