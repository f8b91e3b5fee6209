"""ImageService against a real corrald and a real registry on 127.0.0.1
(Debian docker-registry), filled with images this test builds from Debian
busybox-static (tests/fixtures/registry.py)."""
import os
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
import unittest

import grpc

import registry as fixture
from corral_harness import Daemon, api_pb2, main


def spec(ref):
    return api_pb2.ImageSpec(image=ref)


class Images(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(fixture.REGISTRY_BIN):
            raise unittest.SkipTest("docker-registry is not installed")
        cls.tmp = tempfile.mkdtemp(prefix="corral-img-")
        cls.reg = fixture.Registry(os.path.join(cls.tmp, "reg")).start()
        cls.addr = cls.reg.addr
        cls.info = fixture.push_all(cls.addr, regdir=cls.reg.dir)
        cls.authreg = fixture.Registry(os.path.join(cls.tmp, "authreg")).start(htpasswd=("alice", "s3cret"))
        fixture.push_all(cls.authreg.addr, auth=("alice", "s3cret"), only=["busybox"])
        cls.hostile_dir = os.path.join(cls.tmp, "hostile")
        cls.hostile = fixture.start_hostile(cls.hostile_dir)
        cls.d = Daemon({"registries": {"registry.k8s.io": {"mirrors": ["http://" + cls.addr]}}}).start()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n" + cls.d.read_log()[-20000:])
        cls.d.cleanup()
        cls.reg.stop()
        cls.authreg.stop()
        fixture.stop_dir(cls.hostile_dir)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # helpers
    def pull(self, ref, auth=None, timeout=120):
        return self.d.image.PullImage(api_pb2.PullImageRequest(image=spec(ref), auth=auth), timeout=timeout).image_ref

    def status(self, ref, verbose=False):
        return self.d.image.ImageStatus(api_pb2.ImageStatusRequest(image=spec(ref), verbose=verbose))

    def snapshot_dir(self, chain_id):
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.root, "corral.db"), uri=True)
        try:
            row = db.execute("SELECT dir FROM snapshots WHERE key = ?", (chain_id,)).fetchone()
        finally:
            db.close()
        self.assertIsNotNone(row, "no snapshot for %s" % chain_id)
        return os.path.join(self.d.root, "snapshots", "overlay2", row[0], "fs")

    # tests
    def test_pull_list_status(self):
        ref = self.addr + "/busybox:latest"
        image_ref = self.pull(ref)
        want = self.info["busybox"]
        self.assertEqual(image_ref, want["config_digest"])
        imgs = self.d.image.ListImages(api_pb2.ListImagesRequest()).images
        mine = [i for i in imgs if i.id == image_ref]
        self.assertEqual(len(mine), 1)
        self.assertIn(ref, mine[0].repo_tags)
        self.assertIn("%s/busybox@%s" % (self.addr, want["manifest_digest"]), mine[0].repo_digests)
        self.assertGreater(mine[0].size, 0)
        st = self.status(ref, verbose=True)
        self.assertEqual(st.image.id, image_ref)
        self.assertIn('"org.corral.test"', st.info["info"])
        # by id and by digest too
        self.assertEqual(self.status(image_ref).image.id, image_ref)
        self.assertEqual(self.status("%s/busybox@%s" % (self.addr, want["manifest_digest"])).image.id, image_ref)

    def test_multilayer_chain_ids(self):
        image_ref = self.pull(self.addr + "/multi:latest")
        want = self.info["multi"]
        self.assertEqual(image_ref, want["config_digest"])
        info = self.status(image_ref, verbose=True).info["info"]
        for cid in want["chain_ids"]:
            self.assertIn(cid, info)
        top = self.snapshot_dir(want["chain_ids"][-1])
        with open(os.path.join(top, "etc/motd")) as f:
            self.assertEqual(f.read(), "layer 3\n")

    def test_whiteout_and_opaque_on_disk(self):
        self.pull(self.addr + "/whiteout:latest")
        top = self.snapshot_dir(self.info["whiteout"]["chain_ids"][-1])
        st = os.lstat(os.path.join(top, "data/gone"))
        self.assertTrue(stat.S_ISCHR(st.st_mode))
        self.assertEqual(st.st_rdev, 0)
        self.pull(self.addr + "/opaque:latest")
        top = self.snapshot_dir(self.info["opaque"]["chain_ids"][-1])
        self.assertEqual(os.getxattr(os.path.join(top, "opq"), "trusted.overlay.opaque"), b"y")
        self.assertTrue(os.path.exists(os.path.join(top, "opq/new")))

    def test_zstd_layer(self):
        self.assertEqual(self.pull(self.addr + "/zstd:latest"), self.info["zstd"]["config_digest"])
        top = self.snapshot_dir(self.info["zstd"]["chain_ids"][-1])
        with open(os.path.join(top, "zstd/hello")) as f:
            self.assertTrue(f.read().startswith("zstd layer"))

    def test_multiarch_picks_amd64(self):
        self.assertEqual(self.pull(self.addr + "/multiarch:latest"), self.info["multiarch"]["amd64"]["config_digest"])

    def test_mirror(self):
        """registry.k8s.io is configured with the local registry as its mirror: no internet needed."""
        image_ref = self.pull("registry.k8s.io/busybox:latest")
        self.assertEqual(image_ref, self.info["busybox"]["config_digest"])
        self.assertIn("registry.k8s.io/busybox:latest", self.status(image_ref).image.repo_tags)

    def test_basic_auth(self):
        ref = self.authreg.addr + "/busybox:latest"
        with self.assertRaises(grpc.RpcError) as cm:
            self.pull(ref)
        self.assertIn(cm.exception.code(), (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))
        self.assertIn(self.authreg.addr, cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.pull(ref, auth=api_pb2.AuthConfig(username="alice", password="wrong"))
        self.assertIn(cm.exception.code(), (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED))
        self.assertEqual(self.pull(ref, auth=api_pb2.AuthConfig(username="alice", password="s3cret")),
                         self.info["busybox"]["config_digest"])

    def test_bearer_token_redirect_resume(self):
        ref = self.hostile + "/tokened/img:latest"
        self.assertTrue(self.pull(ref).startswith("sha256:"))

    def test_bad_blobs_leave_nothing(self):
        for name in ("baddigest", "truncated"):
            ref = "%s/%s:latest" % (self.addr, name)
            with self.assertRaises(grpc.RpcError) as cm:
                self.pull(ref)
            self.assertNotEqual(cm.exception.code(), grpc.StatusCode.OK)
            self.assertIn("sha256:", cm.exception.details())
            self.assertFalse(self.status(ref).HasField("image"), "%s left an image record" % name)

    def test_hostile_manifests(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.pull(self.hostile + "/notjson:latest")
        self.assertIn("JSON", cm.exception.details())
        with self.assertRaises(grpc.RpcError) as cm:
            self.pull(self.hostile + "/nosuch:latest")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)

    def test_invalid_reference(self):
        # ("UPPER/case" would be valid: an upper-case first component is a registry host.)
        for bad in ("library/BusyBox", "a b", "busybox@sha256:zz", "busybox:", ""):
            with self.assertRaises(grpc.RpcError) as cm:
                self.pull(bad)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, bad)

    def test_resume_complete_or_corrupt_partial(self):
        """A pull that died after the last byte leaves a whole .partial: the next
        pull must verify it, not ask for bytes=SIZE- (416); a corrupt one is refetched."""
        ref = self.addr + "/zstd:latest"
        self.pull(ref)
        layer = self.info["zstd"]["layers"][1]
        blob = os.path.join(self.d.root, "blobs", "sha256", layer.split(":")[1])
        with open(blob, "rb") as f:
            data = f.read()
        for content in (data, os.urandom(len(data))):
            self.d.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(ref)))
            self.assertFalse(os.path.exists(blob))
            with open(blob + ".partial", "wb") as f:
                f.write(content)
            self.assertEqual(self.pull(ref), self.info["zstd"]["config_digest"])
            self.assertFalse(os.path.exists(blob + ".partial"))

    def test_kill9_during_pull(self):
        """kill -9 of corrald mid-pull: after a restart there is no half-made
        image, and pulling again completes (partials resumed or refetched)."""
        big = fixture.build_big(fixture.Pusher(self.addr), mib=48, layers=4)
        ref = self.addr + "/big:latest"
        errors = []

        def go():
            try:
                self.pull(ref, timeout=120)
            except grpc.RpcError as e:
                errors.append(e.code())

        blobs = os.path.join(self.d.root, "blobs", "sha256")
        t = threading.Thread(target=go)
        t.start()
        # Kill while a layer is half downloaded (a .partial exists): mid-pull for sure.
        deadline = time.time() + 10
        while time.time() < deadline and t.is_alive():
            if os.path.isdir(blobs) and any(x.endswith(".partial") for x in os.listdir(blobs)):
                break
            time.sleep(0.001)
        self.assertTrue(t.is_alive(), "the pull finished before it could be interrupted")
        self.d.kill()
        t.join()
        self.assertEqual(len(errors), 1)
        self.d.start()
        self.assertFalse(self.status(ref).HasField("image"), "a killed pull left an image record")
        self.assertEqual(self.pull(ref), big["config_digest"])
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.root, "corral.db"), uri=True)
        try:
            stray = db.execute("SELECT key FROM snapshots WHERE key LIKE 'extract-%'").fetchall()
        finally:
            db.close()
        self.assertEqual(stray, [], "unpack snapshots of the killed pull remain")
        self.d.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(ref)))

    def test_concurrent_pulls_share(self):
        ref = self.addr + "/multi:latest"
        out, errs = [], []

        def go():
            try:
                out.append(self.pull(ref))
            except grpc.RpcError as e:
                errs.append(e)

        ts = [threading.Thread(target=go) for _ in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        self.assertEqual(errs, [])
        self.assertEqual(set(out), {self.info["multi"]["config_digest"]})

    def test_remove_and_fsinfo(self):
        ref = self.addr + "/zstd:latest"
        self.pull(ref)
        before = self.d.image.ImageFsInfo(api_pb2.ImageFsInfoRequest()).image_filesystems[0].used_bytes.value
        self.assertGreater(before, 0)
        self.d.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(ref)))
        self.assertFalse(self.status(ref).HasField("image"))
        # removing again is fine
        self.d.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(ref)))
        after = self.d.image.ImageFsInfo(api_pb2.ImageFsInfoRequest()).image_filesystems[0].used_bytes.value
        self.assertLess(after, before)

    def test_corralctl(self):
        ref = self.addr + "/busybox:latest"
        r = self.d.ctl("pull", ref)
        self.assertIn(self.info["busybox"]["config_digest"], r.stdout)
        # per-layer progress (plain lines when stdout is not a terminal)
        zref = self.addr + "/zstd:latest"
        self.d.ctl("rmi", zref, check=False)
        r = self.d.ctl("pull", zref)
        self.assertIn("layer 2/2", r.stdout)
        self.assertRegex(r.stdout, r"layer 2/2 [0-9a-f]{12} (unpacked|exists)")
        self.assertIn(self.info["zstd"]["config_digest"], r.stdout)
        r = self.d.ctl("images")
        self.assertIn(self.addr + "/busybox", r.stdout)
        r = self.d.ctl("-o", "json", "inspecti", ref)
        self.assertIn('"repoTags"', r.stdout)
        r = self.d.ctl("imagefsinfo")
        self.assertIn("usedBytes", r.stdout)


if __name__ == "__main__":
    main()
