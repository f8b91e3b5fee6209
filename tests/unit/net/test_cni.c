/* CNI with the real Debian plugins (bridge + host-local + loopback) on a
 * test bridge: two pods ping each other; DEL frees the IP and is
 * idempotent, also with the netns gone; status without a config; a failing
 * plugin's JSON error comes back and nothing stays; a plugin that hangs
 * times out. */
#include "nettest.h"

#define BRIDGE  "corraltest0"
#define SUBNET  "10.250.7.0/24"
#define PLUGINS "/usr/lib/cni"

static char *tmp, *root, *confdir, *cachedir, *bindir, *ipamdir;
static struct net_cni *cni;

static void test_cleanup(void)
{
        const char *pods[] = {"pod-a", "pod-b", "pod-c", "pod-d"};
        for (size_t i = 0; cni && i < ARRAY_SIZE(pods); i++) {
                struct net_cni_args a = {.pod_id = pods[i]};
                (void)net_cni_del(cni, &a, NULL);
        }
        for (size_t i = 0; root && i < ARRAY_SIZE(pods); i++) {
                cleanup_free char *d = path_join(root, pods[i]);
                (void)net_ns_unpin(d, NULL);
        }
        (void)net_link_delete(NULL, BRIDGE, NULL);
        if (root)
                release_ns_root(root);
        if (tmp)
                (void)rm_rf(tmp, NULL);
        net_cni_free(cni);
        cni = NULL;
}

static void write_conf(const char *name, const char *extra_plugin)
{
        cleanup_free char *path = path_join(confdir, name);
        cleanup_free char *text = xasprintf(
                "{\"cniVersion\":\"1.0.0\",\"name\":\"corraltest\",\"plugins\":["
                "{\"type\":\"bridge\",\"bridge\":\"" BRIDGE "\",\"isGateway\":true,\"ipMasq\":false,"
                "\"hairpinMode\":true,\"capabilities\":{\"ipRanges\":true},"
                "\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"" SUBNET "\"}]],"
                "\"routes\":[{\"dst\":\"0.0.0.0/0\"}],\"dataDir\":\"%s\"}},"
                "{\"type\":\"loopback\"}%s]}",
                ipamdir, extra_plugin ? extra_plugin : "");
        write_file(path, text, 0644);
}

static char *pin(const char *pod)
{
        cleanup_free char *d = path_join(root, pod);
        struct net_ns_paths p;
        CHECK_OK(net_ns_pin(d, CLONE_NEWNET | CLONE_NEWUTS, pod, &p, e));
        char *net = steal_ptr(&p.net);
        net_ns_paths_free(&p);
        return net;
}

static bool ip_leased(const char *ip)
{
        cleanup_free char *p = xasprintf("%s/corraltest/%s", ipamdir, ip);
        return access(p, F_OK) == 0;
}

static const char *host_veth(const struct net_cni_result *r)
{
        for (size_t i = 0; i < r->n_ifaces; i++)
                if (!r->ifaces[i].sandbox && strcmp(r->ifaces[i].name, BRIDGE))
                        return r->ifaces[i].name;
        return NULL;
}

