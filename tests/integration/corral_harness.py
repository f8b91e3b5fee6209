"""Integration-test harness in Python: a real corrald in temp dirs, and CRI
stubs from grpcio (a client whose core is not ours)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

import grpc

from runtime.v1 import api_pb2, api_pb2_grpc  # generated at build time

CORRALD = os.environ.get("CORRALD", "corrald")
CORRALCTL = os.environ.get("CORRALCTL", "corralctl")
SKIP = 77


class Daemon:
    """corrald with its own root, state dir and socket."""

    def __init__(self, config=None, extra_args=(), cni_dir=None):
        self.dir = tempfile.mkdtemp(prefix="corral-py-")
        self.root = os.path.join(self.dir, "root")
        self.state = os.path.join(self.dir, "state")
        self.socket = os.path.join(self.state, "corral.sock")
        self.endpoint = "unix://" + self.socket
        self.log = os.path.join(self.dir, "corrald.log")
        cfg = dict(config or {})
        if cni_dir is None and "cni" not in cfg:
            cni_dir = os.path.join(self.dir, "cni")
            os.makedirs(cni_dir)
        if cni_dir is not None:
            cfg.setdefault("cni", {})["conf_dir"] = cni_dir
        self.config = os.path.join(self.dir, "corral.json")
        with open(self.config, "w") as f:
            json.dump(cfg, f)
        self.extra_args = list(extra_args)
        self.proc = None
        self.channel = None

    def start(self, timeout=10):
        args = [CORRALD, "--config", self.config, "--root", self.root, "--state", self.state,
                "--listen", self.endpoint, "--log-level", "debug"] + self.extra_args
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=self.logf, stderr=self.logf)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("corrald exited with %d:\n%s" % (self.proc.returncode, self.read_log()))
            if self._connectable():
                break
            time.sleep(0.01)
        else:
            raise RuntimeError("corrald did not listen within %ds" % timeout)
        self.channel = grpc.insecure_channel(self.endpoint, options=[
            ("grpc.max_receive_message_length", 16 << 20)])
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.image = api_pb2_grpc.ImageServiceStub(self.channel)
        return self

    def _connectable(self):
        # A killed daemon leaves its socket file behind: only a connection counts.
        import socket as _socket
        s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            s.connect(self.socket)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def stop(self, sig=signal.SIGTERM, timeout=30):
        if self.channel:
            self.channel.close()
            self.channel = None
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout)
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        if getattr(self, "logf", None):
            self.logf.close()
            self.logf = None
        return rc

    def kill(self):
        return self.stop(signal.SIGKILL)

    def read_log(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def ctl(self, *args, check=True, timeout=120, input=None):
        """Run corralctl against this daemon; returns CompletedProcess."""
        r = subprocess.run([CORRALCTL, "--endpoint", self.endpoint] + list(args), capture_output=True,
                           text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError("corralctl %s failed (%d): %s%s" % (" ".join(args), r.returncode, r.stdout,
                                                                     r.stderr))
        return r

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class DaemonTestCase(unittest.TestCase):
    """One daemon for the whole class."""
    config = None
    extra_args = ()

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(cls.config, cls.extra_args).start()

    @classmethod
    def tearDownClass(cls):
        failed = getattr(cls, "_failed", False)
        if failed:
            sys.stderr.write("----- corrald log -----\n%s\n" % cls.d.read_log()[-20000:])
        cls.d.cleanup()

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r


def main():
    """unittest main that exits 77 when everything was skipped."""
    if os.geteuid() != 0:
        print("SKIP: integration tests need root")
        sys.exit(SKIP)
    prog = unittest.main(exit=False, verbosity=2)
    r = prog.result
    # A SkipTest from setUpModule/setUpClass is one skip and no test run:
    # that is a skip by name, never a silent pass.
    if r.skipped and len(r.skipped) >= r.testsRun and r.wasSuccessful():
        for _, why in r.skipped:
            print(f"SKIP: {why}")
        sys.exit(SKIP)
    if r.testsRun == 0:
        print("FAIL: no test ran")
        sys.exit(1)
    sys.exit(0 if r.wasSuccessful() else 1)
