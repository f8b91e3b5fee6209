"""The real crictl v1.32.0 against a private corrald, used as a person would:
runp, create, start, ps, pods, inspect(p), exec (with and without a
terminal, over SPDY and WebSocket), attach, port-forward, logs (-f,
--tail), stop, rm, stopp, rmp, stats, info, images, pull, rmi. crictl
streams with client-go's SPDY and WebSocket clients, the code kubelet and
kubectl use. The terminal sessions run in a real pseudo-terminal (the
keys are typed, the size is set with TIOCSWINSZ, crictl sees SIGWINCH).

crictl: $CRICTL, else <build>/cri-tools/crictl, else unpacked there from
shared/cri-tools (beside the source tree) with its unpack.sh; without one
every test skips (77) with the reason. crictl only ever talks to this
test's socket (--config and explicit endpoints).

A second class does the streaming verbs in one VM pod (runtime handler
"vm"); it skips by name when QEMU or the guest image are not available
(found or built as test_vm_pods.py does).

Takes about 30 s here in all (the VM class included, under TCG),
plus the guest image build when it is stale. Run as root."""
import fcntl
import hashlib
import json
import os
import select
import signal
import socket
import struct
import subprocess
import termios
import threading
import time
import unittest

from corral_harness import Daemon, main
import corral_pods as cp

STEP = 20  # seconds any single stream step may take before the test fails
_images = None
_skip_reason = None
CRICTL = None


def find_crictl():
    """(path, None) or (None, why)."""
    env = os.environ.get("CRICTL")
    if env:
        return (env, None) if os.access(env, os.X_OK) else (None, "$CRICTL=%s is not executable" % env)
    bindir = os.environ.get("CORRAL_BIN_DIR")
    if not bindir:
        return None, "CORRAL_BIN_DIR is not set (run through ctest) and $CRICTL is not set"
    dest = os.path.join(os.path.dirname(bindir), "cri-tools")
    path = os.path.join(dest, "crictl")
    if os.access(path, os.X_OK):
        return path, None
    # shared/ sits beside the repository (or beside the worktrees' parent)
    d = os.path.abspath(os.environ.get("CORRAL_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")))
    tried = []
    while True:
        shared = os.path.join(os.path.dirname(d), "shared", "cri-tools")
        tried.append(shared)
        if os.path.exists(os.path.join(shared, "crictl.xz")) and os.path.exists(os.path.join(shared, "unpack.sh")):
            r = subprocess.run(["sh", os.path.join(shared, "unpack.sh"), dest], capture_output=True, text=True)
            if r.returncode == 0 and os.access(path, os.X_OK):
                return path, None
            return None, "unpack.sh failed: %s" % (r.stderr or r.stdout)[-300:]
        if os.path.dirname(d) == d:
            return None, "no crictl: $CRICTL unset, %s missing, no crictl.xz in %s" % (path, ", ".join(tried))
        d = os.path.dirname(d)


def setUpModule():
    global _images, _skip_reason, CRICTL
    CRICTL, why = find_crictl()
    if why:
        _skip_reason = why
        return
    _images, _skip_reason = cp.start_images()


def tearDownModule():
    if _images:
        _images.stop()


# ---------- a pseudo-terminal for crictl -it ----------

