/* Version round-trip latency over one connection, and with N concurrent
 * clients each on its own connection. Prints p50/p90/p99 and calls/s. */
#include <getopt.h>
#include <pthread.h>
#include <string.h>

#include "cri/cri.h"
#include "runtime/v1/api.pb-c.h"

struct worker {
        const char *endpoint;
        int calls;
        int64_t *lat; /* ns per call */
        int failed;
};

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

static void *run(void *arg)
{
        struct worker *w = arg;
        struct cri_client *c = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_new(w->endpoint, &c, &e) < 0) {
                w->failed = w->calls;
                return NULL;
        }
        const char *path = cri_method_path("Version");
        Runtime__V1__VersionRequest req = RUNTIME__V1__VERSION_REQUEST__INIT;
        /* Warm the connection up first: the first call pays for the HTTP/2 handshake. */
        for (int i = 0; i < 50; i++) {
                ProtobufCMessage *resp = NULL;
                if (cri_client_call(c, path, &req.base, &runtime__v1__version_response__descriptor, 5000,
                                    &resp, &e) == 0)
                        protobuf_c_message_free_unpacked(resp, NULL);
                err_clear(&e);
        }
        for (int i = 0; i < w->calls; i++) {
                ProtobufCMessage *resp = NULL;
                int64_t t0 = time_mono_ns();
                int r = cri_client_call(c, path, &req.base, &runtime__v1__version_response__descriptor, 5000,
                                        &resp, &e);
                w->lat[i] = time_mono_ns() - t0;
                if (r < 0) {
                        w->failed++;
                        err_clear(&e);
                } else {
                        protobuf_c_message_free_unpacked(resp, NULL);
                }
        }
        cri_client_free(c);
        return NULL;
}

static void report(const char *label, int64_t *lat, size_t n, int64_t wall_ns, int failed)
{
        qsort(lat, n, sizeof(*lat), cmp64);
        printf("%-28s calls=%zu failed=%d p50=%.1fus p90=%.1fus p99=%.1fus rate=%.0f/s\n", label, n, failed,
               (double)lat[n / 2] / 1e3, (double)lat[n * 90 / 100] / 1e3, (double)lat[n * 99 / 100] / 1e3,
               (double)n / ((double)wall_ns / 1e9));
}

int main(int argc, char **argv)
{
        const char *endpoint = "unix:///run/corral/corral.sock", *label = "runtime";
        int calls = 10000, clients = 8, c;
        while ((c = getopt(argc, argv, "r:n:c:l:")) != -1) {
                switch (c) {
                case 'r':
                        endpoint = optarg;
                        break;
                case 'n':
                        calls = atoi(optarg);
                        break;
                case 'c':
                        clients = atoi(optarg);
                        break;
                case 'l':
                        label = optarg;
                        break;
                default:
                        fprintf(stderr,
                                "usage: bench_version [-r endpoint] [-n calls] [-c clients] [-l label]\n");
                        return 2;
                }
        }
        if (calls <= 0 || clients <= 0)
                return 2;
        /* One connection, calls back to back. */
        struct worker one = {
                .endpoint = endpoint, .calls = calls, .lat = xcalloc((size_t)calls, sizeof(int64_t))};
        int64_t t0 = time_mono_ns();
        run(&one);
        cleanup_free char *l1 = xasprintf("%s 1 client", label);
        report(l1, one.lat, (size_t)calls, time_mono_ns() - t0, one.failed);
        free(one.lat);

        /* N clients at once, each on its own connection, calls/N each. */
        struct worker *ws = xcalloc((size_t)clients, sizeof(*ws));
        pthread_t *th = xcalloc((size_t)clients, sizeof(*th));
        int per = calls / clients;
        for (int i = 0; i < clients; i++)
                ws[i] = (struct worker){
                        .endpoint = endpoint, .calls = per, .lat = xcalloc((size_t)per, sizeof(int64_t))};
        t0 = time_mono_ns();
        for (int i = 0; i < clients; i++)
                pthread_create(&th[i], NULL, run, &ws[i]);
        int64_t *all = xcalloc((size_t)(per * clients), sizeof(int64_t));
        int failed = 0;
        for (int i = 0; i < clients; i++) {
                pthread_join(th[i], NULL);
                memcpy(all + (size_t)i * (size_t)per, ws[i].lat, (size_t)per * sizeof(int64_t));
                failed += ws[i].failed;
                free(ws[i].lat);
        }
        cleanup_free char *l2 = xasprintf("%s %d clients", label, clients);
        report(l2, all, (size_t)(per * clients), time_mono_ns() - t0, failed);
        free(all);
        free(ws);
        free(th);
        return 0;
}
