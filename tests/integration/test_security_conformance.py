"""Security context gaps critest v1.32 found: run_as_group without a user is
refused, capabilities ALL are clamped to what corrald holds, and
SupplementalGroupsPolicy Merge/Strict with the identity reported in
ContainerStatus.user (also after the exit). Real corrald, run as root."""
import json
import os
import unittest

import grpc

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc
from test_containers import Base, EXITED, RUNNING

registry = cp.registry

# The image critest uses (test-image-predefined-group): user 1000 whose
# primary group is 1000 and who is a member of 50000 in /etc/group.
PASSWD = (b"root:x:0:0:root:/root:/bin/sh\n"
          b"default-user:x:1000:1000:Default User:/home/default-user:/bin/sh\n")
GROUP = (b"root:x:0:\ndefault-user:x:1000:\ngroup-defined-in-image:x:50000:default-user\n")


def setUpModule():
    tc.setUpModule()


def tearDownModule():
    tc.tearDownModule()


def cap_set(status_text, field):
    for line in status_text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1], 16)
    raise AssertionError("no %s in %r" % (field, status_text))


class Security(Base):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.pod, cls.pcfg = cls.new_pod(cls, "sec")
        layer = [("etc", "dir", None), ("etc/passwd", "file", PASSWD), ("etc/group", "file", GROUP),
                 ("home", "dir", None)]
        p = registry.Pusher(tc._images.reg.addr)
        registry.push_image(p, "predefgroup", "latest", [registry.base_layer(), (layer, "gzip")],
                            config_extra={"User": "1000"})
        cls.group_image = "%s/predefgroup:latest" % tc._images.reg.addr
        cls.d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=cls.group_image)),
                              timeout=120)

    def create_img(self, image, name, cmd, **kw):
        cfg = cp.ctr_config(name, image, cmd, **kw)
        return cfg, self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod, config=cfg, sandbox_config=self.pcfg), timeout=60).container_id

    # ---- run_as_group ----

    def test_run_as_group_without_user_is_refused(self):
        cfg = cp.ctr_config("group-only", self.image, ["true"])
        cfg.linux.security_context.run_as_group.value = 1234
        e = self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.rt.CreateContainer,
                            api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                           sandbox_config=self.pcfg), timeout=60)
        self.assertIn("run_as_group", e.details())
        # With a user it runs, as that group.
        cfg.linux.security_context.run_as_user.value = 1234
        cfg.metadata.name = "group-user"
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod, config=cfg, sandbox_config=self.pcfg), timeout=60).container_id
        self.assertTrue(cid)

    def test_pod_run_as_group_without_user_is_refused(self):
        cfg = cp.pod_config("podgroup", os.path.join(self.logdir, "podgroup"))
        cfg.linux.security_context.run_as_group.value = 1234
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.rt.RunPodSandbox,
                        api_pb2.RunPodSandboxRequest(config=cfg), timeout=60)
        names = [p.metadata.name for p in self.rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items]
        self.assertNotIn("podgroup", names)

    # ---- capabilities ----

    def bounding(self):
        with open("/proc/%d/status" % self.d.proc.pid) as f:
            return cap_set(f.read(), "CapBnd")

    def caps_of(self, name, add=(), drop=()):
        cfg = cp.ctr_config(name, self.image, ["cat", "/proc/self/status"])
        cfg.linux.security_context.capabilities.add_capabilities.extend(add)
        cfg.linux.security_context.capabilities.drop_capabilities.extend(drop)
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod, config=cfg, sandbox_config=self.pcfg), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        st = cp.wait_state(self.rt, cid, EXITED, timeout=20)
        self.assertEqual(st.exit_code, 0, st.message)
        return self.log_text(st)

    def test_all_capabilities_are_what_corrald_holds(self):
        out = self.caps_of("allcaps", add=["ALL"])
        bnd = self.bounding()
        self.assertEqual(cap_set(out, "CapEff"), bnd)
        self.assertEqual(cap_set(out, "CapPrm"), bnd)
        self.assertEqual(cap_set(out, "CapBnd"), bnd)

    def test_drop_all_then_add_one(self):
        out = self.caps_of("dropall", add=["NET_RAW"], drop=["ALL"])
        self.assertEqual(cap_set(out, "CapEff"), 1 << 13)  # CAP_NET_RAW
        self.assertEqual(cap_set(out, "CapBnd"), 1 << 13)

    def test_unknown_capability_is_refused(self):
        cfg = cp.ctr_config("badcap", self.image, ["true"])
        cfg.linux.security_context.capabilities.add_capabilities.append("NOT_A_CAP")
        self.assertCode(grpc.StatusCode.INVALID_ARGUMENT, self.rt.CreateContainer,
                        api_pb2.CreateContainerRequest(pod_sandbox_id=self.pod, config=cfg,
                                                       sandbox_config=self.pcfg), timeout=60)

    def test_status_names_missing_capabilities(self):
        r = self.rt.Status(api_pb2.StatusRequest(verbose=True))
        host = json.loads(r.info["host"])
        bnd = self.bounding()
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        missing = [n for n in range(last + 1) if not bnd & (1 << n)]
        self.assertEqual(len(host["capsMissing"]), len(missing), host)
        if not bnd & (1 << 24):
            self.assertIn("CAP_SYS_RESOURCE", host["capsMissing"])
        self.assertTrue(r.features.supplemental_groups_policy)

    # ---- SupplementalGroupsPolicy and ContainerStatus.user ----

    def groups_case(self, name, policy, want):
        cfg = cp.ctr_config(name, self.group_image, ["sh", "-c", "id -G; sleep 1000"])
        sc = cfg.linux.security_context
        sc.run_as_user.value = 1000
        sc.supplemental_groups.append(1234)
        sc.supplemental_groups_policy = policy
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=self.pod, config=cfg, sandbox_config=self.pcfg), timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        st = cp.wait_state(self.rt, cid, RUNNING, timeout=20)
        u = st.user.linux
        self.assertEqual((u.uid, u.gid, sorted(u.supplemental_groups)), (1000, 1000, want))
        ex = self.rt.ExecSync(api_pb2.ExecSyncRequest(container_id=cid, cmd=["id", "-G"], timeout=10), timeout=30)
        self.assertEqual(ex.stdout.decode(), " ".join(map(str, want)) + "\n")
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        st = cp.wait_state(self.rt, cid, EXITED, timeout=20)
        self.assertEqual(self.log_text(st).splitlines()[0], " ".join(map(str, want)))
        # Still known after the exit.
        u = st.user.linux
        self.assertEqual((u.uid, u.gid, sorted(u.supplemental_groups)), (1000, 1000, want))

    def test_groups_merge(self):
        self.groups_case("merge", api_pb2.Merge, [1000, 1234, 50000])

    def test_groups_strict(self):
        self.groups_case("strict", api_pb2.Strict, [1000, 1234])

    def test_user_from_image(self):
        _, cid = self.create_img(self.group_image, "imageuser", ["id", "-G"])
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        st = cp.wait_state(self.rt, cid, EXITED, timeout=20)
        u = st.user.linux
        self.assertEqual((u.uid, u.gid, sorted(u.supplemental_groups)), (1000, 1000, [1000, 50000]))
        self.assertEqual(self.log_text(st).strip(), "1000 50000")


if __name__ == "__main__":
    main()
