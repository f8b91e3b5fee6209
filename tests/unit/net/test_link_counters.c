/* net_links_counters: one RTM_GETLINK dump of a pinned netns lists every
 * link with its counters, and they move with traffic sent inside it. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "nettest.h"

static char *tmp, *root, *dir;

static void test_cleanup(void)
{
        if (dir)
                (void)net_ns_unpin(dir, NULL);
        if (root)
                release_ns_root(root);
        if (tmp)
                (void)rm_rf(tmp, NULL);
}

/* n UDP datagrams to 127.0.0.1 from inside `ns`. */
static int send_udp(const char *ns, int n)
{
        pid_t pid = fork();
        if (pid == 0) {
                int fd = open(ns, O_RDONLY | O_CLOEXEC);
                if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                        _exit(10);
                int s = socket(AF_INET, SOCK_DGRAM, 0);
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(9)};
                a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                for (int i = 0; i < n; i++)
                        if (sendto(s, "corral", 6, 0, (struct sockaddr *)&a, sizeof(a)) != 6)
                                _exit(11);
                _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static const struct net_link_counters *find(const struct net_link_counters *v, size_t n, const char *name)
{
        for (size_t i = 0; i < n; i++)
                if (strcmp(v[i].name, name) == 0)
                        return &v[i];
        return NULL;
}

int main(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        need_root();
        tmp = make_tmpdir();
        root = path_join(tmp, "ns");
        dir = path_join(root, "pod");
        struct net_ns_paths p;
        CHECK_OK(net_ns_pin(dir, CLONE_NEWNET, NULL, &p, e));
        const char *ns = p.net;
        CHECK_OK(net_link_set_up(ns, "lo", true, e));
        cleanup_free char *cmd =
                xasprintf("nsenter --net=%s ip link add corralc0 type veth peer name corralc1", ns);
        CHECK(system(cmd) == 0);

        struct net_link_counters *v = NULL;
        size_t n = 0;
        CHECK_OK(net_links_counters(ns, &v, &n, e));
        CHECK(n == 3);
        const struct net_link_counters *lo = find(v, n, "lo");
        CHECK(lo && lo->loopback && lo->up);
        const struct net_link_counters *c0 = find(v, n, "corralc0"), *c1 = find(v, n, "corralc1");
        CHECK(c0 && c1 && !c0->loopback && !c0->up);
        uint64_t tx0 = lo->st.tx_packets, rx0 = lo->st.rx_bytes;
        free(v);

        CHECK(send_udp(ns, 5) == 0);
        CHECK_OK(net_links_counters(ns, &v, &n, e));
        lo = find(v, n, "lo");
        CHECK(lo);
        printf("lo: tx %llu -> %llu packets, rx %llu -> %llu bytes\n", (unsigned long long)tx0,
               (unsigned long long)lo->st.tx_packets, (unsigned long long)rx0,
               (unsigned long long)lo->st.rx_bytes);
        CHECK(lo->st.tx_packets >= tx0 + 5 && lo->st.rx_bytes >= rx0 + 5 * 6);
        free(v);

        /* Ours (the host's) has at least lo too; a missing netns is an error. */
        CHECK_OK(net_links_counters(NULL, &v, &n, e));
        CHECK(find(v, n, "lo") != NULL);
        free(v);
        struct err e = ERR_INIT;
        CHECK(net_links_counters("/nonexistent/net", &v, &n, &e) < 0 && v == NULL && n == 0);
        err_clear(&e);

        net_ns_paths_free(&p);
        test_cleanup();
        printf("ok\n");
        return 0;
}
