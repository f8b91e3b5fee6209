"""Images and snapshots in corrald's memory (issue #11): ListImages,
ImageStatus (by tag, id, id prefix, repo digest, bare digest, a miss),
ImageFsInfo and CreateContainer's image lookup run no SQL statement, as
corrald's own count of statements (SQLite's trace hook, on /metrics) shows;
after a pull, a tag moved by another pull and a remove, a kill -9 and a
restart give the same images, which are also what the journal holds; a pull
that fails midway leaves nothing in memory or in the journal, before and
after a restart; containers are made from the images after the restart (the
layer snapshots were reloaded)."""
import json
import os
import shutil
import sqlite3
import tempfile
import unittest
import urllib.request

import grpc

import corral_pods as cp
import registry as fixture
from corral_harness import Daemon, api_pb2, main


def spec(ref):
    return api_pb2.ImageSpec(image=ref)


class ImagesModel(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(fixture.REGISTRY_BIN):
            raise unittest.SkipTest("docker-registry is not installed")
        cls.tmp = tempfile.mkdtemp(prefix="corral-imgmodel-")
        cls.reg = fixture.Registry(os.path.join(cls.tmp, "reg")).start()
        cls.addr = cls.reg.addr
        cls.info = fixture.push_all(cls.addr, regdir=cls.reg.dir, only={"busybox", "multi", "zstd", "broken"})
        cls.port = fixture.free_port()
        cls.d = Daemon({"registries": {cls.addr: {"insecure": True}}, "cgroup_driver": "cgroupfs",
                        "metrics": {"address": "127.0.0.1:%d" % cls.port}}).start()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "_failed", False):
            print("----- corrald log -----\n" + cls.d.read_log()[-20000:])
        try:
            if cls.d.channel:
                for p in cls.d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
                    cls.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
                    cls.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id),
                                                   timeout=30)
        finally:
            cls.d.stop()
            cp.unmount_under(cls.d.dir)
            cls.d.cleanup()
            cls.reg.stop()
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # helpers
    def pull(self, ref):
        return self.d.image.PullImage(api_pb2.PullImageRequest(image=spec(ref)), timeout=120).image_ref

    def statements(self):
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.port, timeout=10).read().decode()
        for line in body.splitlines():
            if line.startswith("corral_store_statements_total "):
                return int(line.split()[1])
        self.fail("no corral_store_statements_total in /metrics")

    def listed(self):
        """ListImages as {id: (sorted tags, sorted digests)}."""
        return {i.id: (sorted(i.repo_tags), sorted(i.repo_digests))
                for i in self.d.image.ListImages(api_pb2.ListImagesRequest()).images}

    def journal(self):
        """The store's image tables (read-only, beside the daemon) in the same shape."""
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(self.d.root, "corral.db"), uri=True)
        try:
            out = {}
            for (iid,) in db.execute("SELECT id FROM images"):
                names = [n for (n,) in db.execute("SELECT name FROM image_names WHERE image_id = ?", (iid,))]
                out[iid] = (sorted(n for n in names if "@" not in n), sorted(n for n in names if "@" in n))
            extract = db.execute("SELECT count(*) FROM snapshots WHERE key LIKE 'extract-%'").fetchone()[0]
        finally:
            db.close()
        return out, extract

    def restart(self):
        """kill -9 and start again (on a new metrics port: the old one may linger in TIME_WAIT)."""
        self.d.kill()
        type(self).port = fixture.free_port()
        with open(self.d.config) as f:
            cfg = json.load(f)
        cfg["metrics"]["address"] = "127.0.0.1:%d" % self.port
        with open(self.d.config, "w") as f:
            json.dump(cfg, f)
        self.d.start()

    # tests
    def test_1_reads_run_no_sql(self):
        busybox = self.addr + "/busybox:latest"
        bid = self.pull(busybox)
        mid = self.pull(self.addr + "/multi:latest")
        self.pull(self.addr + "/zstd:latest")
        self.d.image.ImageFsInfo(api_pb2.ImageFsInfoRequest())  # after the pulls' usage walk
        mdigest = self.info["multi"]["manifest_digest"]
        lookups = [busybox, bid, bid[7:], bid[7:19], "%s/multi@%s" % (self.addr, mdigest), mdigest,
                   self.addr + "/nothere:1"]
        rt, im = self.d.runtime, self.d.image
        logdir = os.path.join(self.d.dir, "logs")
        os.makedirs(logdir, exist_ok=True)
        pcfg = cp.pod_config("nosql", logdir)
        pcfg.linux.security_context.namespace_options.network = api_pb2.NODE
        pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pcfg), timeout=60).pod_sandbox_id

        before = self.statements()
        self.assertEqual(self.statements(), before, "a scrape of /metrics runs SQL")
        for _ in range(20):
            self.assertEqual(len(im.ListImages(api_pb2.ListImagesRequest()).images), 3)
            for what in lookups:
                st = im.ImageStatus(api_pb2.ImageStatusRequest(image=spec(what), verbose=True))
                self.assertEqual(st.HasField("image"), not what.endswith("nothere:1"), what)
                im.ListImages(api_pb2.ListImagesRequest(filter=api_pb2.ImageFilter(image=spec(what))))
            fs = im.ImageFsInfo(api_pb2.ImageFsInfoRequest())
            self.assertGreater(fs.image_filesystems[0].used_bytes.value, 0)
            # CreateContainer's image lookup: a miss fails before anything is written
            cfg = cp.ctr_config("c", self.addr + "/nothere:1", ["true"])
            with self.assertRaises(grpc.RpcError) as cm:
                rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                  sandbox_config=pcfg), timeout=30)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)
        self.assertEqual(self.statements(), before, "reads ran SQL statements")

        # A hit: the lookup adds nothing to what the writes of a create run,
        # whether by tag, id or id prefix.
        counts = []
        for what in (busybox, bid, bid[7:19], busybox):
            n0 = self.statements()
            cid = rt.CreateContainer(api_pb2.CreateContainerRequest(
                pod_sandbox_id=pod, config=cp.ctr_config("h%d" % len(counts), what, ["true"]),
                sandbox_config=pcfg), timeout=60).container_id
            counts.append(self.statements() - n0)
            rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=60)
        self.assertEqual(len(set(counts)), 1, "statements per CreateContainer: %s" % counts)

        # The count is live: a write runs statements.
        n0 = self.statements()
        im.RemoveImage(api_pb2.RemoveImageRequest(image=spec(self.addr + "/zstd:latest")))
        self.assertGreater(self.statements(), n0)
        self.assertEqual(len(im.ListImages(api_pb2.ListImagesRequest()).images), 2)
        self.assertIn(mid, self.listed())

    def test_2_restart_gives_the_same_images(self):
        self.pull(self.addr + "/busybox:latest")
        self.pull(self.addr + "/multi:latest")
        zid = self.pull(self.addr + "/zstd:latest")
        # A second tag on busybox's image, then pushed again for another image:
        # the next pull moves the tag over.
        reg = fixture.Pusher(self.addr)
        info = fixture.push_image(reg, "busybox", "moving", [fixture.base_layer()])
        self.pull(self.addr + "/busybox:moving")
        self.assertIn(self.addr + "/busybox:moving", self.listed()[info["config_digest"]][0])
        fixture.push_image(reg, "busybox", "moving", [fixture.base_layer()],
                           config_extra={"Labels": {"moved": "yes"}})
        moved = self.pull(self.addr + "/busybox:moving")
        self.assertNotEqual(moved, info["config_digest"])
        self.assertIn(self.addr + "/busybox:moving", self.listed()[moved][0])
        self.assertNotIn(self.addr + "/busybox:moving", self.listed()[info["config_digest"]][0])
        self.d.image.RemoveImage(api_pb2.RemoveImageRequest(image=spec(zid)))

        mem = self.listed()
        jr, extract = self.journal()
        self.assertEqual(mem, jr, "memory and journal differ")
        self.assertEqual(extract, 0)
        self.assertNotIn(zid, mem)
        self.restart()
        self.assertEqual(self.listed(), mem, "images after kill -9 and restart")
        st = self.d.image.ImageStatus(api_pb2.ImageStatusRequest(image=spec(self.addr + "/busybox:moving")))
        self.assertEqual(st.image.id, moved)

        # The layer snapshots came back too: a container is made from each image.
        rt = self.d.runtime
        logdir = os.path.join(self.d.dir, "logs")
        os.makedirs(logdir, exist_ok=True)
        pcfg = cp.pod_config("restart", logdir)
        pcfg.linux.security_context.namespace_options.network = api_pb2.NODE
        pod = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pcfg), timeout=60).pod_sandbox_id
        for i, iid in enumerate(sorted(mem)):
            cfg = cp.ctr_config("r%d" % i, iid, ["true"])
            cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                    sandbox_config=pcfg), timeout=60).container_id
            rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=60)

    def test_3_failed_pull_leaves_nothing(self):
        before = self.listed()
        for name in ("baddigest", "truncated"):
            with self.assertRaises(grpc.RpcError):
                self.pull("%s/%s:latest" % (self.addr, name))
            cfg_digest = self.info[name]["config_digest"]
            self.assertNotIn(cfg_digest, self.listed())
            jr, extract = self.journal()
            self.assertNotIn(cfg_digest, jr)
            self.assertEqual(extract, 0, "an active snapshot of the failed pull is left")
            st = self.d.image.ImageStatus(api_pb2.ImageStatusRequest(image=spec(cfg_digest)))
            self.assertFalse(st.HasField("image"))
        self.assertEqual(self.listed(), before)
        self.restart()
        self.assertEqual(self.listed(), before)
        self.assertEqual(self.journal()[0], before)


if __name__ == "__main__":
    main()
