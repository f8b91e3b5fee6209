"""The native network path (net/native.c) against the reference plugins:
one bridge + host-local (+ loopback, portmap) config run both ways
(cni.native on and off) gives a pod the same network, and a pod made one
way is deleted cleanly the other way."""
import ipaddress
import json
import os
import random
import shutil
import subprocess
import sys
import unittest

from corral_harness import Daemon, api_pb2, main
import corral_pods

PLUGINS = "/usr/lib/cni"


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise AssertionError("%s: %s" % (" ".join(args), r.stderr))
    return r.stdout


def readf(path):
    with open(path) as f:
        return f.read().strip()


def free_subnet():
    addrs = sh("ip", "-o", "-4", "addr", "show")
    while True:
        x = random.randrange(1, 250)
        if " 10.249.%d." % x not in addrs:
            return x


class NativeCNITest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not all(os.path.exists(os.path.join(PLUGINS, p)) for p in ("bridge", "host-local", "loopback")):
            raise unittest.SkipTest("the reference CNI plugins are not in %s" % PLUGINS)
        if not shutil.which("iptables-nft") or not shutil.which("nft"):
            raise unittest.SkipTest("iptables-nft and nft are needed to see the masquerade rules")
        cls.tag = "%04x" % random.randrange(0x10000)
        cls.bridge = "crn%s" % cls.tag
        cls.x = free_subnet()
        cls.d = Daemon()
        cls.cni_dir = os.path.join(cls.d.dir, "cni")
        with open(cls.d.config, "w") as f:
            json.dump({"cni": {"conf_dir": cls.cni_dir, "bin_dirs": [PLUGINS], "native": True,
                               "cache_dir": os.path.join(cls.d.root, "cni")}}, f)
        cls.ipam_dir = os.path.join(cls.cni_dir, "ipam")
        cls.net = "native-test-%s" % cls.tag
        subnet = "10.249.%d.0/24" % cls.x
        conf = {
            "cniVersion": "1.0.0",
            "name": cls.net,
            "plugins": [
                {"type": "bridge", "bridge": cls.bridge, "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local",
                          "ranges": [[{"subnet": subnet, "rangeStart": "10.249.%d.10" % cls.x,
                                       "rangeEnd": "10.249.%d.200" % cls.x}]],
                          "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.0.2.0/24"}],
                          "dataDir": cls.ipam_dir}},
                {"type": "portmap", "capabilities": {"portMappings": True}},
                {"type": "loopback"},
            ],
        }
        with open(os.path.join(cls.cni_dir, "10-native.conflist"), "w") as f:
            json.dump(conf, f)
        cls.d.start()
        cls.logs = os.path.join(cls.d.dir, "logs")
        os.makedirs(cls.logs, exist_ok=True)
        cls.n = 0

    @classmethod
    def tearDownClass(cls):
        corral_pods.teardown_daemon(cls)

    def run(self, result=None):
        r = super().run(result)
        if result is not None and (result.failures or result.errors):
            type(self)._failed = True
        return r

    # ---- helpers ----

    def set_native(self, on):
        with open(self.d.config) as f:
            cfg = json.load(f)
        if cfg["cni"].get("native") == on and self.d.proc:
            return
        cfg["cni"]["native"] = on
        self.d.stop()
        with open(self.d.config, "w") as f:
            json.dump(cfg, f)
        self.d.start()

    def runp(self):
        type(self).n += 1
        name = "native-%d" % self.n
        cfg = corral_pods.pod_config(name, self.logs)
        return self.d.runtime.RunPodSandbox(api_pb2.RunPodSandboxRequest(config=cfg)).pod_sandbox_id

    def stopp(self, pid):
        self.d.runtime.StopPodSandbox(api_pb2.StopPodSandboxRequest(pod_sandbox_id=pid))
        self.d.runtime.RemovePodSandbox(api_pb2.RemovePodSandboxRequest(pod_sandbox_id=pid))

    def netns(self, pid):
        return os.path.join(self.d.state, "ns", pid, "net")

    def in_pod(self, pid, *args):
        return sh("nsenter", "--net=" + self.netns(pid), *args)

    def ipam_files(self):
        d = os.path.join(self.ipam_dir, self.net)
        out = {}
        for n in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            with open(os.path.join(d, n), "rb") as f:
                out[n] = f.read()
        return out

    def masq(self, ip):
        """How the pod's traffic is masqueraded: ('nft', rule) or ('iptables', chain rules), or None."""
        nft = sh("nft", "list", "table", "inet", "corral", check=False)
        for line in nft.splitlines():
            if "ip saddr %s " % ip in line and "masquerade" in line:
                return ("nft", " ".join(line.split()[:-2]) if "comment" in line else line.strip())
        ipt = sh("iptables-nft", "-t", "nat", "-S", "POSTROUTING", check=False)
        for line in ipt.splitlines():
            if "-s %s/32" % ip in line and "-j CNI-" in line:
                chain = line.split("-j ")[1].split()[0]
                return ("iptables", sh("iptables-nft", "-t", "nat", "-S", chain))
        return None

    def snapshot(self, pid):
        """What the pod got, as comparable facts."""
        addr = json.loads(self.in_pod(pid, "ip", "-j", "addr", "show", "eth0"))[0]
        inet = [a for a in addr["addr_info"] if a["family"] == "inet"]
        routes = json.loads(self.in_pod(pid, "ip", "-j", "route", "show"))
        lo = json.loads(self.in_pod(pid, "ip", "-j", "link", "show", "lo"))[0]
        peer_index = int(addr["link_index"]) if "link_index" in addr else None
        host_links = json.loads(sh("ip", "-j", "-d", "link", "show"))
        peer = next(l for l in host_links if l["ifindex"] == peer_index)
        mac = addr["address"]
        first = int(mac.split(":")[0], 16)
        ip = inet[0]["local"]
        return {
            "ip": ip,
            "prefix": inet[0]["prefixlen"],
            "brd": inet[0].get("broadcast"),
            "routes": sorted((r["dst"], r.get("gateway"), r.get("protocol"), r.get("scope")) for r in routes),
            "mac_local_unicast": (first & 0x02) == 2 and (first & 0x01) == 0,
            "lo_up": "UP" in lo["flags"],
            "kind": addr.get("link_type"),
            "peer_name_form": peer["ifname"].startswith("veth") and len(peer["ifname"]) == 12,
            "peer_master": peer.get("master"),
            "peer_up": "UP" in peer["flags"],
            "hairpin": readf("/sys/class/net/%s/brport/hairpin_mode" % peer["ifname"]),
            "peer": peer["ifname"],
            "ipam_file": self.ipam_files().get(ip),
            "masq": self.masq(ip),
            "bridge_addr": [(a["local"], a["prefixlen"]) for a in
                            json.loads(sh("ip", "-j", "addr", "show", self.bridge))[0]["addr_info"]
                            if a["family"] == "inet"],
            "ip_forward": readf("/proc/sys/net/ipv4/ip_forward"),
        }

    def gone(self, pid, snap):
        """What DEL leaves of the pod's network."""
        links = sh("ip", "-o", "link", "show")
        files = self.ipam_files()
        return {
            "peer_left": (" %s@" % snap["peer"]) in links,
            "ipam_file_left": snap["ip"] in files,
            "last_reserved": files.get("last_reserved_ip.0"),
            "masq_left": self.masq(snap["ip"]),
        }

    def comparable(self, snap):
        s = dict(snap)
        for k in ("ip", "peer", "masq", "ipam_file"):
            s.pop(k)
        return s

    # ---- tests ----

    def test_same_network_both_ways(self):
        """One config, native on then off: the same network, and DEL leaves the same."""
        got, left, pids = {}, {}, {}
        for on in (True, False):
            self.set_native(on)
            pid = pids[on] = self.runp()
            s = self.snapshot(pid)
            self.stopp(pid)
            got[on], left[on] = s, self.gone(pid, s)
        a, b = got[True], got[False]
        self.assertEqual(self.comparable(a), self.comparable(b))
        # host-local's file format, and round robin from the last reserved address
        self.assertEqual(a["ipam_file"], ("%s\r\neth0" % pids[True]).encode())
        self.assertEqual(b["ipam_file"], ("%s\r\neth0" % pids[False]).encode())
        self.assertEqual(int(ipaddress.ip_address(b["ip"])), int(ipaddress.ip_address(a["ip"])) + 1)
        self.assertEqual(a["prefix"], 24)
        self.assertEqual(a["bridge_addr"], [("10.249.%d.1" % self.x, 24)])
        self.assertEqual(a["hairpin"], "1")
        self.assertTrue(a["mac_local_unicast"])
        self.assertIn(("default", "10.249.%d.1" % self.x, None, None), a["routes"])
        # masquerade: an nft rule natively, iptables-nft chains by the plugin; both
        # leave the pod's own network alone and skip multicast.
        self.assertEqual(a["masq"][0], "nft")
        self.assertIn("ip daddr != 10.249.%d.0/24" % self.x, a["masq"][1])
        self.assertIn("ip daddr != 224.0.0.0/4", a["masq"][1])
        self.assertEqual(b["masq"][0], "iptables")
        self.assertIn("-d 10.249.%d.0/24" % self.x, b["masq"][1])
        self.assertIn("! -d 224.0.0.0/4", b["masq"][1])
        for on in (True, False):
            self.assertEqual(left[on]["peer_left"], False)
            self.assertEqual(left[on]["ipam_file_left"], False)
            self.assertIsNone(left[on]["masq_left"])
        self.assertEqual(left[True]["last_reserved"], a["ip"].encode())
        self.assertEqual(left[False]["last_reserved"], b["ip"].encode())

    def test_native_add_plugin_del(self):
        self.set_native(True)
        pid = self.runp()
        s = self.snapshot(pid)
        self.assertEqual(s["masq"][0], "nft")
        self.set_native(False)
        self.stopp(pid)
        g = self.gone(pid, s)
        self.assertFalse(g["peer_left"])
        self.assertFalse(g["ipam_file_left"])
        self.assertIsNone(g["masq_left"])

    def test_plugin_add_native_del(self):
        self.set_native(False)
        pid = self.runp()
        s = self.snapshot(pid)
        self.assertEqual(s["masq"][0], "iptables")
        chain = [l for l in sh("iptables-nft", "-t", "nat", "-S", "POSTROUTING").splitlines()
                 if "-s %s/32" % s["ip"] in l][0].split("-j ")[1].split()[0]
        self.set_native(True)
        self.stopp(pid)
        g = self.gone(pid, s)
        self.assertFalse(g["peer_left"])
        self.assertFalse(g["ipam_file_left"])
        self.assertIsNone(g["masq_left"])
        self.assertNotIn(chain, sh("iptables-nft", "-t", "nat", "-S"))

    def test_result_same_shape(self):
        """The cached CNI result (what PodSandboxStatus and a later DEL read)."""
        res = {}
        for on in (True, False):
            self.set_native(on)
            pid = self.runp()
            with open(os.path.join(self.d.root, "cni", pid + ".json")) as f:
                r = json.load(f)["result"]
            self.stopp(pid)
            for i in r["interfaces"]:
                i.pop("mac")
                if i["name"].startswith("veth"):
                    i["name"] = "veth"
                if "sandbox" in i:
                    i["sandbox"] = "NS"
            for ip in r["ips"]:
                ip["address"] = ip["address"].split(".")[-1].split("/")[1]
            res[on] = r
        self.assertEqual(res[True], res[False])


if __name__ == "__main__":
    main()