class Pty:
    """crictl on a fresh pty as its controlling terminal (so that it gets
    SIGWINCH when the size changes, as in a terminal emulator)."""

    def __init__(self, argv, rows, cols):
        self.master, slave = os.openpty()
        self.resize(rows, cols, fd=slave)
        self.buf = b""
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                                     preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        os.close(slave)

    def resize(self, rows, cols, fd=None):
        fcntl.ioctl(self.master if fd is None else fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def send(self, data):
        os.write(self.master, data)

    def expect(self, pat, timeout=STEP):
        """Read until pat; return what came up to and with it."""
        deadline = time.time() + timeout
        while pat not in self.buf:
            left = deadline - time.time()
            if left <= 0:
                raise AssertionError("%r not seen in %ds; got %r" % (pat, timeout, self.buf[-2000:]))
            if not self._read(left):
                raise AssertionError("terminal closed before %r; got %r" % (pat, self.buf[-2000:]))
        i = self.buf.index(pat) + len(pat)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def _read(self, timeout):
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return True
        try:
            b = os.read(self.master, 65536)
        except OSError:  # EIO: every slave fd is closed
            return False
        self.buf += b
        return bool(b)

    def wait(self, timeout=STEP):
        """Exit code of crictl, with everything it printed read into buf."""
        deadline = time.time() + timeout
        while self.proc.poll() is None and time.time() < deadline:
            self._read(0.1)
        if self.proc.poll() is None:
            raise AssertionError("crictl did not exit within %ds; printed %r" % (timeout, self.buf[-2000:]))
        while self._read(0.05):
            pass
        return self.proc.returncode

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        os.close(self.master)


def echo_both_ways(port, nbytes, timeout=60):
    """Send nbytes of random data to 127.0.0.1:port while reading the echo;
    half-close after sending. Returns (sent, received)."""
    data = os.urandom(nbytes)
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    err = []

    def send():
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=send)
    t.start()
    got = bytearray()
    try:
        while True:
            b = s.recv(1 << 16)
            if not b:
                break
            got += b
    finally:
        t.join(timeout)
        s.close()
    if err:
        raise err[0]
    return data, bytes(got)


# ---------- the classes ----------

