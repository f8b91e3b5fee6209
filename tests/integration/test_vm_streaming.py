"""Streaming into VM pods: port-forward and exec (no tty) relayed by the VM
shim and the guest agent (the pod's ports and processes live in the guest).
One VM boot for every test.
Skips (77) with the reason when QEMU or the guest image is not available,
as test_vm_pods.py. Run as root."""
import os
import socket
import subprocess
import time
import unittest
import urllib.request

import grpc

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp
import test_vm_pods as vmp

RUNNING = api_pb2.CONTAINER_RUNNING
BIN = os.environ.get("CORRAL_BIN_DIR", "")
CORRALCTL = os.environ.get("CORRALCTL", os.path.join(BIN, "corralctl"))
STREAMC = os.path.join(BIN, "bench_streaming")


def setUpModule():
    vmp.setUpModule()


def tearDownModule():
    vmp.tearDownModule()


class VMStreaming(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if vmp._skip_reason:
            raise unittest.SkipTest(vmp._skip_reason)
        kernel, initrd, _ = vmp._guest
        cls.d = Daemon({"cgroup_driver": "cgroupfs",
                        "runtimes": {"vm": {"type": "vm", "vmm": "qemu", "kernel": kernel, "initrd": initrd,
                                            "cpus": 1, "memory_mib": 256, "agent_timeout_seconds": 60}}})
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.rt = cls.d.runtime
        cls.image = vmp._images.busybox
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=cls.image)), timeout=120)
        cls.logdir = os.path.join(cls.d.dir, "logs")
        cls.pcfg = cp.pod_config("vmstream", cls.logdir)
        cls.pod = cls.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cls.pcfg, runtime_handler="vm"),
                                       timeout=120).pod_sandbox_id
        # httpd on the guest's port 8080, serving a small and a 1 MiB file
        cls.httpd = cls.start_ctr("httpd", [
            "sh", "-c", "mkdir -p /tmp/www && echo hello-from-vm > /tmp/www/index.html && "
            "dd if=/dev/urandom of=/tmp/www/big bs=1024 count=1024 2>/dev/null && "
            "md5sum /tmp/www/big && exec httpd -f -p 8080 -h /tmp/www"])

    @classmethod
    def start_ctr(cls, name, cmd):
        cfg = cp.ctr_config(name, cls.image, cmd)
        cid = cls.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=cls.pod, config=cfg,
                                                                    sandbox_config=cls.pcfg),
                                     timeout=60).container_id
        cls.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        cp.wait_state(cls.rt, cid, RUNNING, timeout=30)
        return cid

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n%s" % cls.d.read_log()[-20000:])
        try:
            if cls.d.channel:
                for p in cls.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
                    try:
                        cls.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                        cls.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
                    except grpc.RpcError:
                        pass
        finally:
            cls.d.stop()
            cp.unmount_under(cls.d.dir)
            cls.d.cleanup()
            cp.delete_bridge(cls.bridge)

    def run(self, result=None):
        r = super().run(result)
        if result and (result.failures or result.errors):
            type(self)._failed = True
        return r

    def big_md5(self):
        log = os.path.join(self.logdir, "httpd.log")
        deadline = time.time() + 30
        while time.time() < deadline:
            if os.path.exists(log):
                for _, _, _, t in cp.read_log(log):
                    if t.endswith("/tmp/www/big"):
                        return t.split()[0]
            time.sleep(0.05)
        self.fail("httpd never came up")

    def forward(self, *extra):
        """corralctl port-forward <pod> 0:8080; yields the local port."""
        p = subprocess.Popen([CORRALCTL, "--endpoint", self.d.endpoint, "port-forward"] + list(extra) +
                             [self.pod, "0:8080"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        line = p.stdout.readline().decode()
        if not line.startswith("Forwarding from 127.0.0.1:"):
            p.kill()
            self.fail("corralctl port-forward said %r, %r" % (line, p.stderr.read().decode()))
        return p, int(line.split(":")[1].split()[0])

    @staticmethod
    def finish(p):
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(10)
        for f in (p.stdin, p.stdout, p.stderr):
            f.close()

    def get(self, port, path="/"):
        deadline = time.time() + 20
        while True:
            try:
                return urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=20).read()
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.2)  # httpd may still be starting in the guest

    def check_forward(self, *extra):
        import hashlib
        want = self.big_md5()
        p, port = self.forward(*extra)
        try:
            for _ in range(3):  # several connections over one session
                self.assertEqual(self.get(port), b"hello-from-vm\n")
            big = self.get(port, "/big")
            self.assertEqual(len(big), 1 << 20)
            self.assertEqual(hashlib.md5(big).hexdigest(), want)
        finally:
            self.finish(p)

    def test_port_forward_spdy(self):
        self.check_forward()

    def test_port_forward_websocket(self):
        self.check_forward("--transport=websocket")

    def test_port_forward_half_close(self):
        """The client's half-close reaches the guest (nc sees EOF, answers, closes)."""
        cid = self.start_ctr("echo-srv", ["sh", "-c", "exec nc -l -p 9090 -e sh -c 'cat; echo done'"])
        p = subprocess.Popen([CORRALCTL, "--endpoint", self.d.endpoint, "port-forward", self.pod, "0:9090"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE)
        try:
            line = p.stdout.readline().decode()
            self.assertTrue(line.startswith("Forwarding from 127.0.0.1:"), (line, p.stderr))
            port = int(line.split(":")[1].split()[0])
            time.sleep(0.5)
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.sendall(b"ping over the relay\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
            s.close()
            self.assertEqual(got, b"ping over the relay\ndone\n")
        finally:
            self.finish(p)
            self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    def test_port_forward_closed_port(self):
        """Nothing listens: the connection ends, corrald and the VM shim live on."""
        p = subprocess.Popen([CORRALCTL, "--endpoint", self.d.endpoint, "port-forward", self.pod, "0:9999"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE)
        try:
            line = p.stdout.readline().decode()
            port = int(line.split(":")[1].split()[0])
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.settimeout(20)
            self.assertEqual(s.recv(100), b"")
            s.close()
        finally:
            self.finish(p)
        self.assertIsNone(self.d.proc.poll(), "corrald died")
        p, port = self.forward()
        try:
            self.assertEqual(self.get(port), b"hello-from-vm\n")
        finally:
            self.finish(p)

    # ---- exec (no tty) ----

    def streamc(self, *args, input=None, timeout=120):
        return subprocess.run([STREAMC, "-r", self.d.endpoint] + list(args), input=input, capture_output=True,
                              timeout=timeout)

    def test_exec_spdy_streams_and_exit_code(self):
        r = self.streamc("exec", self.httpd, "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_exec_runs_in_the_guest(self):
        """The container's view: its rootfs (busybox), the guest's kernel."""
        r = self.streamc("exec", self.httpd, "sh", "-c", "cat /tmp/www/index.html; uname -r")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.decode().splitlines()
        self.assertEqual(lines[0], "hello-from-vm")
        if vmp._guest[2]:
            self.assertEqual(lines[1], vmp._guest[2])

    def test_exec_cat_stdin_spdy(self):
        data = b"".join(b"line %d\n" % i for i in range(2000))
        r = self.streamc("exec", "-i", self.httpd, "cat", input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)

    def test_exec_stdin_close_ends_it(self):
        """stdin's EOF reaches the process: cat ends, the exit code follows."""
        r = self.streamc("exec", "-i", self.httpd, "sh", "-c", "cat; echo done >&2; exit 5", input=b"abc")
        self.assertEqual(r.returncode, 5, r.stderr)
        self.assertEqual(r.stdout, b"abc")
        self.assertEqual(r.stderr, b"done\n")

    def test_exec_websocket(self):
        r = self.streamc("exec", "--ws", self.httpd, "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_exec_missing_binary_is_an_error(self):
        r = self.streamc("exec", self.httpd, "/no/such/binary")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn(b"/no/such/binary", r.stderr)
        self.assertIsNone(self.d.proc.poll(), "corrald died")

    def test_exec_client_gone_kills_the_process(self):
        p = subprocess.Popen([STREAMC, "-r", self.d.endpoint, "exec", self.httpd, "sh", "-c",
                              "echo started; exec sleep 600"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertEqual(p.stdout.readline(), b"started\n")
        finally:
            p.kill()
            p.wait(10)
            p.stdout.close()
            p.stderr.close()
        deadline = time.time() + 30
        while True:
            r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=self.httpd, cmd=[
                "sh", "-c", "ps | grep -c '[s]leep 600'"], timeout=30), timeout=60)
            if r.stdout.strip() == b"0":
                break
            self.assertLess(time.time(), deadline, "sleep 600 still runs in the guest")
            time.sleep(0.5)
        self.test_exec_spdy_streams_and_exit_code()

    def test_exec_tty_unimplemented(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.Exec(api_pb2.ExecRequest(container_id=self.httpd, cmd=["sh"], tty=True, stdin=True,
                                             stdout=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNIMPLEMENTED)
        self.assertIn("tty", cm.exception.details())


if __name__ == "__main__":
    main()
