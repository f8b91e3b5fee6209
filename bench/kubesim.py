#!/usr/bin/env python3
"""A kubelet load simulator (a benchmark, not a test): N pods of M containers
on the default handler, driven the way kubelet's PLEG drives a runtime.

  - a relist every second: ListPodSandbox + ListContainers, timed together;
  - ContainerStatus for each container that is new or changed state;
  - ListContainerStats + ListPodSandboxStats every 10 s;
  - one GetContainerEvents stream, counted per (container, event type);
  - churn: every minute a share of the pods is stopped, removed and
    replaced by new ones; a share of the containers exit by themselves.

It prints, per runtime: relist p50/p99, ContainerStatus p50, container events
delivered vs expected (and any delivered twice), the daemon's CPU seconds per
minute (over the whole run and between churn rounds) and its RSS.

  kubesim.py --endpoint unix:///run/corral/corral.sock --pid PID --label corral \\
             --image 127.0.0.1:5000/busybox:latest [--pods 110 --ctrs 3 --duration 300]
"""
import argparse
import os
import random
import statistics
import sys
import threading
import time

import grpc

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.environ.get("CORRAL_PYGEN", os.path.join(here, "..", "build", "py")))
from runtime.v1 import api_pb2 as pb  # noqa: E402
from runtime.v1 import api_pb2_grpc as pbg  # noqa: E402

EV = pb.ContainerEventType


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


