"""StopPodSandbox replies before the kernel has deleted the pod's veth (the
native path's DEL hands the deletion to a thread). What must hold: the
host-local address is released only once the veth is gone, RemovePodSandbox
waits for the job, and a corrald SIGKILL before the job ran leaves nothing
that RemovePodSandbox does not clean up."""
import os
import time

from corral_harness import api_pb2, main
import test_cni_native as tcn
from test_cni_native import NativeCNITest

DELAY_MS = 1500


class StopDefer(NativeCNITest):
    # Not the base class's tests again.
    test_same_network_both_ways = None
    test_native_add_plugin_del = None
    test_plugin_add_native_del = None
    test_result_same_shape = None

    @classmethod
    def setUpClass(cls):
        # For every corrald of this class, the restarted ones too.
        os.environ["CORRAL_TEST_CNI_DEL_DELAY_MS"] = str(DELAY_MS)
        super().setUpClass()

    def links(self):
        return tcn.sh("ip", "-o", "link", "show")

    def cache_files(self):
        d = os.path.join(self.d.root, "cni")
        out = []
        for root, _, files in os.walk(d):
            out += [f for f in files if any(p in f for p in self.pids)]
        return out

    def test_stop_releases_the_address_after_the_veth(self):
        pid = self.runp()
        self.pids = [pid]
        s = self.snapshot(pid)
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid))
        # Replied: the job waits DELAY_MS, so the veth and the address are both still there.
        self.assertIn(" %s@" % s["peer"], self.links())
        self.assertIn(s["ip"], self.ipam_files())
        self.assertIsNone(self.masq(s["ip"]))  # the masquerade rule goes at once
        t0 = time.time()
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid))
        self.assertGreater(time.time() - t0, DELAY_MS / 1000 / 3)  # it waited for the job
        g = self.gone(pid, s)
        self.assertFalse(g["peer_left"])
        self.assertFalse(g["ipam_file_left"])
        self.assertEqual(self.cache_files(), [])

    def test_kill9_before_the_job_ran(self):
        pid = self.runp()
        self.pids = [pid]
        s = self.snapshot(pid)
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid))
        self.d.kill()
        os.unlink(self.d.socket)
        self.d.start()
        self.assertIn(s["ip"], self.ipam_files())  # the job never ran
        self.assertNotEqual(self.cache_files(), [])
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid))
        g = self.gone(pid, s)
        self.assertFalse(g["ipam_file_left"])
        self.assertIsNone(g["masq_left"])
        self.assertEqual(self.cache_files(), [])
        # The netns died with corrald's fd: the kernel takes the veth with it.
        for _ in range(100):
            if " %s@" % s["peer"] not in self.links():
                break
            time.sleep(0.05)
        self.assertNotIn(" %s@" % s["peer"], self.links())


if __name__ == "__main__":
    main()
