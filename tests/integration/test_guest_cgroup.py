"""cgroup v2 and the systemd driver, end to end: limits in the files and in
the systemd units, updates, stats, OOM (memory.events, memory.oom.group),
the cgroup namespace, the scope gone after removal, and containers that
outlive restarts of corrald, of systemd's manager and of dbus. Needs pure
cgroup v2 (the test guest, tests/guest); exits 77 elsewhere.
CORRAL_TEST_CGROUP_DRIVER: systemd (default where systemd is PID 1) or cgroupfs."""
import json
import os
import subprocess
import time
import unittest

import grpc

from corral_harness import api_pb2, main
import corral_pods as cp
import test_containers as tc

CG = "/sys/fs/cgroup"
MiB = 1 << 20


def v2_reason():
    if os.statvfs(CG) and subprocess.run(["stat", "-fc", "%T", CG], capture_output=True,
                                         text=True).stdout.strip() != "cgroup2fs":
        return "no pure cgroup v2 at /sys/fs/cgroup (it runs in the test guest: ctest -L guest)"
    ctrls = rd(os.path.join(CG, "cgroup.controllers")).split()
    for c in ("memory", "cpu", "pids", "cpuset"):
        if c not in ctrls:
            return "cgroup v2 controller %s not available" % c
    return None


SYSTEMD = os.path.isdir("/run/systemd/system")
DRIVER = os.environ.get("CORRAL_TEST_CGROUP_DRIVER", "systemd" if SYSTEMD else "cgroupfs")


def setUpModule():
    tc.setUpModule()


def tearDownModule():
    tc.tearDownModule()


def rd(path):
    with open(path) as f:
        return f.read().strip()


def systemctl(*args):
    return subprocess.run(["systemctl"] + list(args), capture_output=True, text=True)


def show(unit, prop):
    return systemctl("show", unit, "-p", prop, "--value").stdout.strip()


