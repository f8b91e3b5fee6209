"""The cost of one ListPodSandboxMetrics (and, beside it, ListPodSandboxStats)
with N namespace pods of one running container each: median and p90 wall
time over 20 calls, the reply's size and its number of series. A private
corrald, a private CNI bridge, busybox from the test registry fixture.
Usage: pod_metrics.py N [N...]   (run by bench/run-metrics.sh)"""
import os
import statistics
import sys
import time

from corral_harness import Daemon, api_pb2
import corral_pods as cp


def cpu_ms(pid):
    """corrald's user + system CPU time so far (the machine may be busy:
    wall time then says more about the neighbours than about us)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def timed(fn, pid, n=20):
    ts = []
    r = None
    c0 = cpu_ms(pid)
    for _ in range(n):
        t = time.perf_counter()
        r = fn()
        ts.append((time.perf_counter() - t) * 1000)
    cpu = (cpu_ms(pid) - c0) / n
    ts.sort()
    return statistics.median(ts), ts[int(len(ts) * 0.9) - 1], cpu, r


def main():
    counts = [int(a) for a in sys.argv[1:]] or [10, 50]
    images = cp.Images()
    d = Daemon({"cgroup_driver": "cgroupfs"})
    d.bridge = cp.cni_conflist(os.path.join(d.dir, "cni"))
    d.start()
    rt = d.runtime
    try:
        d.image.PullImage(api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=images.busybox)), timeout=120)
        logdir = os.path.join(d.dir, "logs")
        pods = 0
        for want in sorted(counts):
            while pods < want:
                name = "bench%d" % pods
                cfg = cp.pod_config(name, os.path.join(logdir, name))
                pid = rt.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg), timeout=60).pod_sandbox_id
                c = cp.ctr_config("sleep", images.busybox, ["sleep", "100000"])
                cid = rt.CreateContainer(api_pb2.CreateContainerRequest(pod_sandbox_id=pid, config=c,
                                                                        sandbox_config=cfg), timeout=60).container_id
                rt.StartContainer(api_pb2.StartContainerRequest(container_id=cid), timeout=60)
                pods += 1
            pid = d.proc.pid
            med, p90, cpu, r = timed(
                lambda: rt.ListPodSandboxMetrics(api_pb2.ListPodSandboxMetricsRequest(), timeout=60), pid)
            series = sum(len(p.metrics) + sum(len(c.metrics) for c in p.container_metrics) for p in r.pod_metrics)
            print("ListPodSandboxMetrics, %d pods: median %.1f ms, p90 %.1f ms, corrald CPU %.1f ms/call, "
                  "%d series, %d KiB" % (want, med, p90, cpu, series, r.ByteSize() // 1024))
            med, p90, cpu, r = timed(
                lambda: rt.ListPodSandboxStats(api_pb2.ListPodSandboxStatsRequest(), timeout=60), pid)
            print("ListPodSandboxStats,   %d pods: median %.1f ms, p90 %.1f ms, corrald CPU %.1f ms/call, %d KiB" %
                  (want, med, p90, cpu, r.ByteSize() // 1024))
        print("load average during the run: %s" % open("/proc/loadavg").read().split()[0])
    finally:
        for p in rt.ListPodSandbox(api_pb2.ListPodSandboxRequest()).items:
            rt.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
            rt.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=p.id), timeout=60)
        d.stop()
        cp.unmount_under(d.dir)
        d.cleanup()
        cp.delete_bridge(d.bridge)
        images.stop()


if __name__ == "__main__":
    main()
