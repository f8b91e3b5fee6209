"""Images in and out (corralctl images import / export over corral.v1) and
container commit, against real daemons: archives made by skopeo from the
local registry fixture, archives corral exports imported into a fresh root,
a committed container's image run, and hostile archives refused with
nothing left behind."""
import gzip
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
import unittest

import grpc

from corral_harness import Daemon, api_pb2, main
import corral_pods as cp
import registry as fixture

EXITED = api_pb2.CONTAINER_EXITED
SKOPEO = shutil.which("skopeo")

_skip_reason = None
_images = None


def setUpModule():
    global _skip_reason, _images
    _images, _skip_reason = cp.start_images()


def tearDownModule():
    if _images:
        _images.stop()


def tar_of(members):
    """members: list of (name, kind, data): kind file|symlink|dir."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, data in members:
            ti = tarfile.TarInfo(name)
            if kind == "file":
                ti.size = len(data)
                t.addfile(ti, io.BytesIO(data))
            elif kind == "symlink":
                ti.type = tarfile.SYMTYPE
                ti.linkname = data
                t.addfile(ti)
            else:
                ti.type = tarfile.DIRTYPE
                t.addfile(ti)
    return buf.getvalue()


def oci_layout(layer_entries, name="hostile.local/evil:1", corrupt=None, platform=None):
    """A whole OCI layout tar with one image whose only layer has
    layer_entries (registry.tar_layer's format). corrupt: "digest" makes
    the layer's bytes not match its name."""
    layer = fixture.tar_layer(layer_entries)
    gz = gzip.compress(layer, mtime=0)
    diff = fixture.sha256(layer)
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [diff]}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": fixture.MT_OCI_MANIFEST,
                           "config": {"mediaType": fixture.MT_OCI_CONFIG, "digest": fixture.sha256(config),
                                      "size": len(config)},
                           "layers": [{"mediaType": fixture.MT_OCI_LAYER_GZIP, "digest": fixture.sha256(gz),
                                       "size": len(gz)}]}).encode()
    desc = {"mediaType": fixture.MT_OCI_MANIFEST, "digest": fixture.sha256(manifest), "size": len(manifest),
            "annotations": {"org.opencontainers.image.ref.name": name}}
    if platform:
        desc["platform"] = {"os": "linux", "architecture": platform}
    index = json.dumps({"schemaVersion": 2, "manifests": [desc]}).encode()
    gz_bytes = gz
    if corrupt == "digest":
        gz_bytes = gz[:-1] + bytes([gz[-1] ^ 0xff])
    members = [("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'),
               ("blobs/sha256/" + fixture.sha256(config)[7:], "file", config),
               ("blobs/sha256/" + fixture.sha256(manifest)[7:], "file", manifest),
               ("blobs/sha256/" + fixture.sha256(gz)[7:], "file", gz_bytes),
               ("index.json", "file", index)]
    return tar_of(members)


class ImageIO(unittest.TestCase):
    config = {"cgroup_driver": "cgroupfs"}

    @classmethod
    def setUpClass(cls):
        if _skip_reason:
            raise unittest.SkipTest(_skip_reason)
        cls.tmp = tempfile.mkdtemp(prefix="corral-imgio-")
        # a: pulls from the registry; b: a fresh root that only ever imports
        cls.a = Daemon(cls.config)
        cls.a_bridge = cp.cni_conflist(os.path.join(cls.a.dir, "cni"), tag="ia")
        cls.a.start()
        cls.b = Daemon(cls.config)
        cls.b_bridge = cp.cni_conflist(os.path.join(cls.b.dir, "cni"), tag="ib")
        cls.b.start()
        cls.a.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=_images.busybox)), timeout=120)
        cls.want = _images.info["busybox"]

    @classmethod
    def tearDownClass(cls):
        for d, bridge in ((cls.a, cls.a_bridge), (cls.b, cls.b_bridge)):
            holder = type("H", (), {"d": d, "bridge": bridge, "_failed": getattr(cls, "_failed", False)})
            cp.teardown_daemon(holder, timeout=30)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # ---- helpers ----

    def path(self, name):
        return os.path.join(self.tmp, name)

    def skopeo(self, *args):
        if not SKOPEO:
            self.skipTest("skopeo is not installed (Debian package skopeo)")
        subprocess.run([SKOPEO] + list(args), check=True, capture_output=True, timeout=120)

    def skopeo_digest(self, ref):
        r = subprocess.run([SKOPEO, "inspect", "--format", "{{.Digest}}", ref], check=True, capture_output=True,
                           text=True, timeout=60)
        return r.stdout.strip()

    def clear(self, d):
        """No pods, no images: the next import starts from an empty store."""
        for p in d.runtime.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
            d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=30)
        for img in d.image.ListImages(api_pb2.ListImagesRequest()).images:
            d.image.RemoveImage(api_pb2.RemoveImageRequest(image=api_pb2.ImageSpec(image=img.id)))

    def leftovers(self, d):
        """What an import can leave: records, blobs, snapshots, staging files."""
        blobs = sorted(os.listdir(os.path.join(d.root, "blobs", "sha256")))
        db = sqlite3.connect("file:%s?mode=ro" % os.path.join(d.root, "corral.db"), uri=True)
        try:
            snaps = sorted(r[0] for r in db.execute("SELECT key FROM snapshots"))
        finally:
            db.close()
        staging = os.path.join(d.root, "import")
        staged = sorted(os.listdir(staging)) if os.path.isdir(staging) else []
        images = sorted(i.id for i in d.image.ListImages(api_pb2.ListImagesRequest()).images)
        return {"images": images, "blobs": blobs, "snapshots": snaps, "staging": staged}

    def run_in(self, d, image, cmd, name):
        logdir = os.path.join(d.dir, "logs", name)
        pcfg = cp.pod_config(name, logdir)
        pod = d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pcfg), timeout=60).pod_sandbox_id
        cfg = cp.ctr_config(name, image, cmd)
        cid = d.runtime.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pod, config=cfg,
                                                                       sandbox_config=pcfg), timeout=60).container_id
        d.runtime.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        st = cp.wait_state(d.runtime, cid, EXITED, timeout=30)
        out = "\n".join(t for _, _, _, t in cp.read_log(st.log_path))
        return cid, st.exit_code, out

    def status(self, d, ref):
        return d.image.ImageStatus(api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=ref))).image

    def import_into(self, d, path, *args):
        return d.ctl("images", "import", *args, path, timeout=300)

    # ---- archives made by skopeo ----

    def test_skopeo_docker_archive_imports_and_runs(self):
        self.clear(self.b)
        out = self.path("skopeo-docker.tar")
        self.skopeo("copy", "--src-tls-verify=false", "docker://" + _images.busybox,
                    "docker-archive:%s:skopeo.local/busybox:da" % out)
        digest = self.skopeo_digest("docker-archive:" + out)
        r = self.import_into(self.b, out)
        self.assertIn(self.want["config_digest"], r.stdout)
        img = self.status(self.b, "skopeo.local/busybox:da")
        self.assertEqual(img.id, self.want["config_digest"])
        self.assertIn("skopeo.local/busybox@" + digest, img.repo_digests)
        listed = [i for i in self.b.image.ListImages(api_pb2.ListImagesRequest()).images if i.id == img.id]
        self.assertEqual(len(listed), 1)
        self.assertIn("skopeo.local/busybox:da", listed[0].repo_tags)
        _, code, text = self.run_in(self.b, "skopeo.local/busybox:da", ["sh", "-c", "echo from-docker-archive"],
                                    "da")
        self.assertEqual(code, 0)
        self.assertIn("from-docker-archive", text)
        # docker save | gzip, on stdin: the same image again, nothing new
        with open(out, "rb") as f:
            gz = gzip.compress(f.read(), compresslevel=1)
        r = subprocess.run([os.environ.get("CORRALCTL", "corralctl"), "--endpoint", self.b.endpoint, "images",
                            "import", "--name", "gzipped.local/busybox:gz", "-"], input=gz, capture_output=True,
                           timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.status(self.b, "gzipped.local/busybox:gz").id, self.want["config_digest"])

    def test_skopeo_oci_archive_imports_and_runs(self):
        self.clear(self.b)
        out = self.path("skopeo-oci.tar")
        self.skopeo("copy", "--src-tls-verify=false", "docker://" + _images.busybox,
                    "oci-archive:%s:skopeo.local/busybox:oci" % out)
        digest = self.skopeo_digest("oci-archive:" + out)
        # skopeo writes the Docker config as an OCI config: its digest is skopeo's
        raw = subprocess.run([SKOPEO, "inspect", "--raw", "oci-archive:" + out], check=True, capture_output=True,
                             timeout=60).stdout
        config_digest = json.loads(raw)["config"]["digest"]
        # streamed on stdin this time
        with open(out, "rb") as f:
            data = f.read()
        r = subprocess.run([os.environ.get("CORRALCTL", "corralctl"), "--endpoint", self.b.endpoint, "images",
                            "import", "-"], input=data, capture_output=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        img = self.status(self.b, "skopeo.local/busybox:oci")
        self.assertEqual(img.id, config_digest)
        self.assertIn("skopeo.local/busybox@" + digest, img.repo_digests)
        _, code, text = self.run_in(self.b, "skopeo.local/busybox:oci", ["sh", "-c", "echo from-oci-archive"], "oci")
        self.assertEqual(code, 0)
        self.assertIn("from-oci-archive", text)

    # ---- corral's own archives ----

    def test_export_imports_into_fresh_root_and_runs(self):
        self.clear(self.b)
        for fmt in ("oci-archive", "docker-archive"):
            out = self.path("export-%s.tar" % fmt)
            self.a.ctl("images", "export", "--format", fmt, "-o", out, _images.busybox, timeout=300)
            if SKOPEO:
                # skopeo reads it, and sees the image corral has
                r = subprocess.run([SKOPEO, "inspect", "--config", "%s:%s" % (fmt, out)], capture_output=True,
                                   text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(fixture.sha256(r.stdout.strip().encode()) != "", True)
            self.clear(self.b)
            self.import_into(self.b, out)
            img = self.status(self.b, _images.busybox)
            self.assertEqual(img.id, self.want["config_digest"])
            _, code, text = self.run_in(self.b, _images.busybox, ["sh", "-c", "echo exported-" + fmt],
                                        "ex-" + fmt.split("-")[0])
            self.assertEqual(code, 0)
            self.assertIn("exported-" + fmt, text)

    def test_export_unknown_image(self):
        r = self.a.ctl("images", "export", "-o", self.path("none.tar"), "no.such/image:1", check=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("not found", r.stderr)
        self.assertFalse(os.path.exists(self.path("none.tar")))

    # ---- commit ----

    def test_commit_runs_and_travels(self):
        script = ("echo committed > /hello && rm /etc/group && mkdir -p /opq && echo old > /opq/old && "
                  "rm -rf /tmp && mkdir /tmp && echo new > /tmp/new")
        cid, code, _ = self.run_in(self.a, _images.busybox, ["sh", "-c", script], "tocommit")
        self.assertEqual(code, 0)
        r = self.a.ctl("commit", "--message", "a test", cid, "committed.local/busy:1")
        new_id = r.stdout.strip()
        self.assertTrue(new_id.startswith("sha256:"), r.stdout)
        img = self.status(self.a, "committed.local/busy:1")
        self.assertEqual(img.id, new_id)
        check = "cat /hello; ls /etc/group 2>/dev/null || echo group-gone; ls /tmp"
        _, code, text = self.run_in(self.a, "committed.local/busy:1", ["sh", "-c", check], "committed")
        self.assertEqual(code, 0, text)
        self.assertIn("committed", text)
        self.assertIn("group-gone", text)
        self.assertIn("new", text)
        # the .wh. entries survive an export and an import elsewhere
        self.clear(self.b)
        out = self.path("committed.tar")
        self.a.ctl("images", "export", "-o", out, "committed.local/busy:1", timeout=300)
        self.import_into(self.b, out)
        self.assertEqual(self.status(self.b, "committed.local/busy:1").id, new_id)
        _, code, text = self.run_in(self.b, "committed.local/busy:1", ["sh", "-c", check], "committed-b")
        self.assertEqual(code, 0, text)
        self.assertIn("committed", text)
        self.assertIn("group-gone", text)
        if SKOPEO:
            r = subprocess.run([SKOPEO, "inspect", "oci-archive:" + out], capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)

    # ---- hostile archives ----

    def refused(self, data, *want):
        self.clear(self.b)
        before = self.leftovers(self.b)
        path = self.path("hostile.tar")
        with open(path, "wb") as f:
            f.write(data)
        r = self.b.ctl("images", "import", path, check=False)
        self.assertNotEqual(r.returncode, 0, r.stdout)
        for w in want:
            self.assertIn(w, r.stderr)
        self.assertEqual(self.leftovers(self.b), before)
        return r.stderr

    def test_hostile_dotdot_name(self):
        self.refused(tar_of([("../escape", "file", b"x"), ("index.json", "file", b"{}")]), '".."')

    def test_hostile_symlink_escape(self):
        self.refused(tar_of([("oci-layout", "file", b'{"imageLayoutVersion":"1.0.0"}'),
                             ("index.json", "symlink", "../../../etc/passwd")]), "leaves the archive")

    def test_hostile_bad_digest(self):
        self.refused(oci_layout([("bin", "dir", None), ("bin/x", "file", b"payload")], corrupt="digest"),
                     "hash to", "DATA_LOSS")

    def test_hostile_truncated(self):
        out = self.path("whole.tar")
        self.a.ctl("images", "export", "-o", out, _images.busybox, timeout=300)
        with open(out, "rb") as f:
            data = f.read()
        self.refused(data[:len(data) // 2])

    def test_hostile_layer_escape_leaves_nothing(self):
        # every digest right, but the layer itself climbs out: the unpacker
        # refuses it after the archive was taken in, and the import is undone
        self.refused(oci_layout([("ok", "file", b"fine"), ("../../outside", "file", b"evil")]), "..")
        self.assertFalse(os.path.exists(os.path.join(self.b.root, "outside")))

    def test_platform(self):
        data = oci_layout([("etc", "dir", None), ("etc/arm", "file", b"arm")], name="plat.local/arm:1",
                          platform="arm64")
        err = self.refused(data, "no image for linux/amd64", "linux/arm64")
        self.assertIn("NOT_FOUND", err)
        path = self.path("arm.tar")
        with open(path, "wb") as f:
            f.write(data)
        self.import_into(self.b, path, "--platform", "linux/arm64")
        self.assertEqual(self.status(self.b, "plat.local/arm:1").repo_tags, ["plat.local/arm:1"])
        self.clear(self.b)
        self.import_into(self.b, path, "--all-platforms", "--name", "renamed.local/arm:2")
        self.assertEqual(self.status(self.b, "renamed.local/arm:2").repo_tags, ["renamed.local/arm:2"])

    def test_multiarch_index(self):
        """skopeo copy --all keeps the index: one platform by default (the
        repo digest is the index's, as for a pull), or all of them."""
        info = fixture.push_all(_images.reg.addr, only={"multiarch"})["multiarch"]
        out = self.path("multi.tar")
        self.skopeo("copy", "--all", "--src-tls-verify=false", "docker://%s/multiarch:latest" % _images.reg.addr,
                    "oci-archive:%s:multi.local/m:1" % out)
        self.clear(self.b)
        self.import_into(self.b, out)
        img = self.status(self.b, "multi.local/m:1")
        self.assertEqual(img.id, info["amd64"]["config_digest"])
        self.assertIn("multi.local/m@" + info["index_digest"], img.repo_digests)
        _, code, text = self.run_in(self.b, "multi.local/m:1", ["cat", "/arch"], "multi")
        self.assertEqual((code, text.strip()), (0, "amd64"))
        self.clear(self.b)
        self.import_into(self.b, out, "--platform", "linux/arm/v7")
        self.assertEqual(self.status(self.b, "multi.local/m:1").id, info["arm/v7"]["config_digest"])
        self.clear(self.b)
        self.import_into(self.b, out, "--all-platforms")
        ids = {i.id for i in self.b.image.ListImages(api_pb2.ListImagesRequest()).images}
        self.assertEqual(ids, {info[k]["config_digest"] for k in ("amd64", "arm64/v8", "arm/v7")})
        # the name (and the repo digest) stay with this host's image; the others are kept by id
        self.assertEqual(self.status(self.b, "multi.local/m:1").id, info["amd64"]["config_digest"])
        self.assertEqual(self.status(self.b, info["arm64/v8"]["config_digest"]).repo_tags, [])
        self.clear(self.b)
        self.import_into(self.b, out, "--all-platforms", "--name", "renamed.local/m:2")
        self.assertEqual(self.status(self.b, "renamed.local/m:2").id, info["amd64"]["config_digest"])
        self.assertEqual(len(self.b.image.ListImages(api_pb2.ListImagesRequest()).images), 3)


if __name__ == "__main__":
    main()