class Sim:
    def __init__(self, a):
        self.a = a
        self.ch = grpc.insecure_channel(a.endpoint, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.rt = pbg.RuntimeServiceStub(self.ch)
        self.img = pbg.ImageServiceStub(self.ch)
        self.mu = threading.Lock()
        self.expected = {}  # (container id, type) -> count
        self.delivered = {}
        self.ours = set()
        self.pods = []  # [pod id, [ctr ids]]
        self.relist = []
        self.status = []
        self.stop = threading.Event()
        self.seq = 0

    def expect(self, cid, t):
        with self.mu:
            self.expected[(cid, t)] = self.expected.get((cid, t), 0) + 1

    def events(self):
        try:
            for ev in self.rt.GetContainerEvents(pb.GetEventsRequest()):
                # Counted for every id: a CREATED event can arrive before
                # CreateContainer's reply has told us the id; ours are
                # picked out at the end.
                with self.mu:
                    k = (ev.container_id, ev.container_event_type)
                    self.delivered[k] = self.delivered.get(k, 0) + 1
        except grpc.RpcError:
            pass

    def run_pod(self, exiting):
        self.seq += 1
        name = f"sim-{self.seq}"
        cfg = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=f"uid-{self.seq}", namespace="kubesim"),
            labels={"app": "kubesim", "pod": name},
            linux=pb.LinuxPodSandboxConfig(security_context=pb.LinuxSandboxSecurityContext(
                namespace_options=pb.NamespaceOption(network=pb.NODE))))
        pid = self.rt.RunPodSandbox(pb.RunPodSandboxRequest(config=cfg), timeout=120).pod_sandbox_id
        ids = []
        cid = None
        try:
            for i in range(self.a.ctrs):
                cmd = ["sleep", "3600"]
                if exiting and i == 0:
                    cmd = ["sh", "-c", f"sleep {random.randint(5, 50)}; exit 3"]
                cc = pb.ContainerConfig(metadata=pb.ContainerMetadata(name=f"c{i}"),
                                        image=pb.ImageSpec(image=self.a.image), command=cmd,
                                        labels={"app": "kubesim", "ctr": f"c{i}"})
                cid = self.rt.CreateContainer(pb.CreateContainerRequest(pod_sandbox_id=pid, config=cc,
                                                                        sandbox_config=cfg), timeout=120).container_id
                with self.mu:
                    self.ours.add(cid)
                self.expect(cid, EV.CONTAINER_CREATED_EVENT)
                if self.a.start:
                    self.rt.StartContainer(pb.StartContainerRequest(container_id=cid), timeout=120)
                    self.expect(cid, EV.CONTAINER_STARTED_EVENT)
                    self.expect(cid, EV.CONTAINER_STOPPED_EVENT)  # by itself or at the pod's stop
                ids.append(cid)
        except grpc.RpcError:
            if cid:
                try:
                    st = self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid), timeout=30).status
                    print(f"{self.a.label}: container {cid} state {pb.ContainerState.Name(st.state)} "
                          f"exit {st.exit_code} reason {st.reason!r} message {st.message!r}", file=sys.stderr)
                except grpc.RpcError:
                    pass
            self.remove_pod([pid, ids])
            raise
        return [pid, ids]

    def remove_pod(self, pod):
        pid, ids = pod
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pid), timeout=120)
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pid), timeout=120)
        for cid in ids:
            self.expect(cid, EV.CONTAINER_DELETED_EVENT)

    def teardown(self):
        for pod in self.pods:
            try:
                self.remove_pod(pod)
            except grpc.RpcError as e:
                print(f"{self.a.label}: remove pod {pod[0]}: {e.code()} {e.details()}", file=sys.stderr)
        self.pods = []

    def relister(self):
        seen = {}
        while not self.stop.is_set():
            t0 = time.monotonic()
            self.rt.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=30)
            r = self.rt.ListContainers(pb.ListContainersRequest(), timeout=30)
            self.relist.append(time.monotonic() - t0)
            now = {}
            for c in r.containers:
                now[c.id] = c.state
                if seen.get(c.id) != c.state:
                    t1 = time.monotonic()
                    try:
                        self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=c.id), timeout=30)
                    except grpc.RpcError:
                        pass
                    self.status.append(time.monotonic() - t1)
            seen = now
            self.stop.wait(max(0.0, 1.0 - (time.monotonic() - t0)))

    def stats(self):
        while not self.stop.wait(10):
            for call, req in ((self.rt.ListContainerStats, pb.ListContainerStatsRequest()),
                              (self.rt.ListPodSandboxStats, pb.ListPodSandboxStatsRequest())):
                try:
                    call(req, timeout=60)
                except grpc.RpcError:
                    pass

    def main(self):
        a = self.a
        self.img.PullImage(pb.PullImageRequest(image=pb.ImageSpec(image=a.image)), timeout=300)
        threading.Thread(target=self.events, daemon=True).start()
        time.sleep(0.5)
        t0 = time.monotonic()
        try:
            for i in range(a.pods):
                self.pods.append(self.run_pod(random.random() < a.exit_share))
        except grpc.RpcError:
            # Nothing left behind for the next run: the pods made so far go.
            self.teardown()
            raise
        setup = time.monotonic() - t0
        threads = [threading.Thread(target=f, daemon=True) for f in (self.relister, self.stats)]
        for t in threads:
            t.start()
        start, cpu0 = time.monotonic(), cpu_seconds(a.pid)
        quiet_cpu = quiet_time = 0.0
        end = start + a.duration
        try:
            while time.monotonic() < end:
                q0, c0 = time.monotonic(), cpu_seconds(a.pid)
                self.stop.wait(min(a.churn_every, max(0.0, end - time.monotonic())))
                quiet_cpu += cpu_seconds(a.pid) - c0
                quiet_time += time.monotonic() - q0
                if time.monotonic() >= end:
                    break
                k = max(1, int(len(self.pods) * a.churn))
                for _ in range(k):
                    self.remove_pod(self.pods.pop(random.randrange(len(self.pods))))
                    self.pods.append(self.run_pod(random.random() < a.exit_share))
        except grpc.RpcError:
            # A churn round that fails leaves nothing behind either.
            self.stop.set()
            self.teardown()
            raise
        elapsed, cpu = time.monotonic() - start, cpu_seconds(a.pid) - cpu0
        self.stop.set()
        for t in threads:
            t.join(timeout=15)
        rss = rss_kib(a.pid)
        self.teardown()
        time.sleep(2)
        with self.mu:
            self.delivered = {k: v for k, v in self.delivered.items() if k[0] in self.ours}
            exp = sum(self.expected.values())
            got = sum(min(v, self.expected.get(k, 0)) for k, v in self.delivered.items())
            dup = sum(v - 1 for k, v in self.delivered.items() if v > 1)
            missing = sum(1 for k in self.expected if k not in self.delivered)
            by_type = {}
            for k in self.expected:
                if k not in self.delivered:
                    name = EV.Name(k[1])
                    by_type[name] = by_type.get(name, 0) + 1
        ms = [x * 1e3 for x in self.relist]
        st = [x * 1e3 for x in self.status]
        print(f"{a.label}: {a.pods}x{a.ctrs} setup {setup:.1f} s; relist (ListPodSandbox+ListContainers) "
              f"p50 {pct(ms, 50):.2f} ms p99 {pct(ms, 99):.2f} ms over {len(ms)}; "
              f"ContainerStatus p50 {pct(st, 50):.2f} ms over {len(st)}")
        print(f"{a.label}: events delivered {got}/{exp} expected, {missing} missing "
              f"{dict(sorted(by_type.items()))}, {dup} duplicated")
        print(f"{a.label}: daemon CPU {cpu / elapsed * 60:.2f} s/min over {elapsed:.0f} s, "
              f"{(quiet_cpu / quiet_time * 60) if quiet_time else float('nan'):.2f} s/min between churn rounds "
              f"({(quiet_cpu / quiet_time * 100) if quiet_time else float('nan'):.1f}% of a core); RSS {rss} KiB")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--pid", type=int, required=True, help="the daemon's pid (CPU, RSS)")
    p.add_argument("--label", default="runtime")
    p.add_argument("--image", required=True)
    p.add_argument("--pods", type=int, default=110)
    p.add_argument("--ctrs", type=int, default=3)
    p.add_argument("--duration", type=float, default=180, help="seconds measured after setup")
    p.add_argument("--churn", type=float, default=0.05, help="share of pods replaced each round")
    p.add_argument("--churn-every", type=float, default=60)
    p.add_argument("--exit-share", type=float, default=0.1, help="pods whose first container exits by itself")
    p.add_argument("--no-start", dest="start", action="store_false", help="create containers only")
    Sim(p.parse_args()).main()


if __name__ == "__main__":
    main()
