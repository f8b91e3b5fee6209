"""Exec, attach and port-forward end to end: a real corrald, a pod on a
private CNI bridge, busybox containers from the local registry fixture.
Clients: our SPDY and WebSocket clients (corralctl, and bench_streaming, a
one-shot exec client on the same code as corralctl's exec -i/-t), and
Debian's python3-websocket (a client that is not ours). Run as root."""
import json
import os
import select
import socket
import subprocess
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

import grpc

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp

try:
    import websocket  # Debian python3-websocket
except ImportError:  # pragma: no cover
    websocket = None

RUNNING = api_pb2.CONTAINER_RUNNING
BIN = os.environ.get("CORRAL_BIN_DIR", "")
STREAMC = os.path.join(BIN, "bench_streaming")
CORRALCTL = os.environ.get("CORRALCTL", os.path.join(BIN, "corralctl"))
TOKEN_TTL = 5

_skip_reason = None
_images = None


def setUpModule():
    global _skip_reason, _images
    _images, _skip_reason = cp.start_images()


def tearDownModule():
    if _images:
        _images.stop()


def ws_connect(url, protocols, query=""):
    ws_url = url.replace("http://", "ws://", 1) + query
    return websocket.create_connection(ws_url, subprotocols=protocols, timeout=20)


def ws_collect(ws, until_close=True):
    """Read binary messages until the server closes: {channel: bytes}."""
    out = {}
    while True:
        try:
            op, data = ws.recv_data(control_frame=False)
        except websocket.WebSocketConnectionClosedException:
            break
        if op == websocket.ABNF.OPCODE_CLOSE:
            break
        if not data:
            continue
        out[data[0]] = out.get(data[0], b"") + data[1:]
    return out