int main(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        need_root();
        need_file(PLUGINS "/bridge");
        need_file(PLUGINS "/host-local");
        need_file(PLUGINS "/loopback");
        need_file("/bin/busybox");

        tmp = make_tmpdir();
        root = path_join(tmp, "ns");
        confdir = path_join(tmp, "net.d");
        cachedir = path_join(tmp, "cache");
        bindir = path_join(tmp, "bin");
        ipamdir = path_join(tmp, "ipam");
        CHECK_OK(mkdir_p(confdir, 0755, e));
        CHECK_OK(mkdir_p(bindir, 0755, e));
        (void)net_link_delete(NULL, BRIDGE, NULL); /* a leftover of a killed run */

        char *bins[] = {bindir, PLUGINS, NULL};
        struct net_cni_opts o = {.conf_dir = confdir, .bin_dirs = bins, .cache_dir = cachedir};
        CHECK_OK((cni = net_cni_new(&o, e)) ? 0 : -1);

        /* No config: not ready, NoCNIConfig. */
        struct net_cni_status st;
        net_cni_status(cni, &st);
        CHECK(!st.ready && st.reason && !strcmp(st.reason, "NoCNIConfig") && st.message);
        printf("no config: %s: %s\n", st.reason, st.message);
        net_cni_status_free(&st);

        /* A config whose plugin does not exist: not ready, says which. */
        cleanup_free char *bogus = path_join(confdir, "05-bogus.conf");
        write_file(bogus, "{\"cniVersion\":\"1.0.0\",\"name\":\"x\",\"type\":\"no-such-plugin\"}", 0644);
        net_cni_status(cni, &st);
        CHECK(!st.ready && !strcmp(st.reason, "NoCNIConfig") && strstr(st.message, "no-such-plugin"));
        net_cni_status_free(&st);
        unlink(bogus);

        /* An invalid file first by name is skipped; the next one is used. */
        cleanup_free char *broken = path_join(confdir, "00-broken.conflist");
        write_file(broken, "{ not json", 0644);
        write_conf("10-test.conflist", NULL);
        net_cni_status(cni, &st);
        CHECK(st.ready && !strcmp(st.net_name, "corraltest"));
        CHECK(str_has_suffix(st.conf_file, "10-test.conflist"));
        net_cni_status_free(&st);

        /* Two pods on the bridge. */
        char *nsa = pin("pod-a"), *nsb = pin("pod-b");
        struct net_cni_args aa = {.pod_id = "pod-a",
                                  .netns = nsa,
                                  .k8s_namespace = "default",
                                  .k8s_name = "a",
                                  .k8s_uid = "uid-a"};
        struct net_cni_args ab = {.pod_id = "pod-b",
                                  .netns = nsb,
                                  .k8s_namespace = "default",
                                  .k8s_name = "b",
                                  .k8s_uid = "uid-b"};
        struct net_cni_result ra, rb;
        CHECK_OK(net_cni_add(cni, &aa, &ra, e));
        CHECK_OK(net_cni_add(cni, &ab, &rb, e));
        cleanup_strv char **ipa = net_cni_result_pod_ips(&ra, NULL);
        cleanup_strv char **ipb = net_cni_result_pod_ips(&rb, NULL);
        CHECK(ipa[0] && ipb[0] && strcmp(ipa[0], ipb[0]));
        CHECK(str_has_prefix(ipa[0], "10.250.7.") && str_has_prefix(ipb[0], "10.250.7."));
        CHECK(ra.n_ips == 1 && ra.ips[0].gateway && !strcmp(ra.ips[0].gateway, "10.250.7.1"));
        printf("pod-a %s pod-b %s (host veth %s)\n", ipa[0], ipb[0], host_veth(&ra));
        CHECK(ip_leased(ipa[0]) && ip_leased(ipb[0]));

        /* eth0 inside pod-a has the address. */
        struct net_link_info li;
        CHECK_OK(net_link_info(nsa, "eth0", &li, e));
        CHECK(li.up && li.n_addrs >= 1);
        bool found = false;
        for (size_t i = 0; i < li.n_addrs; i++)
                found |= !strcmp(li.addrs[i].addr, ipa[0]);
        CHECK(found);
        net_link_info_free(&li);

        /* They reach each other by IP. */
        CHECK(ping_from(nsa, ipb[0]) == 0);
        CHECK(ping_from(nsb, ipa[0]) == 0);

        /* CHECK passes; the cached result survives a new handle (restart). */
        CHECK_OK(net_cni_check(cni, &aa, e));
        net_cni_free(cni);
        CHECK_OK((cni = net_cni_new(&o, e)) ? 0 : -1);
        struct net_cni_result cached;
        CHECK_OK(net_cni_cached_result(cni, "pod-a", &cached, e));
        cleanup_strv char **ipc = net_cni_result_pod_ips(&cached, NULL);
        CHECK(!strcmp(ipc[0], ipa[0]));
        net_cni_result_free(&cached);

        /* DEL removes the veth and frees the IP; DEL again is fine. */
        cleanup_free char *veth_a = xstrdup(host_veth(&ra));
        CHECK(veth_a && net_link_index(NULL, veth_a, NULL) > 0);
        struct net_cni_args da = {.pod_id = "pod-a", .netns = nsa};
        CHECK_OK(net_cni_del(cni, &da, e));
        struct err e = ERR_INIT;
        CHECK(net_link_index(NULL, veth_a, &e) < 0 && e.kind == ERR_NOT_FOUND);
        err_clear(&e);
        CHECK(net_link_index(nsa, "eth0", &e) < 0 && e.kind == ERR_NOT_FOUND);
        err_clear(&e);
        CHECK(!ip_leased(ipa[0]));
        CHECK_OK(net_cni_del(cni, &da, e));
        CHECK(net_cni_check(cni, &aa, &e) < 0 && e.kind == ERR_NOT_FOUND);
        err_clear(&e);

        /* DEL after the netns is gone (unpinned first, as after a reboot). */
        cleanup_free char *dirb = path_join(root, "pod-b");
        CHECK_OK(net_ns_unpin(dirb, e));
        struct net_cni_args db = {.pod_id = "pod-b", .netns = nsb};
        CHECK_OK(net_cni_del(cni, &db, e));
        CHECK(!ip_leased(ipb[0]));
        CHECK_OK(net_cni_del(cni, &db, e));

        /* A plugin failing in the chain: its JSON error comes back, and the
         * bridge's part is undone (no lease, no cache). */
        cleanup_free char *fake = path_join(bindir, "fail");
        write_file(fake,
                   "#!/bin/sh\ncat >/dev/null\n"
                   "if [ \"$CNI_COMMAND\" = ADD ]; then\n"
                   "  echo '{\"cniVersion\":\"1.0.0\",\"code\":7,\"msg\":\"fake failure\",\"details\":\"on "
                   "purpose\"}'\n"
                   "  exit 1\nfi\nexit 0\n",
                   0755);
        write_conf("10-test.conflist", ",{\"type\":\"fail\"}");
        char *nsc = pin("pod-c");
        struct net_cni_args ac = {.pod_id = "pod-c", .netns = nsc};
        struct net_cni_result rc;
        CHECK(net_cni_add(cni, &ac, &rc, &e) < 0);
        printf("failing plugin: %s\n", e.msg);
        CHECK(strstr(e.msg, "fake failure") && strstr(e.msg, "on purpose") && strstr(e.msg, "code 7") &&
              strstr(e.msg, "fail ADD"));
        err_clear(&e);
        CHECK(net_link_index(nsc, "eth0", &e) < 0);
        err_clear(&e);
        cleanup_dir DIR *d = opendir(cachedir);
        struct dirent *de;
        int cached_files = 0;
        while ((de = readdir(d)))
                cached_files += de->d_name[0] != '.';
        CHECK(cached_files == 0);
        cleanup_free char *leases = xasprintf("%s/corraltest", ipamdir);
        cleanup_dir DIR *ld = opendir(leases);
        int lease_files = 0;
        while (ld && (de = readdir(ld)))
                lease_files += strchr(de->d_name, '.') && str_has_prefix(de->d_name, "10.250.");
        CHECK(lease_files == 0);

        /* A hanging plugin times out. */
        cleanup_free char *sleeper = path_join(bindir, "sleeper");
        write_file(sleeper, "#!/bin/sh\n[ \"$CNI_COMMAND\" = DEL ] && exit 0\nexec sleep 30\n", 0755);
        cleanup_free char *sconf = path_join(confdir, "10-test.conflist");
        write_file(sconf, "{\"cniVersion\":\"1.0.0\",\"name\":\"slow\",\"plugins\":[{\"type\":\"sleeper\"}]}",
                   0644);
        struct net_cni_opts o2 = o;
        o2.timeout_ms = 300;
        struct net_cni *slow;
        CHECK_OK((slow = net_cni_new(&o2, e)) ? 0 : -1);
        int64_t t0 = time_mono_ns();
        CHECK(net_cni_add(slow, &ac, &rc, &e) < 0 && e.kind == ERR_DEADLINE);
        CHECK(time_mono_ns() - t0 < 5000000000LL);
        cleanup_free char *cfile = path_join(cachedir, "pod-c.json");
        CHECK(access(cfile, F_OK) != 0); /* the undo DEL ran and dropped the cache */
        printf("hanging plugin: %s\n", e.msg);
        err_clear(&e);
        net_cni_free(slow);
        unlink(sconf); /* cleanup must not run the sleeper with the long timeout */

        net_cni_result_free(&ra);
        net_cni_result_free(&rb);
        free(nsa);
        free(nsb);
        free(nsc);
        test_cleanup();
        CHECK(net_link_index(NULL, BRIDGE, NULL) < 0);
        printf("ok\n");
        return 0;
}
