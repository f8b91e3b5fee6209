/* hostPorts: a TCP listener in a pod (real bridge via CNI) is reached on the
 * bridge's host address and on 127.0.0.1 from the host, from another pod,
 * and from itself (hairpin); del removes every rule. Uses its own table
 * (corraltest), never the daemon's. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <sys/socket.h>

#include "nettest.h"

#define BRIDGE   "corraltest1"
#define SUBNET   "10.250.8.0/24"
#define GW       "10.250.8.1"
#define TABLE    "corraltest"
#define PLUGINS  "/usr/lib/cni"
#define POD_PORT 8080
#define HP_ANY   18080
#define HP_GW    18081

static char *tmp, *root, *confdir, *cachedir, *ipamdir;
static struct net_cni *cni;
static pid_t listener = -1;

static void test_cleanup(void)
{
        if (listener > 0) {
                kill(listener, SIGKILL);
                waitpid(listener, NULL, 0);
                listener = -1;
        }
        (void)net_hostport_flush(TABLE, NULL);
        const char *pods[] = {"pod-hp-a", "pod-hp-b"};
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

static char *pin(const char *pod)
{
        cleanup_free char *d = path_join(root, pod);
        struct net_ns_paths p;
        CHECK_OK(net_ns_pin(d, CLONE_NEWNET | CLONE_NEWUTS, pod, &p, e));
        char *net = steal_ptr(&p.net);
        net_ns_paths_free(&p);
        return net;
}

static void enter(const char *ns)
{
        int fd = open(ns, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || setns(fd, CLONE_NEWNET) < 0)
                _exit(126);
        close(fd);
}

/* A tiny server in the pod: answers "hello <peer>\n" to every connection. */
static void start_listener(const char *ns)
{
        int p[2];
        CHECK(pipe(p) == 0);
        listener = fork();
        if (listener == 0) {
                enter(ns);
                int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(POD_PORT)};
                setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
                if (bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 16) < 0)
                        _exit(1);
                (void)!write(p[1], "r", 1);
                for (;;) {
                        struct sockaddr_in peer;
                        socklen_t pl = sizeof(peer);
                        int c = accept(s, (struct sockaddr *)&peer, &pl);
                        if (c < 0)
                                continue;
                        char msg[64];
                        int n = snprintf(msg, sizeof(msg), "hello %s\n", inet_ntoa(peer.sin_addr));
                        (void)!write(c, msg, (size_t)n);
                        close(c);
                }
        }
        char c;
        close(p[1]);
        CHECK(read(p[0], &c, 1) == 1);
        close(p[0]);
}

/* Connect to ip:port from netns `ns` (NULL: the host); 0 when the pod's
 * greeting came back. The peer address the pod saw goes to stdout. */
