/* CNI ADD and DEL of one pod, alone: the native path (net/native.c)
 * against the plugins it stands for, on one config, N samples each, in
 * pinned namespaces as corrald makes them. Prints medians and p90.
 *   bench_cni -c CONF_DIR [-b BIN_DIR] [-n N] [-s STATE_DIR] [-m native|plugins] */
#include <getopt.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "net/net.h"
#include "util/util.h"

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* CPU time of this process and its reaped children, in ns: what a pod's
 * network costs, whatever the machine's load does to wall time. */
static int64_t cpu_ns(void)
{
        struct rusage a, b;
        getrusage(RUSAGE_SELF, &a);
        getrusage(RUSAGE_CHILDREN, &b);
        return (int64_t)(a.ru_utime.tv_sec + a.ru_stime.tv_sec + b.ru_utime.tv_sec + b.ru_stime.tv_sec) *
                       1000000000 +
               (int64_t)(a.ru_utime.tv_usec + a.ru_stime.tv_usec + b.ru_utime.tv_usec + b.ru_stime.tv_usec) *
                       1000;
}

static int run(const char *conf_dir, char *const *bins, const char *state, bool native, int n)
{
        struct err e = ERR_INIT;
        cleanup_free char *cache = path_join(state, native ? "cache-native" : "cache-plugins");
        struct net_cni_opts o = {
                .conf_dir = conf_dir, .bin_dirs = bins, .cache_dir = cache, .native = native};
        struct net_cni *c = net_cni_new(&o, &e);
        if (!c) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        int64_t *add = xcalloc((size_t)n, sizeof(int64_t)), *del = xcalloc((size_t)n, sizeof(int64_t));
        int done = 0;
        int64_t cpu0 = cpu_ns(), cpu_pin = 0;
        for (int i = 0; i < n; i++) {
                char id[ID_LEN + 1];
                id_generate(id);
                cleanup_free char *dir = xasprintf("%s/ns/%s", state, id);
                struct net_ns_paths p = {0};
                int64_t c0 = cpu_ns();
                int pr = net_ns_pin(dir, CLONE_NEWNET, NULL, &p, &e);
                cpu_pin += cpu_ns() - c0;
                if (pr < 0) {
                        fprintf(stderr, "pin: %s\n", e.msg);
                        break;
                }
                struct net_cni_args a = {
                        .pod_id = id, .netns = p.net, .k8s_namespace = "bench", .k8s_name = id};
                struct net_cni_result r;
                int64_t t0 = time_mono_ns();
                int ok = net_cni_add(c, &a, &r, &e);
                add[done] = time_mono_ns() - t0;
                if (ok < 0) {
                        fprintf(stderr, "ADD: %s\n", e.msg);
                        err_clear(&e);
                } else {
                        net_cni_result_free(&r);
                        t0 = time_mono_ns();
                        if (net_cni_del(c, &a, &e) < 0) {
                                fprintf(stderr, "DEL: %s\n", e.msg);
                                err_clear(&e);
                        }
                        del[done++] = time_mono_ns() - t0;
                }
                c0 = cpu_ns();
                (void)net_ns_unpin(dir, NULL);
                cpu_pin += cpu_ns() - c0;
                net_ns_paths_free(&p);
        }
        int64_t cpu = cpu_ns() - cpu0 - cpu_pin;
        qsort(add, (size_t)done, sizeof(int64_t), cmp64);
        qsort(del, (size_t)done, sizeof(int64_t), cmp64);
        if (done)
                printf("  CNI %-8s %d samples: ADD median %6.2f p90 %6.2f ms, DEL median %6.2f p90 %6.2f ms, "
                       "CPU %.2f ms per ADD+DEL\n",
                       native ? "native" : "plugins", done, (double)add[done / 2] / 1e6,
                       (double)add[done * 9 / 10] / 1e6, (double)del[done / 2] / 1e6,
                       (double)del[done * 9 / 10] / 1e6, (double)cpu / done / 1e6);
        free(add);
        free(del);
        net_cni_free(c);
        return done == n ? 0 : 1;
}

int main(int argc, char **argv)
{
        const char *conf = NULL, *state = "/tmp/corral-bench-cni";
        char *bins[] = {"/opt/cni/bin", "/usr/lib/cni", NULL};
        const char *mode = "";
        int n = 30, ch;
        while ((ch = getopt(argc, argv, "c:b:n:s:m:")) != -1) {
                switch (ch) {
                case 'c':
                        conf = optarg;
                        break;
                case 'b':
                        bins[0] = optarg;
                        bins[1] = NULL;
                        break;
                case 'n':
                        n = atoi(optarg);
                        break;
                case 's':
                        state = optarg;
                        break;
                case 'm':
                        mode = optarg;
                        break;
                default:
                        fprintf(stderr,
                                "usage: bench_cni -c conf_dir [-b bin_dir] [-n samples] [-s state_dir]\n");
                        return 2;
                }
        }
        if (!conf || n <= 0) {
                fprintf(stderr, "usage: bench_cni -c conf_dir [-b bin_dir] [-n samples] [-s state_dir]\n");
                return 2;
        }
        int r = 0;
        if (strcmp(mode, "plugins"))
                r |= run(conf, bins, state, true, n);
        if (strcmp(mode, "native"))
                r |= run(conf, bins, state, false, n);
        return r;
}
