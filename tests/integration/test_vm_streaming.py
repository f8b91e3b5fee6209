"""Streaming into VM pods: port-forward, exec (with and without a tty) and
attach relayed by the VM shim and the guest agent (the pod's ports and
processes live in the guest), with flow control: slow readers on either end
pause the other instead of losing data.
One VM boot for every test.
Skips (77) with the reason when QEMU or the guest image is not available,
as test_vm_pods.py. Run as root."""
import hashlib
import json
import os
import select
import socket
import subprocess
import threading
import time
import unittest
import urllib.request

import grpc

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp
import test_vm_pods as vmp
from test_streaming import ws_collect, ws_connect, websocket

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
        cls.d = Daemon({"cgroup_driver": "cgroupfs", "runtimes": {"vm": vmp.vm_handler(kernel, initrd)}})
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
        cp.teardown_daemon(cls, timeout=60)

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

    # ---- exec with a tty ----

    def exec_url(self, cmd, cid=None, tty=False, stdin=False, stdout=True, stderr=True):
        return self.rt.Exec(api_pb2.ExecRequest(container_id=cid or self.httpd, cmd=cmd, tty=tty, stdin=stdin,
                                                stdout=stdout, stderr=stderr and not tty)).url

    def test_exec_tty_spdy_is_a_terminal(self):
        t0 = time.time()
        r = self.streamc("exec", "-t", self.httpd, "sh", "-c", "tty; test -t 1 && echo is-a-tty; exit 4")
        print("tty exec round trip (SPDY, bench_streaming process included): %.0f ms" % ((time.time() - t0) * 1000))
        self.assertEqual(r.returncode, 4, r.stderr)
        out = r.stdout.replace(b"\r\n", b"\n").decode()
        self.assertRegex(out, r"^/dev/pts/\d+\nis-a-tty\n$")

    def test_exec_tty_resize_websocket(self):
        if websocket is None:
            self.skipTest("python3-websocket is not installed")
        url = self.exec_url(["sh", "-c", "read x; stty size; exit 6"], tty=True, stdin=True)
        ws = ws_connect(url, ["v5.channel.k8s.io"])
        ws.send_binary(b"\x04" + json.dumps({"Width": 123, "Height": 45}).encode())
        ws.send_binary(b"\x00go\n")
        ch = ws_collect(ws)
        self.assertIn(b"45 123", ch.get(1, b""))
        self.assertNotIn(2, ch)  # a terminal has no separate stderr
        st = json.loads(ch[3])
        self.assertEqual(st["status"], "Failure")
        self.assertEqual(st["details"]["causes"][0], {"reason": "ExitCode", "message": "6"})

    def test_exec_tty_resize_spdy_and_ctrl_d(self):
        """stdin's end is ^D on a terminal: cat ends, the exit code follows."""
        r = self.streamc("exec", "-t", "-i", self.httpd, "sh", "-c", "cat; stty size; exit 2", input=b"typed\n")
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(b"typed", r.stdout)

    # ---- attach ----

    def ctl(self, *args):
        return subprocess.Popen([CORRALCTL, "--endpoint", self.d.endpoint] + list(args), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    @staticmethod
    def read_until(f, want, timeout=30):
        got = b""
        deadline = time.time() + timeout
        while want not in got and time.time() < deadline:
            r, _, _ = select.select([f], [], [], 1)
            if r:
                b = os.read(f.fileno(), 65536)
                if not b:
                    break
                got += b
        return got

    def start_ctr_kw(self, name, cmd, **kw):
        cfg = cp.ctr_config(name, self.image, cmd, **kw)
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                                     sandbox_config=self.pcfg),
                                      timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
        cp.wait_state(self.rt, cid, RUNNING, timeout=30)
        return cid

    def log_text(self, name):
        return "\n".join(t for _, _, _, t in cp.read_log(os.path.join(self.logdir, name + ".log")))

    def test_attach_stdin_roundtrip_and_detach(self):
        cid = self.start_ctr_kw("vcat", ["cat"], stdin=True)
        p = self.ctl("attach", "-i", cid)
        try:
            p.stdin.write(b"ping over vm attach\n")
            p.stdin.flush()
            got = self.read_until(p.stdout, b"ping over vm attach")
            self.assertIn(b"ping over vm attach", got)
        finally:
            self.finish(p)
        # detached: the container still runs (no stdin_once), and a second attach works
        time.sleep(1)
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        self.assertEqual(st.state, RUNNING)
        p = self.ctl("attach", "-i", cid)
        try:
            p.stdin.write(b"second\n")
            p.stdin.flush()
            self.assertIn(b"second", self.read_until(p.stdout, b"second"))
        finally:
            self.finish(p)
        self.assertIn("ping over vm attach", self.log_text("vcat"))
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    def test_attach_sees_output_two_clients(self):
        if websocket is None:
            self.skipTest("python3-websocket is not installed")
        cid = self.start_ctr_kw("vtick", ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"])
        urls = [self.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdout=True, stderr=True)).url
                for _ in range(2)]
        ws = [ws_connect(urls[0], ["v5.channel.k8s.io"]), ws_connect(urls[1], ["v4.channel.k8s.io"])]
        for w in ws:
            got = b""
            while b"tick" not in got:
                op, data = w.recv_data()
                if data[:1] == b"\x01":
                    got += data[1:]
            w.close()
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    def test_attach_stdin_once(self):
        """stdin_once: the first attach's detach closes stdin; cat ends, sh goes on."""
        cid = self.start_ctr_kw("vonce", ["sh", "-c", "cat; echo stdin-closed; exec sleep 600"], stdin=True,
                                stdin_once=True)
        p = self.ctl("attach", "-i", cid)
        try:
            p.stdin.write(b"only once\n")
            p.stdin.flush()
            self.assertIn(b"only once", self.read_until(p.stdout, b"only once"))
        finally:
            self.finish(p)
        deadline = time.time() + 30
        while "stdin-closed" not in self.log_text("vonce"):
            self.assertLess(time.time(), deadline, "stdin was not closed after the first attach left")
            time.sleep(0.2)
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        self.assertEqual(st.state, RUNNING)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    def test_attach_tty_container_resize(self):
        if websocket is None:
            self.skipTest("python3-websocket is not installed")
        cid = self.start_ctr_kw("vtty", ["sh", "-c", "test -t 0 && echo stdin-is-a-tty; "
                                         "while read l; do stty size; done"], stdin=True, tty=True)
        url = self.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdin=True, stdout=True, tty=True)).url
        w = ws_connect(url, ["v5.channel.k8s.io"])
        w.send_binary(b"\x04" + json.dumps({"Width": 100, "Height": 33}).encode())
        time.sleep(0.5)
        w.send_binary(b"\x00x\n")
        got = b""
        deadline = time.time() + 30
        while b"33 100" not in got and time.time() < deadline:
            op, data = w.recv_data()
            if data[:1] == b"\x01":
                got += data[1:]
        w.close()
        self.assertIn(b"33 100", got)
        self.assertIn("stdin-is-a-tty", self.log_text("vtty"))
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    def test_slow_attach_client_does_not_block_the_log(self):
        if websocket is None:
            self.skipTest("python3-websocket is not installed")
        cid = self.start_ctr_kw("vflood", ["sh", "-c", "sleep 2; seq 1 200000; echo flood-done; exec sleep 600"])
        url = self.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdout=True, stderr=True)).url
        w = ws_connect(url, ["v5.channel.k8s.io"])  # and never read from it
        try:
            deadline = time.time() + 90
            while "flood-done" not in self.log_text("vflood"):
                self.assertLess(time.time(), deadline, "the log stalled behind a client that does not read")
                time.sleep(0.5)
            lines = self.log_text("vflood").splitlines()
            self.assertTrue("199999" in lines and "200000" in lines, "lines missing from the log")
        finally:
            w.close()
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    # ---- flow control ----

    def test_port_forward_64mib_both_ways_slow_readers(self):
        """64 MiB into a guest reader that starts late, and 64 MiB out of the
        guest to a client that pauses: all of it arrives (md5), nothing reset."""
        size = 64 << 20
        cid = self.start_ctr_kw("vbig", ["sh", "-c",
                                         "mkdir -p /tmp/w64 && dd if=/dev/urandom of=/tmp/w64/big bs=1048576 "
                                         "count=64 2>/dev/null && md5sum /tmp/w64/big && "
                                         "(nc -l -p 9191 -e sh -c 'sleep 5; md5sum' &) && "
                                         "exec httpd -f -p 8081 -h /tmp/w64"])
        want = None
        deadline = time.time() + 180
        while want is None:
            for line in self.log_text("vbig").splitlines():
                if line.endswith("/tmp/w64/big"):
                    want = line.split()[0]
            self.assertLess(time.time(), deadline, "the 64 MiB file was not made")
            time.sleep(0.5)
        time.sleep(1)
        p = subprocess.Popen([CORRALCTL, "--endpoint", self.d.endpoint, "port-forward", self.pod, "0:9191",
                              "0:8081"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.PIPE)
        try:
            ports = []
            for _ in range(2):
                line = p.stdout.readline().decode()
                self.assertTrue(line.startswith("Forwarding from 127.0.0.1:"), line)
                ports.append(int(line.split(":")[1].split()[0]))
            # upload: the guest reads only after 5 s
            data = os.urandom(size)
            s = socket.create_connection(("127.0.0.1", ports[0]), timeout=120)
            t0 = time.time()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                got += b
            s.close()
            up = time.time() - t0 - 5  # the guest reads only after 5 s
            self.assertEqual(got.split()[0].decode() if got else "", hashlib.md5(data).hexdigest())
            # download: we read 1 MiB, pause 5 s, then the rest
            s = socket.create_connection(("127.0.0.1", ports[1]), timeout=120)
            t0 = time.time()
            s.sendall(b"GET /big HTTP/1.0\r\n\r\n")
            buf = b""
            while b"\r\n\r\n" not in buf:
                b = s.recv(65536)
                self.assertTrue(b, "no HTTP answer")
                buf += b
            head, body = buf.split(b"\r\n\r\n", 1)
            h = hashlib.md5(body)
            n = len(body)
            paused = False
            while True:
                if n >= (1 << 20) and not paused:
                    time.sleep(5)
                    paused = True
                b = s.recv(1 << 20)
                if not b:
                    break
                h.update(b)
                n += len(b)
            s.close()
            down = time.time() - t0 - 5
            self.assertEqual(n, size)
            self.assertEqual(h.hexdigest(), want)
            print("64 MiB port-forward through the VM relay: up %.1f MiB/s, "
                  "down %.1f MiB/s (the pauses excluded)" % (64 / up, 64 / down))
        finally:
            self.finish(p)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)

    def test_exec_cat_large_stream_paused_reader(self):
        """exec -i cat of 32 MiB; our reader pauses 5 s: the process is
        paused, not killed, and every byte comes back."""
        size = 32 << 20
        data = os.urandom(size)
        p = subprocess.Popen([STREAMC, "-r", self.d.endpoint, "exec", "-i", self.httpd, "cat"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        def feed():
            try:
                p.stdin.write(data)
                p.stdin.close()
            except BrokenPipeError:
                pass
        t = threading.Thread(target=feed)
        t.start()
        h = hashlib.md5()
        n = 0
        first = p.stdout.read(1 << 20)
        h.update(first)
        n += len(first)
        time.sleep(5)
        t0 = time.time()
        while True:
            b = p.stdout.read1(1 << 20)
            if not b:
                break
            h.update(b)
            n += len(b)
        t.join(60)
        p.wait(60)
        err = p.stderr.read()
        p.stdout.close()
        p.stderr.close()
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(n, size)
        self.assertEqual(h.hexdigest(), hashlib.md5(data).hexdigest())
        rate = (size - len(first)) / (1 << 20) / (time.time() - t0)
        print("exec cat 32 MiB through the VM relay: %.1f MiB/s after the pause" % rate)
    # ---- UpdateContainerResources ----

    def test_update_resources_in_the_guest(self):
        """The agent applies the new limits to the container's cgroup in the guest."""
        cid = self.start_ctr_kw("vupd", ["sleep", "3600"])
        read = ["sh", "-c", "cg=$(cut -d: -f3 /proc/self/cgroup | head -n1); "
                "cat /sys/fs/cgroup$cg/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory.max"]
        before = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=read, timeout=30), timeout=60)
        self.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(
            container_id=cid, linux=api_pb2.LinuxContainerResources(memory_limit_in_bytes=96 << 20)), timeout=60)
        after = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=read, timeout=30), timeout=60)
        self.assertEqual(after.stdout.strip(), str(96 << 20).encode(), (before, after))
        self.assertNotEqual(before.stdout.strip(), after.stdout.strip())
        st = self.rt.ContainerStatus(api_pb2.ContainerStatusRequest(container_id=cid)).status
        self.assertEqual(st.resources.linux.memory_limit_in_bytes, 96 << 20)
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=1), timeout=30)


if __name__ == "__main__":
    main()