static int probe(const char *ns, const char *ip, int port)
{
        pid_t pid = fork();
        if (pid == 0) {
                if (ns)
                        enter(ns);
                int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
                inet_pton(AF_INET, ip, &a.sin_addr);
                if (connect(s, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS)
                        _exit(2);
                struct pollfd pf = {s, POLLIN, 0};
                if (poll(&pf, 1, 2000) != 1)
                        _exit(3);
                char buf[64] = "";
                ssize_t n = read(s, buf, sizeof(buf) - 1);
                if (n <= 0 || !str_has_prefix(buf, "hello "))
                        _exit(4);
                printf("  %s -> %s:%d: pod saw %s", ns ? "pod" : "host", ip, port, buf);
                fflush(stdout);
                _exit(0);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 99;
}

static size_t count_rules(const char *pod)
{
        struct net_hostport_rule *r;
        size_t n;
        CHECK_OK(net_hostport_list(TABLE, pod, &r, &n, e));
        for (size_t i = 0; i < n; i++)
                CHECK(!pod || !strcmp(r[i].pod_id, pod));
        net_hostport_rules_free(r, n);
        return n;
}

static int nft_comments(void)
{
        /* An independent look with the nft binary, when it is there. */
        FILE *f = popen("nft list table inet " TABLE " 2>/dev/null | grep -c 'comment \"corral:pod-hp-a\"'",
                        "r");
        int n = -1;
        if (f) {
                if (fscanf(f, "%d", &n) != 1)
                        n = -1;
                pclose(f);
        }
        return n;
}

/* Another pod's rules coming and going while this one's are listed: the
 * kernel marks such a dump interrupted (EINTR) and it must be read again,
 * never failed (StopPodSandbox failed with "Interrupted system call"). */
static atomic_bool churn_stop;
static const char *churn_ip;

static void *churn(void *arg)
{
        (void)arg;
        struct net_port_mapping m = {NET_PROTO_TCP, NULL, 18099, 80};
        while (!atomic_load(&churn_stop)) {
                struct err ce = ERR_INIT;
                (void)net_hostport_add(TABLE, "pod-hp-churn", churn_ip, &m, 1, &ce);
                err_clear(&ce);
                (void)net_hostport_del(TABLE, "pod-hp-churn", &ce);
                err_clear(&ce);
                /* Pods come and go, not without a pause: a writer that
                 * never stops could interrupt every read. */
                nanosleep(&(struct timespec){0, 10000000}, NULL);
        }
        return NULL;
}

static void test_list_while_changing(const char *ip)
{
        char pod[32];
        struct net_port_mapping m = {NET_PROTO_TCP, NULL, 0, 80};
        /* Enough rules that a dump takes several reads. */
        for (int i = 0; i < 60; i++) {
                snprintf(pod, sizeof(pod), "pod-hp-fill%d", i);
                m.host_port = (uint16_t)(19000 + i);
                CHECK_OK(net_hostport_add(TABLE, pod, ip, &m, 1, e));
        }
        churn_ip = ip;
        atomic_store(&churn_stop, false);
        pthread_t th;
        CHECK(pthread_create(&th, NULL, churn, NULL) == 0);
        int failed = 0;
        for (int i = 0; i < 400; i++) {
                struct net_hostport_rule *r = NULL;
                size_t n = 0;
                struct err le = ERR_INIT;
                if (net_hostport_list(TABLE, "pod-hp-b", &r, &n, &le) < 0) {
                        if (!failed++)
                                printf("list while changing: %s\n", le.msg);
                        err_clear(&le);
                        continue;
                }
                if (n != 4 && !failed++)
                        printf("list while changing: %zu rules of pod-hp-b, want 4\n", n);
                net_hostport_rules_free(r, n);
        }
        atomic_store(&churn_stop, true);
        pthread_join(th, NULL);
        CHECK(failed == 0);
        for (int i = 0; i < 60; i++) {
                snprintf(pod, sizeof(pod), "pod-hp-fill%d", i);
                CHECK_OK(net_hostport_del(TABLE, pod, e));
        }
        CHECK_OK(net_hostport_del(TABLE, "pod-hp-churn", e));
}

int main(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        need_root();
        need_file(PLUGINS "/bridge");
        need_file(PLUGINS "/host-local");

        tmp = make_tmpdir();
        root = path_join(tmp, "ns");
        confdir = path_join(tmp, "net.d");
        cachedir = path_join(tmp, "cache");
        ipamdir = path_join(tmp, "ipam");
        CHECK_OK(mkdir_p(confdir, 0755, e));
        (void)net_link_delete(NULL, BRIDGE, NULL);
        (void)net_hostport_flush(TABLE, NULL);
        cleanup_free char *conf = path_join(confdir, "10-hp.conflist");
        cleanup_free char *text = xasprintf(
                "{\"cniVersion\":\"1.0.0\",\"name\":\"corraltest-hp\",\"plugins\":["
                "{\"type\":\"bridge\",\"bridge\":\"" BRIDGE "\",\"isGateway\":true,\"ipMasq\":false,"
                "\"hairpinMode\":true,\"ipam\":{\"type\":\"host-local\",\"ranges\":[[{\"subnet\":\"" SUBNET
                "\"}]],"
                "\"routes\":[{\"dst\":\"0.0.0.0/0\"}],\"dataDir\":\"%s\"}}]}",
                ipamdir);
        write_file(conf, text, 0644);
        struct net_cni_opts o = {.conf_dir = confdir, .cache_dir = cachedir};
        CHECK_OK((cni = net_cni_new(&o, e)) ? 0 : -1);

        char *nsa = pin("pod-hp-a"), *nsb = pin("pod-hp-b");
        struct net_cni_args aa = {.pod_id = "pod-hp-a", .netns = nsa},
                            ab = {.pod_id = "pod-hp-b", .netns = nsb};
        struct net_cni_result ra, rb;
        CHECK_OK(net_cni_add(cni, &aa, &ra, e));
        CHECK_OK(net_cni_add(cni, &ab, &rb, e));
        cleanup_strv char **ipa = net_cni_result_pod_ips(&ra, NULL);
        printf("pod-a %s\n", ipa[0]);
        start_listener(nsa);
        CHECK(probe(nsb, ipa[0], POD_PORT) == 0); /* the listener itself works */
        CHECK(probe(NULL, GW, HP_ANY) != 0);      /* nothing mapped yet */

        struct net_port_mapping m[] = {
                {NET_PROTO_TCP, NULL, HP_ANY, POD_PORT},
                {NET_PROTO_TCP, GW, HP_GW, POD_PORT},
                {NET_PROTO_TCP, "fd00::1", 18082, POD_PORT}, /* other family: skipped */
        };
        /* Bad input changes nothing. */
        struct err e = ERR_INIT;
        CHECK(net_hostport_add(TABLE, "pod-hp-a", "not-an-ip", m, 2, &e) < 0 && e.kind == ERR_INVALID);
        err_clear(&e);
        struct net_port_mapping bad = {NET_PROTO_TCP, NULL, 1, 0};
        CHECK(net_hostport_add(TABLE, "pod-hp-a", ipa[0], &bad, 1, &e) < 0 && e.kind == ERR_INVALID);
        err_clear(&e);
        CHECK(count_rules(NULL) == 0);

        CHECK_OK(net_hostport_add(TABLE, "pod-hp-a", ipa[0], m, ARRAY_SIZE(m), e));
        CHECK(count_rules("pod-hp-a") == 6); /* 2 mappings x (prerouting, output) + 2 masquerade */
        int seen = nft_comments();
        printf("nft shows %d rules commented corral:pod-hp-a\n", seen);
        CHECK(seen == -1 || seen == 0 || seen == 6); /* 0: nft missing or cannot parse */

        CHECK(probe(NULL, GW, HP_ANY) == 0);          /* host -> bridge address (output chain) */
        CHECK(probe(NULL, "127.0.0.1", HP_ANY) == 0); /* host -> localhost (route_localnet + masquerade) */
        CHECK(probe(NULL, GW, HP_GW) == 0);           /* host IP given */
        CHECK(probe(NULL, "127.0.0.1", HP_GW) != 0);  /* ... and only there */
        CHECK(probe(nsb, GW, HP_ANY) == 0);           /* another pod (prerouting) */
        CHECK(probe(nsa, GW, HP_ANY) == 0);           /* the pod itself (hairpin masquerade) */

        /* A second pod's rules are independent. */
        cleanup_strv char **ipb = net_cni_result_pod_ips(&rb, NULL);
        struct net_port_mapping mb = {NET_PROTO_UDP, NULL, 18090, 53};
        CHECK_OK(net_hostport_add(TABLE, "pod-hp-b", ipb[0], &mb, 1, e));
        CHECK(count_rules("pod-hp-b") == 4);
        test_list_while_changing(ipb[0]);
        CHECK(count_rules(NULL) == 10);

        CHECK_OK(net_hostport_del(TABLE, "pod-hp-a", e));
        CHECK(count_rules("pod-hp-a") == 0);
        CHECK(count_rules(NULL) == 4);
        CHECK(probe(NULL, GW, HP_ANY) != 0);
        CHECK_OK(net_hostport_del(TABLE, "pod-hp-a", e)); /* again */
        CHECK_OK(net_hostport_del(TABLE, "pod-hp-b", e));
        CHECK(count_rules(NULL) == 0);
        CHECK_OK(net_hostport_flush(TABLE, e));
        CHECK_OK(net_hostport_flush(TABLE, e));
        CHECK_OK(net_hostport_del(TABLE, "pod-hp-a", e)); /* no table at all */
        CHECK(system("nft list table inet " TABLE " >/dev/null 2>&1") != 0);

        net_cni_result_free(&ra);
        net_cni_result_free(&rb);
        free(nsa);
        free(nsb);
        test_cleanup();
        printf("ok\n");
        return 0;
}