class CrictlCase(unittest.TestCase):
    handler = ""
    config = {"cgroup_driver": "cgroupfs"}

    @classmethod
    def setUpClass(cls):
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        cls.d = Daemon(cls.config)
        cls.bridge = cp.cni_conflist(os.path.join(cls.d.dir, "cni"))
        cls.d.start()
        cls.cfgdir = os.path.join(cls.d.dir, "crictl")
        os.makedirs(cls.cfgdir)
        cls.crictl_yaml = os.path.join(cls.cfgdir, "crictl.yaml")
        with open(cls.crictl_yaml, "w") as f:
            f.write("runtime-endpoint: %s\nimage-endpoint: %s\ntimeout: 60\ndebug: false\n"
                    "pull-image-on-create: false\n" % (cls.d.endpoint, cls.d.endpoint))
        cls.image = _images.busybox
        cls.logdir = os.path.join(cls.d.dir, "logs")
        try:
            cls.run_ctl("pull", cls.image, timeout=120)
            cls.pod = cls.runp("crictl-pod")
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n%s" % cls.d.read_log()[-30000:])
        try:
            if cls.d.proc:
                for pid in cls.run_ctl("pods", "-q", check=False).stdout.split():
                    cls.run_ctl("stopp", pid, check=False)
                    cls.run_ctl("rmp", "-f", pid, check=False)
        finally:
            cls.d.stop()
            cp.unmount_under(cls.d.dir)
            cls.d.cleanup()
            cp.delete_bridge(cls.bridge)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # ---- crictl ----

    @classmethod
    def argv(cls, *args):
        return [CRICTL, "--config", cls.crictl_yaml, "--runtime-endpoint", cls.d.endpoint, "--image-endpoint",
                cls.d.endpoint] + list(args)

    @classmethod
    def run_ctl(cls, *args, input=None, timeout=60, check=True):
        r = subprocess.run(cls.argv(*args), input=input, capture_output=True, timeout=timeout)
        r.out, r.err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        if check and r.returncode != 0:
            raise AssertionError("crictl %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.out, r.err))
        return r

    def ctl(self, *args, **kw):
        return self.run_ctl(*args, **kw)

    def ctl_json(self, *args):
        return json.loads(self.ctl(*args).out)

    @classmethod
    def write_json(cls, name, obj):
        path = os.path.join(cls.cfgdir, name + ".json")
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    @classmethod
    def pod_json(cls, name):
        return cls.write_json("pod-" + name, {
            "metadata": {"name": name, "namespace": "default", "uid": "uid-" + name},
            "hostname": name, "log_directory": cls.logdir,
            "linux": {"cgroup_parent": "/corral-test",
                      "security_context": {"namespace_options": {"pid": 1}}}})  # CONTAINER

    @classmethod
    def runp(cls, name):
        args = ["runp"] + (["--runtime", cls.handler] if cls.handler else []) + [cls.pod_json(name)]
        return cls.run_ctl(*args, timeout=180).out.strip()

    @classmethod
    def create(cls, name, cmd, pod=None, start=True, **extra):
        cfg = {"metadata": {"name": name}, "image": {"image": cls.image}, "command": cmd,
               "log_path": name + ".log", "linux": {"security_context": {"namespace_options": {"pid": 1}}}}
        cfg.update(extra)
        pod_name = "crictl-pod" if pod is None else pod[1]
        cid = cls.run_ctl("create", pod[0] if pod else cls.pod, cls.write_json("ctr-" + name, cfg),
                          cls.pod_json(pod_name), timeout=120).out.strip()
        if start:
            cls.run_ctl("start", cid, timeout=60)
        return cid

    def inspect(self, cid):
        return self.ctl_json("inspect", "-o", "json", cid)

    def wait_state(self, cid, state, timeout=STEP):
        deadline = time.time() + timeout
        while True:
            st = self.inspect(cid)["status"]
            if st["state"] == state or time.time() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual(st["state"], state, st)
        return st

    def wait_listening(self, cid, port, timeout=STEP):
        """Until the container has a TCP listener on port (its /proc/net/tcp)."""
        want = ":%04X" % port
        deadline = time.time() + timeout
        while True:
            tcp = self.ctl("exec", cid, "cat", "/proc/net/tcp", "/proc/net/tcp6", check=False).out
            if any(ln.split()[1].endswith(want) and ln.split()[3] == "0A"
                   for ln in tcp.splitlines()[1:] if len(ln.split()) > 3 and ln.split()[0] != "sl"):
                return
            if time.time() > deadline:
                self.fail("nothing listens on port %d in %s: %s" % (port, cid, tcp))
            time.sleep(0.1)

    def pty(self, *args, rows=24, cols=80):
        p = Pty(self.argv(*args), rows, cols)
        self.addCleanup(p.close)
        return p

    def popen(self, *args, stdin=subprocess.DEVNULL):
        p = subprocess.Popen(self.argv(*args), stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def done():
            if p.poll() is None:
                p.kill()
            p.wait(10)
            for f in (p.stdin, p.stdout, p.stderr):
                if f:
                    f.close()
        self.addCleanup(done)
        return p

    def readline(self, f, timeout=STEP):
        r, _, _ = select.select([f], [], [], timeout)
        self.assertTrue(r, "no line within %ds" % timeout)
        return f.readline().decode(errors="replace")


class StreamingChecks:
    """exec -it, attach, port-forward and logs -f: run for each handler."""

    def check_exec_tty(self, transport):
        cid = self.sleeper()
        t = self.pty("exec", "-it", "--transport", transport, cid, "sh", rows=37, cols=101)
        t.expect(b"# ")
        t.send(b"echo $((6*7))\r")
        self.assertIn(b"\r\n42\r\n", t.expect(b"42\r\n"))
        t.send(b"test -t 0 && test -t 1 && echo is-a-tty\r")
        t.expect(b"\nis-a-tty")
        # the initial size, then a resize (crictl gets SIGWINCH and sends it)
        t.send(b"stty size\r")
        t.expect(b"37 101")
        t.resize(45, 132)
        deadline = time.time() + STEP
        while True:
            t.send(b"stty size\r")
            try:
                t.expect(b"45 132", timeout=1)
                break
            except AssertionError:
                if time.time() > deadline:
                    raise
        t.send(b"exit 3\r")
        rc = t.wait()
        self.assertEqual(rc, 1, t.buf)  # crictl says the code, exits 1
        self.assertIn(b"command terminated with exit code 3", t.buf)

    def test_exec_tty_spdy(self):
        self.check_exec_tty("spdy")

    def test_exec_tty_websocket(self):
        self.check_exec_tty("websocket")

    def test_attach_tty_type_resize_detach(self):
        cid = self.create("ttysh", ["sh"], stdin=True, tty=True)
        self.wait_state(cid, "CONTAINER_RUNNING")
        for transport in ("spdy", "websocket"):
            t = self.pty("attach", "-i", "-t", "--transport", transport, cid, rows=30, cols=90)
            # the line is run (and its result printed) by the container's own shell
            deadline = time.time() + STEP
            while True:
                t.send(b"echo attached-$((7*6))\r")
                try:
                    t.expect(b"attached-42", timeout=2)
                    break
                except AssertionError:
                    if time.time() > deadline:
                        raise
            t.send(b"stty size\r")
            t.expect(b"30 90")
            t.resize(31, 91)
            deadline = time.time() + STEP
            while True:
                t.send(b"stty size\r")
                try:
                    t.expect(b"31 91", timeout=1)
                    break
                except AssertionError:
                    if time.time() > deadline:
                        raise
            # ctrl-p ctrl-q: crictl stops sending stdin; the session must end
            # and the container go on
            t.send(b"\x10\x11")
            rc = t.wait()
            self.assertEqual(rc, 0, (transport, t.buf))
            self.assertEqual(self.inspect(cid)["status"]["state"], "CONTAINER_RUNNING")

    def check_port_forward(self, transport):
        cid = self.echo_server()
        # a refused connection ends client-go's whole session: wait for nc
        self.wait_listening(cid, 7001)
        p = self.popen("port-forward", "--transport", transport, self.pod, "0:7001")
        line = self.readline(p.stdout)
        if not line.startswith("Forwarding from 127.0.0.1:"):
            p.kill()
            self.fail("crictl port-forward said %r, %r" % (line, p.stderr.read()))
        port = int(line.split(":")[1].split()[0])
        for i in range(2):  # two connections over one session, 3 MiB each way
            self.wait_listening(cid, 7001)  # nc again, after the loop's turn
            sent, got = echo_both_ways(port, 3 << 20)
            self.assertEqual(len(got), len(sent), i)
            self.assertEqual(hashlib.sha256(got).hexdigest(), hashlib.sha256(sent).hexdigest(), i)
        self.assertIsNone(p.poll(), "crictl port-forward ended")

    def echo_server(self):
        cls = type(self)
        if not getattr(cls, "_echo", None):
            cls._echo = self.create("echosrv", ["sh", "-c", "while true; do nc -l -p 7001 -e cat; done"])
        return cls._echo

    def test_port_forward_spdy(self):
        self.check_port_forward("spdy")

    def test_port_forward_websocket(self):
        # SPDY tunnelled in WebSocket (SPDY/3.1+portforward.k8s.io)
        self.check_port_forward("websocket")

    def test_logs_follow(self):
        # "late" is written only after crictl logs -f has shown "early"
        cid = self.create("logger", ["sh", "-c", "echo early; while [ ! -e /tmp/go ]; do sleep 0.1; done; "
                                     "echo late; echo late-err >&2; sleep 1; exit 0"])
        p = self.popen("logs", "-f", cid)
        self.assertEqual(self.readline(p.stdout), "early\n")
        self.ctl("exec", cid, "touch", "/tmp/go")
        self.assertEqual(self.readline(p.stdout), "late\n")
        # the container exits a second later: -f must end (kubelet's reader
        # checks the state every 5 s)
        try:
            p.wait(STEP)
        except subprocess.TimeoutExpired:
            self.fail("crictl logs -f did not end after the container exited")
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"late-err", p.stderr.read())
        self.assertEqual(self.inspect(cid)["status"]["state"], "CONTAINER_EXITED")


class Crictl(StreamingChecks, CrictlCase):
    """The default (namespace) runtime handler."""

    _sleeper = None

    @classmethod
    def sleeper(cls):
        if not cls._sleeper:
            cls._sleeper = cls.create("sleeper", ["sleep", "3600"])
        return cls._sleeper

    def test_pods_inspectp(self):
        pods = self.ctl_json("pods", "-o", "json")["items"]
        mine = [p for p in pods if p["id"] == self.pod]
        self.assertEqual(len(mine), 1, pods)
        self.assertEqual(mine[0]["state"], "SANDBOX_READY")
        self.assertEqual(mine[0]["metadata"]["name"], "crictl-pod")
        self.assertIn("crictl-pod", self.ctl("pods", "--name", "crictl-pod").out)
        st = self.ctl_json("inspectp", "-o", "json", self.pod)["status"]
        self.assertEqual(st["id"], self.pod)
        self.assertEqual(st["state"], "SANDBOX_READY")
        self.assertEqual(st["metadata"]["uid"], "uid-crictl-pod")
        self.assertTrue(st["network"]["ip"].startswith("10.250."), st["network"])
        self.assertEqual(st["linux"]["namespaces"]["options"]["network"], "POD")

    def test_create_start_ps_inspect(self):
        cid = self.create("psme", ["sleep", "3600"], start=False, labels={"k": "v"})
        self.assertEqual(self.inspect(cid)["status"]["state"], "CONTAINER_CREATED")
        self.ctl("start", cid)
        ps = self.ctl_json("ps", "-o", "json", "--id", cid)["containers"]
        self.assertEqual(len(ps), 1, ps)
        self.assertEqual(ps[0]["state"], "CONTAINER_RUNNING")
        self.assertEqual(ps[0]["podSandboxId"], self.pod)
        self.assertEqual(ps[0]["labels"], {"k": "v"})
        self.assertIn(cid, self.ctl("ps", "-q", "--label", "k=v").out.split())
        st = self.inspect(cid)
        self.assertEqual(st["status"]["id"], cid)
        self.assertEqual(st["status"]["metadata"]["name"], "psme")
        self.assertEqual(st["status"]["logPath"], os.path.join(self.logdir, "psme.log"))
        self.assertEqual(st["status"]["image"]["image"], self.image)
        self.assertRegex(st["status"]["startedAt"], r"^\d{4}-\d\d-\d\dT")
        self.assertNotEqual(st["status"]["startedAt"], st["status"]["finishedAt"])

    def check_exec(self, transport):
        cid = self.sleeper()
        r = self.ctl("exec", "--transport", transport, cid, "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
        self.assertEqual(r.returncode, 1, r.err)
        self.assertEqual(r.out, "out\n")
        self.assertIn("err\n", r.err)
        self.assertIn("command terminated with exit code 3", r.err)
        r = self.ctl("exec", "--transport", transport, cid, "true", check=False)
        self.assertEqual((r.returncode, r.out), (0, ""), r.err)
        r = self.ctl("exec", "-i", "--transport", transport, cid, "cat", input=b"hi\n")
        self.assertEqual(r.out, "hi\n")
        data = os.urandom(3 << 20)
        r = subprocess.run(self.argv("exec", "-i", "--transport", transport, cid, "cat"), input=data,
                           capture_output=True, timeout=60)
        self.assertEqual((r.returncode, len(r.stdout)), (0, len(data)), r.stderr)
        self.assertEqual(hashlib.sha256(r.stdout).digest(), hashlib.sha256(data).digest())
        r = self.ctl("exec", "--transport", transport, cid, "/no/such/binary", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("/no/such/binary", r.err)

    def test_exec_spdy(self):
        self.check_exec("spdy")

    def test_exec_websocket(self):
        self.check_exec("websocket")

    def test_exec_sync(self):
        r = self.ctl("exec", "-s", self.sleeper(), "sh", "-c", "echo synced; exit 4", check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("exited with 4", r.err)

    def test_attach_stdin_once_pipe(self):
        # stdin_once without a tty: the container's stdin closes with the
        # client's; its output is relayed until it exits
        cid = self.create("catonce", ["cat"], stdin=True, stdin_once=True)
        self.wait_state(cid, "CONTAINER_RUNNING")
        r = self.ctl("attach", "-i", cid, input=b"through attach\n", timeout=STEP)
        self.assertEqual(r.out, "through attach\n")
        st = self.wait_state(cid, "CONTAINER_EXITED")
        self.assertEqual(st["exitCode"], 0)

    def test_attach_stdin_pipe_detaches(self):
        # without stdin_once the end of the client's stdin is a detach
        cid = self.create("catmany", ["cat"], stdin=True)
        self.wait_state(cid, "CONTAINER_RUNNING")
        for i in range(2):
            try:
                self.ctl("attach", "-i", cid, input=b"line %d\n" % i, timeout=STEP)
            except subprocess.TimeoutExpired:
                self.fail("crictl attach did not end when its stdin did")
        self.assertEqual(self.inspect(cid)["status"]["state"], "CONTAINER_RUNNING")
        logs = self.ctl("logs", cid).out
        self.assertIn("line 0\n", logs)
        self.assertIn("line 1\n", logs)

    def test_attach_output_ends_with_container(self):
        cid = self.create("ticker", ["sh", "-c", "trap 'echo bye; exit 7' TERM; "
                                     "while true; do echo tick; sleep 0.2; done"])
        p = self.popen("attach", cid)
        self.assertEqual(self.readline(p.stdout), "tick\n")
        self.ctl("stop", "-t", "10", cid)
        try:
            p.wait(STEP)
        except subprocess.TimeoutExpired:
            self.fail("crictl attach went on after the container exited")
        self.assertTrue(p.stdout.read().endswith(b"bye\n"))
        self.assertEqual(self.inspect(cid)["status"]["exitCode"], 7)

    def test_port_forward_refused(self):
        p = self.popen("port-forward", self.pod, "0:9")
        line = self.readline(p.stdout)
        port = int(line.split(":")[1].split()[0])
        s = socket.create_connection(("127.0.0.1", port), timeout=STEP)
        self.assertEqual(s.recv(100), b"")  # closed, no data
        s.close()
        p.wait(STEP)  # client-go drops the session on an error from the pod
        self.assertIn(b"refused", p.stderr.read().lower())

    def test_logs_tail(self):
        cid = self.create("counter", ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo n$i; done"])
        self.wait_state(cid, "CONTAINER_EXITED")
        self.assertEqual(self.ctl("logs", cid).out, "".join("n%d\n" % i for i in range(1, 11)))
        self.assertEqual(self.ctl("logs", "--tail", "3", cid).out, "n8\nn9\nn10\n")
        ts = self.ctl("logs", "-t", "--tail", "1", cid).out.split(" ", 1)
        self.assertEqual(ts[1], "n10\n")
        self.assertRegex(ts[0], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d")

    def test_stats(self):
        cid = self.create("busy", ["sh", "-c", "while :; do :; done"])
        self.wait_state(cid, "CONTAINER_RUNNING")
        st = self.ctl_json("stats", "-o", "json", "--id", cid)["stats"]
        self.assertEqual(len(st), 1, st)
        cpu0 = int(st[0]["cpu"]["usageCoreNanoSeconds"]["value"])
        self.assertGreater(int(st[0]["memory"]["workingSetBytes"]["value"]), 0)
        self.assertEqual(st[0]["attributes"]["id"], cid)
        table = self.ctl("stats", "--id", cid).out.splitlines()
        row = [ln for ln in table if ln.startswith(cid[:13])]
        self.assertEqual(len(row), 1, table)
        self.assertGreater(float(row[0].split()[2]), 1.0, table)  # CPU %: the loop spins
        st = self.ctl_json("stats", "-o", "json", "--id", cid)["stats"]
        self.assertGreater(int(st[0]["cpu"]["usageCoreNanoSeconds"]["value"]), cpu0)
        self.ctl("stop", "-t", "0", cid)
        # a stopped container has no usage: the table leaves it out, -a shows it
        self.assertNotIn(cid[:13], self.ctl("stats", "--id", cid).out)
        self.assertIn(cid[:13], self.ctl("stats", "-a", "--id", cid).out)

    def test_info_version(self):
        info = self.ctl_json("info", "-o", "json")
        conds = {c["type"]: c["status"] for c in info["status"]["conditions"]}
        self.assertEqual(conds, {"RuntimeReady": True, "NetworkReady": True})
        v = self.ctl("version").out
        self.assertIn("RuntimeName:  corral", v)
        self.assertIn("RuntimeApiVersion:  v1", v)

    def test_images_pull_rmi(self):
        imgs = self.ctl_json("images", "-o", "json")["images"]
        mine = [i for i in imgs if self.image in i["repoTags"]]
        self.assertEqual(len(mine), 1, imgs)
        iid = mine[0]["id"]
        self.assertTrue(mine[0]["repoDigests"][0].startswith(self.image.rsplit(":", 1)[0] + "@sha256:"), mine)
        self.assertIn(self.image, self.ctl_json("inspecti", "-o", "json", self.image)["status"]["repoTags"])
        try:
            self.assertIn("Deleted: " + self.image, self.ctl("rmi", self.image).out)
            self.assertNotIn(iid, self.ctl("images", "-q").out.split())
            r = self.ctl("rmi", self.image, check=False)
            self.assertEqual(r.returncode, 1)
            self.assertIn("no such image", r.err)
        finally:
            # the other tests create from it
            self.assertIn(iid, self.ctl("pull", self.image, timeout=120).out)
        self.assertIn(iid, self.ctl("images", "-q").out.split())

    def test_stop_rm_stopp_rmp(self):
        pod = self.runp("doomed")
        cid = self.create("trapper", ["sh", "-c", "trap 'exit 7' TERM; while true; do sleep 0.1; done"],
                          pod=(pod, "doomed"))
        other = self.create("other", ["sleep", "3600"], pod=(pod, "doomed"))
        self.wait_state(cid, "CONTAINER_RUNNING")
        self.ctl("stop", "-t", "10", cid)
        st = self.inspect(cid)["status"]
        self.assertEqual((st["state"], st["exitCode"]), ("CONTAINER_EXITED", 7), st)
        self.ctl("rm", cid)
        self.assertNotIn(cid, self.ctl("ps", "-a", "-q").out.split())
        self.assertNotEqual(self.ctl("inspect", cid, check=False).returncode, 0)
        self.ctl("stopp", pod)
        self.assertEqual(self.ctl_json("inspectp", "-o", "json", pod)["status"]["state"], "SANDBOX_NOTREADY")
        self.assertEqual(self.inspect(other)["status"]["state"], "CONTAINER_EXITED")
        self.ctl("rmp", pod)
        self.assertNotIn(pod, self.ctl("pods", "-q").out.split())
        self.assertNotIn(other, self.ctl("ps", "-a", "-q").out.split())
        # the class's pod is untouched
        self.assertEqual(self.ctl_json("inspectp", "-o", "json", self.pod)["status"]["state"], "SANDBOX_READY")


class CrictlVM(StreamingChecks, CrictlCase):
    """The same streams into one VM pod (QEMU; TCG here, so one pod)."""
    handler = "vm"

    @classmethod
    def setUpClass(cls):
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        import test_vm_pods as vmp
        if subprocess.run(["sh", "-c", "command -v qemu-system-x86_64"], capture_output=True).returncode != 0:
            raise unittest.SkipTest("qemu-system-x86_64 not found (apt-get install qemu-system-x86)")
        guest, why = vmp._guest_image()
        if why:
            raise unittest.SkipTest(why)
        kernel, initrd, _ = guest
        cls.config = {"cgroup_driver": "cgroupfs", "runtimes": {"vm": vmp.vm_handler(kernel, initrd)}}
        super().setUpClass()
        cls._sleeper = None

    @classmethod
    def sleeper(cls):
        if not cls._sleeper:
            cls._sleeper = cls.create("sleeper", ["sleep", "3600"])
        return cls._sleeper

    def test_runtime_is_vm(self):
        self.assertEqual(self.ctl_json("inspectp", "-o", "json", self.pod)["status"]["runtimeHandler"], "vm")


if __name__ == "__main__":
    main()
