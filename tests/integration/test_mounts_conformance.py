"""Container mounts as critest v1.32 checks them (pkg/validate/container_linux.go):
mount propagation (private, HOST_TO_CONTAINER, BIDIRECTIONAL) between the
host and a running container, recursive read-only mounts (KEP-3857) and
their refusals, and the handler feature in Status. Run as root."""
import os
import subprocess
import tempfile

import grpc

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc

RUNNING = api_pb2.CONTAINER_RUNNING


def setUpModule():
    tc.setUpModule()


def tearDownModule():
    tc.tearDownModule()


def sh(*args):
    subprocess.run(args, check=True)


class Mounts(tc.Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pod, cls.pcfg = cls.new_pod(cls, "mounts", privileged=True)

    def new_pod(self, name, privileged=False):
        logdir = os.path.join(self.logdir, name)
        cfg = cp.pod_config(name, logdir)
        cfg.linux.security_context.privileged = privileged
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        return pid, cfg

    def host_dir(self, propagation):
        """critest's layout: <tmp>/mnt bound on itself and made rshared (or
        rprivate), <tmp>/src with a flag file to mount under it later."""
        top = tempfile.mkdtemp(prefix="mounts-", dir=self.d.dir)
        mnt, src = os.path.join(top, "mnt"), os.path.join(top, "src")
        os.makedirs(os.path.join(mnt, "hostmnt"))
        os.makedirs(src)
        open(os.path.join(src, "flag"), "w").close()
        sh("mount", "--rbind", mnt, mnt)
        sh("mount", "--make-" + propagation, mnt)
        self.addCleanup(subprocess.run, ["umount", "-R", "-l", mnt])
        return mnt, src

    def volume_ctr(self, name, mnt, propagation, privileged=True):
        cfg = cp.ctr_config(name, self.image, ["sleep", "3600"])
        cfg.linux.security_context.privileged = privileged
        cfg.mounts.append(api_pb2.Mount(host_path=mnt, container_path=mnt, propagation=propagation))
        return self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                                      sandbox_config=self.pcfg),
                                       timeout=60).container_id

    def exec(self, cid, script):
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["sh", "-c", script], timeout=20),
                             timeout=30)
        return r.exit_code, (r.stdout + r.stderr).decode()

    def propagation(self, name, propagation, host_prop):
        """Returns (host mount seen in the container, container mount seen on the host)."""
        mnt, src = self.host_dir(host_prop)
        cid = self.volume_ctr(name, mnt, propagation)
        st = self.status(cid).status
        self.assertEqual(st.mounts[0].propagation, propagation)
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        cp.wait_state(self.rt, cid, RUNNING)
        # After start: only propagation can bring it into the container.
        sh("mount", "--bind", src, os.path.join(mnt, "hostmnt"))
        rc, out = self.exec(cid, "ls -A %s/hostmnt" % mnt)
        self.assertEqual(rc, 0, out)
        in_ctr = "flag" in out
        rc, out = self.exec(cid, "mkdir -p {0}/ctrmnt && mount -t tmpfs ctr {0}/ctrmnt && touch {0}/ctrmnt/x"
                            .format(mnt))
        self.assertEqual(rc, 0, out)
        on_host = os.path.exists(os.path.join(mnt, "ctrmnt", "x"))
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        return in_ctr, on_host

    def test_private(self):
        self.assertEqual(self.propagation("private", api_pb2.PROPAGATION_PRIVATE, "rprivate"), (False, False))

    def test_host_to_container(self):
        self.assertEqual(self.propagation("rslave", api_pb2.PROPAGATION_HOST_TO_CONTAINER, "rshared"),
                         (True, False))

    def test_bidirectional(self):
        self.assertEqual(self.propagation("rshared", api_pb2.PROPAGATION_BIDIRECTIONAL, "rshared"), (True, True))

    def test_propagation_needs_a_shared_host_mount(self):
        mnt, _ = self.host_dir("rprivate")
        e = self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.volume_ctr, "notshared", mnt,
                            api_pb2.PROPAGATION_BIDIRECTIONAL)
        self.assertIn("shared", e.details())
        self.assertIn(mnt, e.details())
        self.assertCode(grpc.StatusCode.FAILED_PRECONDITION, self.volume_ctr, "notslave", mnt,
                        api_pb2.PROPAGATION_HOST_TO_CONTAINER)

    # ---- recursive read-only (KEP-3857) ----

    def rro_host_path(self):
        top = tempfile.mkdtemp(prefix="rro-", dir=self.d.dir)
        os.makedirs(os.path.join(top, "tmpfs"))
        sh("mount", "-t", "tmpfs", "none", os.path.join(top, "tmpfs"))
        self.addCleanup(subprocess.run, ["umount", "-l", os.path.join(top, "tmpfs")])
        return top

    def rro_ctr(self, name, readonly=True, rro=True, propagation=api_pb2.PROPAGATION_PRIVATE):
        cfg = cp.ctr_config(name, self.image, ["sleep", "3600"])
        cfg.mounts.append(api_pb2.Mount(host_path=self.rro_host_path(), container_path="/mnt", readonly=readonly,
                                        recursive_read_only=rro, selinux_relabel=True, propagation=propagation))
        return self.rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                                      sandbox_config=self.pcfg),
                                       timeout=60).container_id

    def test_recursive_read_only(self):
        for rro in (False, True):
            cid = self.rro_ctr("rro%d" % rro, rro=rro)
            self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
            rc, out = self.exec(cid, "touch /mnt/top")
            self.assertNotEqual(rc, 0, "the volume itself is read-only")
            self.assertIn("Read-only file system", out)
            rc, out = self.exec(cid, "touch /mnt/tmpfs/file")
            if rro:
                self.assertNotEqual(rc, 0, "rro: the submount is read-only too")
                self.assertIn("Read-only file system", out)
            else:
                self.assertEqual(rc, 0, "plain readonly leaves the submount writable: " + out)
            self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)

    def test_recursive_read_only_refusals(self):
        for name, kw in (("rro-h2c", {"propagation": api_pb2.PROPAGATION_HOST_TO_CONTAINER}),
                         ("rro-bidi", {"propagation": api_pb2.PROPAGATION_BIDIRECTIONAL}),
                         ("rro-rw", {"readonly": False})):
            e = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.rro_ctr, name, **kw)
            self.assertIn("recursive_read_only", e.details())
        names = {c.metadata.name for c in self.rt.ListContainers(api_pb2.ListContainersRequest()).containers}
        self.assertFalse(names & {"rro-h2c", "rro-bidi", "rro-rw"}, "a refused create left a record")

    def test_status_feature(self):
        st = self.rt.Status(api_pb2.StatusRequest())
        handlers = {h.name: h.features for h in st.runtime_handlers}
        self.assertIn("", handlers)
        self.assertTrue(handlers[""].recursive_read_only_mounts)
        # The VM handler applies it in the guest (tests/integration/test_vm_conformance.py).
        self.assertTrue(handlers["vm"].recursive_read_only_mounts)


if __name__ == "__main__":
    main()
