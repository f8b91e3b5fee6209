/* host-local's on-disk format as net/native_ipam.c writes and reads it:
 * the files, round robin, the gateway skipped, range sets, release by id
 * (and by the older id-only content), duplicates, exhaustion; and, where
 * the plugin is installed, host-local and corral taking turns on one dir. */
#include <yajl/yajl_tree.h>

#include "net/native-internal.h"
#include "nettest.h"

static char tmp[] = "/tmp/corral-ipam-XXXXXX";

static void test_cleanup(void)
{
        if (tmp[0] && strchr(tmp, 'X') == NULL)
                (void)rm_rf(tmp, NULL);
}

static char *slurp(const char *dir, const char *name)
{
        cleanup_free char *p = path_join(dir, name);
        char *buf = NULL;
        size_t len;
        if (file_read_all(p, &buf, &len, 4096, NULL) < 0)
                return NULL;
        return buf;
}

static void parse(const char *json, const char *pod_cidr, struct native_ipam *out)
{
        cleanup_free char *why = NULL;
        yajl_val v = json_parse(json, strlen(json), "ipam", NULL);
        CHECK(v);
        CHECK_OK(native_ipam_parse(v, "net1", pod_cidr, out, &why, e));
        yajl_tree_free(v);
}

static void check_file(const char *dir, const char *ip, const char *want)
{
        cleanup_free char *got = slurp(dir, ip);
        if (!got || strcmp(got, want)) {
                fprintf(stderr, "file %s: got %s, want %s\n", ip, got ? got : "(none)", want);
                CHECK(0);
        }
}

static const char *ipstr(uint32_t ip)
{
        static char s[4][16];
        static int i;
        i = (i + 1) % 4;
        native_ip_str(ip, s[i]);
        return s[i];
}

/* Run the real host-local with `cmd` for `id`; its stdout in *out. */
static int host_local(const char *cmd, const char *conf, const char *id, char **out)
{
        char in[] = "/tmp/corral-ipam-in-XXXXXX";
        int fd = mkstemp(in);
        CHECK(fd >= 0);
        CHECK(fd_write_all(fd, conf, strlen(conf)) == 0);
        close(fd);
        cleanup_free char *sh =
                xasprintf("CNI_COMMAND=%s CNI_CONTAINERID=%s CNI_NETNS=/dev/null CNI_IFNAME=eth0 "
                          "CNI_PATH=/usr/lib/cni /usr/lib/cni/host-local < %s",
                          cmd, id, in);
        FILE *p = popen(sh, "r");
        CHECK(p);
        struct sbuf b = {0};
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), p)) > 0)
                sbuf_append(&b, buf, n);
        int st = pclose(p);
        unlink(in);
        sbuf_putc(&b, '\0');
        *out = sbuf_steal(&b);
        return st;
}

