/* Pod files: hostname, hosts with the pod IPs, resolv.conf from the DNS
 * config or the host's; written atomically into the pod dir. */
#include "nettest.h"

static char *tmp;

static void test_cleanup(void)
{
        if (tmp)
                (void)rm_rf(tmp, NULL);
}

static char *slurp(const char *dir, const char *name)
{
        cleanup_free char *p = path_join(dir, name);
        char *buf = NULL;
        size_t len;
        CHECK_OK(file_read_all(p, &buf, &len, 0, e));
        return buf;
}

int main(void)
{
        tmp = make_tmpdir();
        cleanup_free char *dir = path_join(tmp, "pod1");
        cleanup_free char *hostresolv = path_join(tmp, "host-resolv.conf");
        write_file(hostresolv, "nameserver 192.0.2.53\n", 0644);

        char *ips[] = {"10.88.0.5", "fd00::5", NULL};
        char *servers[] = {"10.96.0.10", NULL};
        char *searches[] = {"default.svc.cluster.local", "svc.cluster.local", "cluster.local", NULL};
        char *options[] = {"ndots:5", "timeout:2", NULL};
        struct net_dns dns = {servers, searches, options};
        struct net_podfiles p = {.hostname = "web-0", .pod_ips = ips, .dns = &dns, .host_resolv = hostresolv};
        CHECK_OK(net_podfiles_write(dir, &p, e));

        cleanup_free char *hn = slurp(dir, "hostname");
        CHECK(!strcmp(hn, "web-0\n"));
        cleanup_free char *hosts = slurp(dir, "hosts");
        CHECK(strstr(hosts, "127.0.0.1\tlocalhost\n") &&
              strstr(hosts, "::1\tlocalhost ip6-localhost ip6-loopback\n"));
        CHECK(strstr(hosts, "10.88.0.5\tweb-0\n") && strstr(hosts, "fd00::5\tweb-0\n"));
        cleanup_free char *rc = slurp(dir, "resolv.conf");
        CHECK(!strcmp(rc, "nameserver 10.96.0.10\n"
                          "search default.svc.cluster.local svc.cluster.local cluster.local\n"
                          "options ndots:5 timeout:2\n"));

        /* No DNS config: the host's resolv.conf, as is. */
        struct net_podfiles q = {.hostname = "web-1", .host_resolv = hostresolv};
        CHECK_OK(net_podfiles_write(dir, &q, e));
        cleanup_free char *rc2 = slurp(dir, "resolv.conf");
        CHECK(!strcmp(rc2, "nameserver 192.0.2.53\n"));
        cleanup_free char *hosts2 = slurp(dir, "hosts");
        CHECK(!strstr(hosts2, "web-1")); /* no IP, no line */

        /* hostNetwork: the host's hosts file. */
        cleanup_free char *hosthosts = path_join(tmp, "host-hosts");
        write_file(hosthosts, "127.0.0.1 localhost\n192.0.2.2 node1\n", 0644);
        struct net_podfiles h = {.hostname = "node1",
                                 .host_network = true,
                                 .host_hosts = hosthosts,
                                 .host_resolv = hostresolv};
        CHECK_OK(net_podfiles_write(dir, &h, e));
        cleanup_free char *hosts3 = slurp(dir, "hosts");
        CHECK(!strcmp(hosts3, "127.0.0.1 localhost\n192.0.2.2 node1\n"));

        /* Bad input: a server with a newline would inject lines; refused. */
        char *evil[] = {"1.1.1.1\nnameserver 6.6.6.6", NULL};
        struct net_dns bad = {evil, NULL, NULL};
        struct net_podfiles b = {.hostname = "x", .dns = &bad};
        struct err e = ERR_INIT;
        CHECK(net_podfiles_write(dir, &b, &e) < 0 && e.kind == ERR_INVALID);
        err_clear(&e);
        struct net_podfiles b2 = {.hostname = "a/b"};
        CHECK(net_podfiles_write(dir, &b2, &e) < 0 && e.kind == ERR_INVALID);
        err_clear(&e);
        cleanup_free char *rc3 = slurp(dir, "resolv.conf"); /* untouched */
        CHECK(!strcmp(rc3, "nameserver 192.0.2.53\n"));

        test_cleanup();
        printf("ok\n");
        return 0;
}