class CgroupV2(tc.Base):
    config = {"cgroup_driver": DRIVER}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # No cgroup_parent: corral's own pod cgroup (a slice under systemd).
        cls.pod, cls.pcfg = cls.new_pod(cls, "v2", pod_cgroup=False)

    # ---- helpers ----

    def new_pod(self, name, pod_cgroup=True, **kw):
        logdir = os.path.join(self.logdir, name)
        cfg = cp.pod_config(name, logdir, **kw)
        if not pod_cgroup:
            cfg.linux.cgroup_parent = ""
        elif DRIVER == "systemd":
            cfg.linux.cgroup_parent = "kubepods-burstable-pod%s.slice" % name.replace("-", "_")
        else:
            cfg.linux.cgroup_parent = "/kubepods/burstable/pod%s" % name
        pid = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
        return pid, cfg

    def info(self, cid):
        return json.loads(self.status(cid, verbose=True).info["info"])

    def cgdir(self, cid):
        pid = self.info(cid)["pid"]
        line = [l for l in rd("/proc/%d/cgroup" % pid).splitlines() if l.startswith("0::")][0]
        return CG + line[3:]

    def start_sleeper(self, name, resources=None, pod=None, pcfg=None, cmd=None):
        cfg = cp.ctr_config(name, self.image, cmd or ["sleep", "3600"])
        if resources:
            cfg.linux.resources.CopyFrom(resources)
        cid = self.rt.CreateContainer(api_pb2.CreateContainerRequest(
            pod_sandbox_id=pod or self.pod, config=cfg, sandbox_config=pcfg or self.pcfg),
            timeout=60).container_id
        self.rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=30)
        return cid

    def remove(self, cid):
        self.rt.StopContainer(api_pb2.StopContainerRequest(container_id=cid, timeout=0), timeout=30)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    def limits(self):
        r = api_pb2.LinuxContainerResources(memory_limit_in_bytes=64 * MiB, cpu_quota=50000, cpu_period=100000,
                                            cpu_shares=512, cpuset_cpus="0")
        r.unified["memory.oom.group"] = "1"
        r.unified["memory.high"] = str(60 * MiB)
        r.unified["pids.max"] = "100"
        if "hugetlb" in rd(os.path.join(CG, "cgroup.controllers")).split():
            r.hugepage_limits.add(page_size="2MB", limit=4 * MiB)
        return r

    def check_files(self, d, mem=64 * MiB, quota="50000 100000"):
        self.assertEqual(rd(d + "/memory.max"), str(mem))
        self.assertEqual(rd(d + "/cpu.max"), quota)
        self.assertEqual(rd(d + "/cpu.weight"), "20")  # kubelet's shares 512 -> weight 20
        self.assertEqual(rd(d + "/pids.max"), "100")
        self.assertEqual(rd(d + "/memory.high"), str(60 * MiB))
        self.assertEqual(rd(d + "/memory.oom.group"), "1")
        self.assertEqual(rd(d + "/cpuset.cpus"), "0")
        if os.path.exists(d + "/memory.swap.max"):
            self.assertEqual(rd(d + "/memory.swap.max"), "0")  # no swap asked: none
        if os.path.exists(d + "/hugetlb.2MB.max"):
            self.assertEqual(rd(d + "/hugetlb.2MB.max"), str(4 * MiB))

    def scope_of(self, cid):
        return "corral-%s.scope" % cid

    def pod_cgroup(self, d):
        """The pod's cgroup above a container's (its scope's leaf, or its directory)."""
        if d.endswith(".scope/container"):
            d = os.path.dirname(d)
        return os.path.dirname(d)

    # ---- tests ----

    def test_limits_in_files_and_units(self):
        cid = self.start_sleeper("limits", self.limits())
        d = self.cgdir(cid)
        self.check_files(d)
        if DRIVER == "systemd":
            unit = self.scope_of(cid)
            # The container runs in the scope's leaf, which systemd never rewrites.
            self.assertTrue(d.endswith("/%s/container" % unit), d)
            st = systemctl("status", unit)
            self.assertEqual(st.returncode, 0, st.stdout + st.stderr)
            self.assertRegex(st.stdout, r"Memory: .*max: 64\.0M", st.stdout)
            self.assertEqual(show(unit, "MemoryMax"), str(64 * MiB))
            self.assertEqual(show(unit, "Delegate"), "yes")
            self.assertEqual(show(unit, "TasksMax"), "100")
            self.assertEqual(show(unit, "CPUQuotaPerSecUSec"), "500ms")
            self.assertEqual(show(unit, "ControlGroup"), os.path.dirname(d)[len(CG):])
            self.assertEqual(rd(os.path.dirname(d) + "/memory.max"), str(64 * MiB))
        else:
            self.assertNotIn(".scope", d)
        self.remove(cid)
        self.assertFalse(os.path.exists(d), d)
        if DRIVER == "systemd":
            st = systemctl("status", self.scope_of(cid))
            self.assertEqual(st.returncode, 4, "unit still there after removal:\n" + st.stdout)

    def test_limits_survive_daemon_reload_and_reexec(self):
        if DRIVER != "systemd":
            self.skipTest("systemd driver only")
        cid = self.start_sleeper("reload", self.limits())
        d = self.cgdir(cid)
        for verb in ("daemon-reload", "daemon-reexec"):
            r = systemctl(verb)
            self.assertEqual(r.returncode, 0, r.stderr)
            time.sleep(1)
            self.check_files(d)
            self.assertEqual(self.status(cid).status.state, api_pb2.CONTAINER_RUNNING, verb)
            self.assertEqual(systemctl("is-active", self.scope_of(cid)).stdout.strip(), "active", verb)
        self.remove(cid)

    def test_update_container_resources(self):
        cid = self.start_sleeper("update", self.limits())
        d = self.cgdir(cid)
        new = self.limits()
        new.memory_limit_in_bytes = 128 * MiB
        new.cpu_quota = 20000
        self.rt.UpdateContainerResources(api_pb2.UpdateContainerResourcesRequest(container_id=cid, linux=new),
                                         timeout=30)
        self.check_files(d, mem=128 * MiB, quota="20000 100000")
        if DRIVER == "systemd":
            self.assertEqual(show(self.scope_of(cid), "MemoryMax"), str(128 * MiB))
            systemctl("daemon-reload")
            time.sleep(1)
            self.check_files(d, mem=128 * MiB, quota="20000 100000")
        self.remove(cid)

    def test_update_pod_sandbox_resources(self):
        pod, pcfg = self.new_pod("podres", pod_cgroup=False)
        cid = self.start_sleeper("inpod", pod=pod, pcfg=pcfg)
        podcg = self.pod_cgroup(self.cgdir(cid))
        res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=256 * MiB, cpu_quota=100000, cpu_period=100000)
        self.rt.UpdatePodSandboxResources(api_pb2.UpdatePodSandboxResourcesRequest(pod_sandbox_id=pod,
                                                                                   resources=res), timeout=30)
        self.assertEqual(rd(podcg + "/memory.max"), str(256 * MiB))
        self.assertEqual(rd(podcg + "/cpu.max"), "100000 100000")
        if DRIVER == "systemd":
            unit = os.path.basename(podcg)
            self.assertTrue(unit.endswith(".slice"), unit)
            self.assertEqual(show(unit, "MemoryMax"), str(256 * MiB))
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=30)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)
        self.assertFalse(os.path.exists(podcg), podcg)

    def test_kubelet_pod_slice(self):
        pod, pcfg = self.new_pod("kubelet-pod")
        cid = self.start_sleeper("inslice", pod=pod, pcfg=pcfg)
        d = self.cgdir(cid)
        if DRIVER == "systemd":
            self.assertTrue(d.endswith("/kubepods.slice/kubepods-burstable.slice/"
                                       "kubepods-burstable-podkubelet_pod.slice/corral-%s.scope/container" % cid), d)
        else:
            self.assertTrue(d.endswith("/kubepods/burstable/podkubelet-pod/" + cid), d)
        self.remove(cid)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=30)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)

    def test_slice_given_as_a_path(self):
        # critest (and some tools) give the parent slice as a path: the last
        # component names the slice, as containerd reads it.
        if DRIVER != "systemd":
            self.skipTest("systemd driver only")
        pcfg = cp.pod_config("pathslice", os.path.join(self.logdir, "pathslice"))
        pcfg.linux.cgroup_parent = "/test.slice"
        pod = self.rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=pcfg), timeout=60).pod_sandbox_id
        cid = self.start_sleeper("inpath", pod=pod, pcfg=pcfg)
        self.assertEqual(self.cgdir(cid), CG + "/test.slice/corral-%s.scope/container" % cid)
        self.remove(cid)
        self.rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=30)
        self.rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=30)

    def test_stats(self):
        cid = self.start_sleeper("stats", cmd=["sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; "
                                                           "head -c 8000000 /dev/zero > /dev/shm/x; sleep 3600"])
        deadline = time.time() + 30
        while time.time() < deadline:
            s = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
            if s.cpu.usage_core_nano_seconds.value > 0 and s.memory.working_set_bytes.value > 4 * MiB:
                break
            time.sleep(0.5)
        self.assertGreater(s.cpu.usage_core_nano_seconds.value, 0)
        self.assertGreater(s.memory.working_set_bytes.value, 4 * MiB, s)
        self.remove(cid)

    def test_cgroup_namespace(self):
        cid = self.start_sleeper("cgns", api_pb2.LinuxContainerResources(memory_limit_in_bytes=48 * MiB))
        r = self.rt.ExecSync(api_pb2.ExecSyncRequest(
            container_id=cid, cmd=["sh", "-c", "cat /proc/self/cgroup; cat /sys/fs/cgroup/memory.max"],
            timeout=20), timeout=30)
        self.assertEqual(r.exit_code, 0, r.stderr)
        self.assertEqual(r.stdout.decode().split(), ["0::/", str(48 * MiB)])
        self.remove(cid)

    def wait_exit(self, cid, timeout=90):
        return cp.wait_state(self.rt, cid, tc.EXITED, timeout=timeout)

    def test_oom_killed(self):
        res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=32 * MiB)
        cid = self.start_sleeper("oom", res, cmd=["sh", "-c", "tail /dev/zero"])
        st = self.wait_exit(cid)
        self.assertEqual(st.reason, "OOMKilled", st)
        self.assertEqual(st.exit_code, 137, st)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    def test_oom_group_kills_the_whole_container(self):
        # The init (sh) waits for a sleeper; only `tail` grows. With
        # memory.oom.group the kernel kills every process of the cgroup, so
        # the container ends at once, OOMKilled, instead of sleeping on.
        res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=32 * MiB)
        res.unified["memory.oom.group"] = "1"
        cid = self.start_sleeper("oomgroup", res, cmd=["sh", "-c", "sleep 3600 & tail /dev/zero; wait"])
        st = self.wait_exit(cid)
        self.assertEqual(st.reason, "OOMKilled", st)
        self.assertEqual(st.exit_code, 137, st)
        self.rt.RemoveContainer(api_pb2.RemoveContainerRequest(container_id=cid), timeout=30)

    def test_oom_without_group_kills_one_process(self):
        res = api_pb2.LinuxContainerResources(memory_limit_in_bytes=32 * MiB)
        res.unified["memory.oom.group"] = "0"
        cid = self.start_sleeper("oomone", res, cmd=["sh", "-c", "tail /dev/zero; echo survived; sleep 3600"])
        deadline = time.time() + 90
        while time.time() < deadline and "survived" not in self.log_text(self.status(cid).status):
            time.sleep(0.5)
        self.assertIn("survived", self.log_text(self.status(cid).status))
        self.assertEqual(self.status(cid).status.state, api_pb2.CONTAINER_RUNNING)
        self.remove(cid)

    def test_containers_outlive_restarts(self):
        cid = self.start_sleeper("outlive", self.limits())
        d = self.cgdir(cid)
        pid = self.info(cid)["pid"]
        # corrald killed and started again
        self.d.kill()
        self.d.start()
        self.rt = type(self).rt = self.d.runtime
        self.assertEqual(self.status(cid).status.state, api_pb2.CONTAINER_RUNNING)
        self.check_files(d)
        if DRIVER == "systemd":
            # dbus restarted: nothing of ours goes through it long-term
            r = systemctl("restart", "dbus")
            self.assertEqual(r.returncode, 0, r.stderr)
            time.sleep(1)
            self.assertEqual(systemctl("is-active", self.scope_of(cid)).stdout.strip(), "active")
            other = self.start_sleeper("afterdbus", self.limits())
            self.check_files(self.cgdir(other))
            self.remove(other)
        os.kill(pid, 0)
        s = self.rt.ContainerStats(api_pb2.ContainerStatsRequest(container_id=cid)).stats
        self.assertGreater(s.memory.working_set_bytes.value, 0)
        self.remove(cid)
        self.assertFalse(os.path.exists(d), d)


class Status(unittest.TestCase):
    def test_status_names_the_driver(self):
        from corral_harness import Daemon
        d = Daemon({"cgroup_driver": DRIVER})
        d.start()
        try:
            st = d.runtime.Status(api_pb2.StatusRequest(verbose=True))
            cfg = d.runtime.RuntimeConfig(api_pb2.RuntimeConfigRequest())
            want = api_pb2.SYSTEMD if DRIVER == "systemd" else api_pb2.CGROUPFS
            self.assertEqual(cfg.linux.cgroup_driver, want)
            self.assertIn(DRIVER, json.dumps(dict(st.info)))
        finally:
            d.stop()
            d.cleanup()


if __name__ == "__main__":
    # Said by name and exit 77 here: a skip from setUpModule would count no test run.
    why = v2_reason() or (DRIVER == "systemd" and not SYSTEMD and "systemd is not PID 1 here")
    if why:
        print("SKIP: %s" % why)
        raise SystemExit(77)
    main()