int main(void)
{
        struct native_ipam c;
        struct native_ip ip[2];
        struct err e = ERR_INIT;

        CHECK(mkdtemp(tmp));
        cleanup_free char *conf = xasprintf(
                "{\"type\":\"host-local\",\"dataDir\":\"%s\",\"ranges\":[[{\"subnet\":\"10.9.0.0/24\","
                "\"rangeStart\":\"10.9.0.1\",\"rangeEnd\":\"10.9.0.4\"}]],\"routes\":[{\"dst\":\"0.0.0.0/"
                "0\"}]}",
                tmp);
        parse(conf, NULL, &c);
        cleanup_free char *dir = path_join(tmp, "net1");
        CHECK(!strcmp(c.dir, dir));
        CHECK(c.n_sets == 1 && c.sets[0].n == 1 && c.n_routes == 1);
        CHECK(c.sets[0].r[0].gw == ((10u << 24) | (9u << 16) | 1));

        /* .1 is the gateway: the first address is .2, in host-local's format. */
        CHECK_OK(native_ipam_alloc(&c, "pod-a", "eth0", ip, e));
        CHECK(!strcmp(ipstr(ip[0].addr), "10.9.0.2") && ip[0].prefix == 24);
        CHECK(!strcmp(ipstr(ip[0].gw), "10.9.0.1"));
        check_file(dir, "10.9.0.2", "pod-a\r\neth0");
        check_file(dir, "last_reserved_ip.0", "10.9.0.2");
        cleanup_free char *lockp = path_join(dir, "lock");
        CHECK(access(lockp, F_OK) == 0);

        /* The same id and ifname again: host-local refuses a second address. */
        CHECK(native_ipam_alloc(&c, "pod-a", "eth0", ip, &e) < 0 && e.kind == ERR_EXISTS);
        err_clear(&e);

        CHECK_OK(native_ipam_alloc(&c, "pod-b", "eth0", ip, e));
        CHECK(!strcmp(ipstr(ip[0].addr), "10.9.0.3"));
        /* Round robin: releasing .2 does not make it next. */
        CHECK_OK(native_ipam_release(c.dir, "pod-a", "eth0", e));
        CHECK(slurp(dir, "10.9.0.2") == NULL);
        CHECK_OK(native_ipam_alloc(&c, "pod-c", "eth0", ip, e));
        CHECK(!strcmp(ipstr(ip[0].addr), "10.9.0.4"));
        /* Past rangeEnd it wraps to rangeStart, skips the gateway, finds .2. */
        CHECK_OK(native_ipam_alloc(&c, "pod-d", "eth0", ip, e));
        CHECK(!strcmp(ipstr(ip[0].addr), "10.9.0.2"));
        /* Full. */
        CHECK(native_ipam_alloc(&c, "pod-e", "eth0", ip, &e) < 0 && e.kind == ERR_EXHAUSTED);
        err_clear(&e);

        /* An older host-local wrote just the id: released when nothing else matches. */
        CHECK_OK(native_ipam_release(c.dir, "pod-b", "eth0", e));
        cleanup_free char *old = path_join(dir, "10.9.0.3");
        CHECK(file_write_atomic(old, "pod-old\n", 8, 0644, NULL) == 0);
        CHECK_OK(native_ipam_release(c.dir, "pod-old", "eth1", e));
        CHECK(access(old, F_OK) != 0);
        /* Another ifname of the same id is not released. */
        CHECK_OK(native_ipam_release(c.dir, "pod-c", "eth1", e));
        check_file(dir, "10.9.0.4", "pod-c\r\neth0");
        native_ipam_free(&c);

        /* Two range sets: one address from each, last_reserved_ip.<set>;
         * the legacy top-level subnet is a set of its own, first. */
        cleanup_free char *two =
                xasprintf("{\"type\":\"host-local\",\"dataDir\":\"%s\",\"subnet\":\"10.10.0.0/30\","
                          "\"ranges\":[[{\"subnet\":\"10.11.0.0/29\",\"gateway\":\"10.11.0.6\"}]]}",
                          tmp);
        parse(two, NULL, &c);
        CHECK(c.n_sets == 2);
        CHECK_OK(native_ipam_alloc(&c, "pod-x", "eth0", ip, e));
        CHECK(!strcmp(ipstr(ip[0].addr), "10.10.0.2") && ip[0].prefix == 30);
        CHECK(!strcmp(ipstr(ip[1].addr), "10.11.0.1") && !strcmp(ipstr(ip[1].gw), "10.11.0.6"));
        check_file(dir, "last_reserved_ip.1", "10.11.0.1");
        native_ipam_free(&c);

        /* ipRanges (the pod CIDR from kubelet) replaces the ranges. */
        parse(conf, "10.12.0.0/16", &c);
        CHECK(c.n_sets == 1 && c.sets[0].r[0].prefix == 16);
        CHECK(c.sets[0].r[0].end == ((10u << 24) | (12u << 16) | 0xfffe));
        native_ipam_free(&c);

        /* What runs the plugins instead: IPv6, resolvConf. */
        const char *other[] = {
                "{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"fd00::/64\"}]]}",
                "{\"type\":\"host-local\",\"subnet\":\"10.0.0.0/24\",\"resolvConf\":\"/etc/resolv.conf\"}",
        };
        for (size_t i = 0; i < ARRAY_SIZE(other); i++) {
                cleanup_free char *why = NULL;
                yajl_val v = json_parse(other[i], strlen(other[i]), "ipam", NULL);
                CHECK(native_ipam_parse(v, "net1", NULL, &c, &why, &e) == 1 && why);
                yajl_tree_free(v);
        }
        /* A network with no room is a config error, as host-local says. */
        {
                cleanup_free char *why = NULL;
                const char *small = "{\"type\":\"host-local\",\"subnet\":\"10.0.0.0/31\"}";
                yajl_val v = json_parse(small, strlen(small), "ipam", NULL);
                CHECK(native_ipam_parse(v, "net1", NULL, &c, &why, &e) < 0);
                err_clear(&e);
                yajl_tree_free(v);
        }

        /* Taking turns with the real host-local on one dir. */
        if (access("/usr/lib/cni/host-local", X_OK) == 0) {
                cleanup_free char *d2 = path_join(tmp, "turns");
                cleanup_free char *ipam = xasprintf("{\"type\":\"host-local\",\"dataDir\":\"%s\",\"ranges\":["
                                                    "[{\"subnet\":\"10.13.0.0/24\"}]]}",
                                                    d2);
                cleanup_free char *plugin_conf = xasprintf(
                        "{\"cniVersion\":\"1.0.0\",\"name\":\"net1\",\"type\":\"bridge\",\"ipam\":%s}", ipam);
                parse(ipam, NULL, &c);
                cleanup_free char *nd = path_join(d2, "net1");
                CHECK_OK(native_ipam_alloc(&c, "ours-1", "eth0", ip, e));
                CHECK(!strcmp(ipstr(ip[0].addr), "10.13.0.2"));
                cleanup_free char *out = NULL;
                CHECK(host_local("ADD", plugin_conf, "theirs-1", &out) == 0);
                CHECK(strstr(out, "\"10.13.0.3/24\""));
                check_file(nd, "10.13.0.3", "theirs-1\r\neth0");
                CHECK_OK(native_ipam_alloc(&c, "ours-2", "eth0", ip, e));
                CHECK(!strcmp(ipstr(ip[0].addr), "10.13.0.4"));
                /* Each releases what the other took. */
                free(out);
                out = NULL;
                CHECK(host_local("DEL", plugin_conf, "ours-1", &out) == 0);
                CHECK(slurp(nd, "10.13.0.2") == NULL);
                CHECK_OK(native_ipam_release(c.dir, "theirs-1", "eth0", e));
                CHECK(slurp(nd, "10.13.0.3") == NULL);
                free(out);
                out = NULL;
                /* host-local refuses a duplicate of ours as we refuse one of its. */
                CHECK(host_local("ADD", plugin_conf, "ours-2", &out) != 0);
                native_ipam_free(&c);
        } else {
                printf("host-local not installed: turns with the plugin not tested\n");
        }
        test_cleanup();
        printf("ok\n");
        return 0;
}