class Streaming(unittest.TestCase):
    config = {"cgroup_driver": "cgroupfs", "streaming": {"token_ttl_seconds": TOKEN_TTL}}

    @classmethod
    def setUpClass(cls):
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        if websocket is None:
            raise unittest.SkipTest("python3-websocket is not installed")
        cls.d = Daemon(cls.config)
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.rt = cls.d.runtime
        try:
            cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=_images.busybox)),
                                  timeout=120)
            cls.image = _images.busybox
            cls.pcfg = cp.pod_config("stream", os.path.join(cls.d.dir, "logs"))
            cls.pod = cls.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cls.pcfg),
                                           timeout=60).pod_sandbox_id
            cls.ctr = cls.start_ctr("sleeper", ["sleep", "3600"])
        except grpc.RpcError as e:
            cls.tearDownClass()
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                raise unittest.SkipTest("containers are not wired yet: %s" % e.details())
            raise

    @classmethod
    def start_ctr(cls, name, cmd, **kw):
        cfg = cp.ctr_config(name, cls.image, cmd, **kw)
        cid = cls.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=cls.pod, config=cfg,
                                                                    sandbox_config=cls.pcfg),
                                     timeout=60).container_id
        cls.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        cp.wait_state(cls.rt, cid, RUNNING)
        return cid

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n%s" % cls.d.read_log()[-30000:])
        try:
            if cls.d.channel:
                for p in cls.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
                    try:
                        cls.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
                        cls.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
                    except grpc.RpcError:
                        pass
        finally:
            cls.d.cleanup()
            cp.delete_bridge(cls.bridge)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # ---- helpers ----

    def exec_url(self, cmd, cid=None, tty=False, stdin=False, stdout=True, stderr=True):
        return self.rt.Exec(api_pb2.ExecRequest(container_id=cid or self.ctr, cmd=cmd, tty=tty, stdin=stdin,
                                                stdout=stdout, stderr=stderr and not tty)).url

    def streamc(self, *args, input=None, timeout=60):
        return subprocess.run([STREAMC, "-r", self.d.endpoint] + list(args), input=input, capture_output=True,
                              timeout=timeout)

    def ctl(self, *args, **kw):
        return subprocess.Popen([CORRALCTL, "--endpoint", self.d.endpoint] + list(args), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)

    @staticmethod
    def finish(p):
        if p.poll() is None:
            p.kill()
        p.wait(10)
        for f in (p.stdin, p.stdout, p.stderr):
            if f:
                f.close()

    def alive(self):
        self.assertIsNone(self.d.proc.poll(), "corrald died")
        self.rt.Version(api_pb2.VersionRequest(), timeout=5)

    # ---- exec ----

    def test_exec_spdy_streams_and_exit_code(self):
        r = self.streamc("exec", self.ctr, "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_exec_websocket_ours(self):
        r = self.streamc("exec", "--ws", self.ctr, "sh", "-c", "echo out; echo err >&2; exit 3")
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(r.stdout, b"out\n")
        self.assertEqual(r.stderr, b"err\n")

    def test_exec_corralctl_interactive(self):
        # corralctl exec -i goes through ctl_stream_exec: SPDY, then WebSocket
        for extra in ([], ["--transport=websocket"]):
            r = subprocess.run([CORRALCTL, "--endpoint", self.d.endpoint, "exec", "-i"] + extra +
                               [self.ctr, "sh", "-c", "cat; echo err >&2; exit 3"], input=b"from stdin\n",
                               capture_output=True, timeout=60)
            self.assertEqual(r.returncode, 3, (extra, r.stderr))
            self.assertEqual(r.stdout, b"from stdin\n", extra)
            self.assertEqual(r.stderr, b"err\n", extra)

    def check_ws_exit3(self, proto):
        url = self.exec_url(["sh", "-c", "echo out; echo err >&2; exit 3"])
        ws = ws_connect(url, [proto])
        self.assertEqual(ws.getsubprotocol(), proto)
        ch = ws_collect(ws)
        ws.close()
        self.assertEqual(ch.get(1), b"out\n")
        self.assertEqual(ch.get(2), b"err\n")
        st = json.loads(ch[3])
        self.assertEqual(st["status"], "Failure")
        self.assertEqual(st["reason"], "NonZeroExitCode")
        self.assertEqual(st["details"]["causes"][0], {"reason": "ExitCode", "message": "3"})

    def test_exec_websocket_v5_python(self):
        self.check_ws_exit3("v5.channel.k8s.io")

    def test_exec_websocket_v4_python(self):
        self.check_ws_exit3("v4.channel.k8s.io")

    def test_exec_success_status(self):
        url = self.exec_url(["true"])
        ch = ws_collect(ws_connect(url, ["v4.channel.k8s.io"]))
        self.assertEqual(json.loads(ch[3])["status"], "Success")

    def test_exec_cat_stdin_spdy(self):
        data = b"".join(b"line %d\n" % i for i in range(2000))
        r = self.streamc("exec", "-i", self.ctr, "cat", input=data)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, data)

    def test_exec_cat_stdin_websocket_v5_python(self):
        url = self.exec_url(["cat"], stdin=True)
        ws = ws_connect(url, ["v5.channel.k8s.io"])
        ws.send_binary(b"\x00hello ")
        ws.send_binary(b"\x00world\n")
        ws.send_binary(b"\xff\x00")  # v5 close signal: stdin ends
        ch = ws_collect(ws)
        self.assertEqual(ch.get(1), b"hello world\n")
        self.assertEqual(json.loads(ch[3])["status"], "Success")

    def test_exec_tty_resize(self):
        url = self.exec_url(["sh", "-c", "read x; stty size"], tty=True, stdin=True)
        ws = ws_connect(url, ["v5.channel.k8s.io"])
        ws.send_binary(b"\x04" + json.dumps({"Width": 123, "Height": 45}).encode())
        ws.send_binary(b"\x00go\n")
        ch = ws_collect(ws)
        self.assertIn(b"45 123", ch.get(1, b""))
        self.assertNotIn(2, ch)  # a terminal has no separate stderr
        self.assertEqual(json.loads(ch[3])["status"], "Success")

    def test_exec_tty_spdy_is_a_terminal(self):
        r = self.streamc("exec", "-t", self.ctr, "sh", "-c", "test -t 1 && echo tty; exit 4")
        self.assertEqual(r.returncode, 4, r.stderr)
        self.assertEqual(r.stdout.replace(b"\r\n", b"\n"), b"tty\n")

    def test_exec_missing_binary_is_an_error(self):
        url = self.exec_url(["/no/such/binary"])
        ch = ws_collect(ws_connect(url, ["v4.channel.k8s.io"]))
        st = json.loads(ch[3])
        self.assertEqual(st["status"], "Failure")
        self.assertEqual(st["reason"], "InternalError")
        self.assertIn("/no/such/binary", st["message"])

    def test_exec_rpc_errors(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.Exec(api_pb2.ExecRequest(container_id=self.ctr, cmd=[], stdout=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.Exec(api_pb2.ExecRequest(container_id=self.ctr, cmd=["true"], tty=True, stdout=True,
                                             stderr=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.Exec(api_pb2.ExecRequest(container_id="nosuchcontainer", cmd=["true"], stdout=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        # a container that is not running
        cfg = cp.ctr_config("done", self.image, ["true"])
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                                     sandbox_config=self.pcfg)).container_id
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.Exec(api_pb2.ExecRequest(container_id=cid, cmd=["true"], stdout=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid))

    def test_exec_client_gone_kills_the_process(self):
        url = self.exec_url(["sh", "-c", "echo $$; exec sleep 600"])
        ws = ws_connect(url, ["v4.channel.k8s.io"])
        op, data = ws.recv_data()
        while data[:1] != b"\x01" or len(data) < 2:
            op, data = ws.recv_data()
        ws.close()
        # the helper and the sleep go away
        deadline = time.time() + 10
        while time.time() < deadline:
            r = self.streamc("exec", self.ctr, "sh", "-c", "ps | grep -c '[s]leep 600'")
            if r.stdout.strip() == b"0":
                break
            time.sleep(0.2)
        self.assertEqual(r.stdout.strip(), b"0", r)

    # ---- tokens, bad input ----

    def test_reused_token_404(self):
        url = self.exec_url(["true"])
        ws_collect(ws_connect(url, ["v4.channel.k8s.io"]))
        with self.assertRaises(websocket.WebSocketBadStatusException) as cm:
            ws_connect(url, ["v4.channel.k8s.io"])
        self.assertEqual(cm.exception.status_code, 404)
        r = urllib.request.Request(url, method="POST")
        with self.assertRaises(urllib.error.HTTPError) as cm2:
            urllib.request.urlopen(r, timeout=10)
        self.assertEqual(cm2.exception.code, 404)

    def test_expired_token_404(self):
        url = self.exec_url(["true"])
        time.sleep(TOKEN_TTL + 1.5)
        with self.assertRaises(websocket.WebSocketBadStatusException) as cm:
            ws_connect(url, ["v4.channel.k8s.io"])
        self.assertEqual(cm.exception.status_code, 404)

    def raw_upgrade(self, url, spdy):
        u = urllib.parse.urlparse(url)
        s = socket.create_connection((u.hostname, u.port), timeout=10)
        if spdy:
            req = ("POST %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                   "X-Stream-Protocol-Version: v4.channel.k8s.io\r\nContent-Length: 0\r\n\r\n" % (u.path, u.netloc))
        else:
            req = ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                   "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n\r\n" % (u.path, u.netloc))
        s.sendall(req.encode())
        head = b""
        while b"\r\n\r\n" not in head:
            b = s.recv(4096)
            self.assertTrue(b, "closed during the upgrade")
            head += b
        self.assertIn(b" 101 ", head.split(b"\r\n")[0])
        return s

    def assert_closed(self, s, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            r, _, _ = select.select([s], [], [], deadline - time.time())
            if not r:
                break
            try:
                if not s.recv(65536):
                    return
            except ConnectionResetError:
                return
        self.fail("the server did not close the connection")

    def test_malformed_websocket_frame(self):
        url = self.exec_url(["sleep", "600"], stdin=True)
        s = self.raw_upgrade(url, spdy=False)
        s.sendall(b"\xf2\x05hello")  # reserved bits set, unmasked
        self.assert_closed(s)
        s.close()
        self.alive()
        self.test_exec_spdy_streams_and_exit_code()

    def test_malformed_spdy_frame(self):
        url = self.exec_url(["sleep", "600"], stdin=True)
        s = self.raw_upgrade(url, spdy=True)
        # a control frame of SPDY version 2 (we speak 3), then garbage
        s.sendall(b"\x80\x02\x00\x01\x00\x00\x00\x0a" + b"\xff" * 64)
        self.assert_closed(s)
        s.close()
        self.alive()
        self.test_exec_spdy_streams_and_exit_code()

    # ---- attach ----

    def test_attach_sees_output(self):
        cid = self.start_ctr("ticker", ["sh", "-c", "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"])
        p = self.ctl("attach", cid)
        try:
            line = p.stdout.readline()
            self.assertTrue(line.startswith(b"tick "), line)
        finally:
            self.finish(p)
        # two attaches at once, over both protocols
        url1 = self.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdout=True, stderr=True)).url
        url2 = self.rt.Attach(api_pb2.AttachRequest(container_id=cid, stdout=True, stderr=True)).url
        w1 = ws_connect(url1, ["v5.channel.k8s.io"])
        w2 = ws_connect(url2, ["v4.channel.k8s.io"])
        for w in (w1, w2):
            got = b""
            while b"tick" not in got:
                op, data = w.recv_data()
                if data[:1] == b"\x01":
                    got += data[1:]
            w.close()
        self.alive()

    def test_attach_stdin_spdy(self):
        cid = self.start_ctr("catter", ["cat"], stdin=True)
        p = self.ctl("attach", "-i", cid)
        try:
            p.stdin.write(b"ping over attach\n")
            p.stdin.flush()
            deadline = time.time() + 10
            got = b""
            while b"ping over attach" not in got and time.time() < deadline:
                r, _, _ = select.select([p.stdout], [], [], 1)
                if r:
                    got += os.read(p.stdout.fileno(), 4096)
            self.assertIn(b"ping over attach", got)
        finally:
            self.finish(p)

    def test_attach_rpc_errors(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.Attach(api_pb2.AttachRequest(container_id="nosuchcontainer", stdout=True))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    # ---- port-forward ----

    @classmethod
    def httpd(cls):
        if not hasattr(cls, "_httpd"):
            cls._httpd = cls.start_ctr("httpd", ["sh", "-c", "mkdir -p /tmp/www && echo hello-from-pod > "
                                                 "/tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"])
            time.sleep(0.5)
        return cls._httpd

    def forward_with_ctl(self, *extra):
        self.httpd()
        p = self.ctl("port-forward", *extra, self.pod, "0:8080")
        try:
            line = p.stdout.readline().decode()
            if not line.startswith("Forwarding from 127.0.0.1:"):
                p.kill()
                self.fail("corralctl port-forward said %r, %r" % (line, p.stderr.read().decode()))
            port = int(line.split(":")[1].split()[0])
            for _ in range(3):  # several connections over one session
                body = urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=10).read()
                self.assertEqual(body, b"hello-from-pod\n")
        finally:
            p.terminate()
            p.wait(10)
            self.finish(p)

    def test_port_forward_spdy(self):
        self.forward_with_ctl()

    def test_port_forward_websocket_ours(self):
        self.forward_with_ctl("--transport=websocket")

    def test_port_forward_websocket_python(self):
        self.httpd()
        url = self.rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id=self.pod, port=[8080])).url
        ws = ws_connect(url, ["v4.channel.k8s.io"], query="?port=8080")
        ws.send_binary(b"\x00GET / HTTP/1.0\r\n\r\n")
        ch = ws_collect(ws)
        data = ch.get(0, b"")[2:]  # each channel starts with the port, little endian
        self.assertEqual(ch.get(0, b"")[:2], (8080).to_bytes(2, "little"))
        self.assertIn(b"200 OK", data)
        self.assertIn(b"hello-from-pod", data)

    def test_port_forward_closed_port(self):
        url = self.rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id=self.pod, port=[1])).url
        ws = ws_connect(url, ["v4.channel.k8s.io"], query="?port=1")
        ch = ws_collect(ws)
        self.assertIn(b"connection refused", ch.get(1, b"").lower())
        self.alive()

    def test_port_forward_rpc_errors(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id="nosuchpod", port=[80]))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as cm:
            self.rt.PortForward(api_pb2.PortForwardRequest(pod_sandbox_id=self.pod, port=[70000]))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)


if __name__ == "__main__":
    main()
