/* Prometheus metrics on `metrics.address` (disabled when empty): per-method
 * call counts by status code and latency histograms, pods, containers and
 * images by state, SQL statements run, the daemon's RSS and uptime. Counters
 * are lock-free; a scrape reads corrald's memory, not the store. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <string.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "image/image.h"
#include "store/store.h"

#define NCODES 17
static const double bounds[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                0.25,   0.5,     1,      2.5,   5,      10,    30,   60,    300};
#define NBUCKETS (sizeof(bounds) / sizeof(bounds[0]))

struct method_stats {
        atomic_ullong calls[NCODES];
        atomic_ullong buckets[NBUCKETS]; /* non-cumulative; summed at scrape */
        atomic_ullong sum_ns;
        atomic_ullong count;
};

struct cri_metrics {
        struct method_stats *m;
        size_t n;
        const struct cri_method *methods;
        struct MHD_Daemon *http;
};

void cri_metrics_observe(struct cri_daemon *d, const struct cri_method *m, int code, int64_t ns)
{
        struct cri_metrics *mx = d->metrics;
        if (mx == NULL || m == NULL)
                return;
        size_t i = (size_t)(m - mx->methods);
        if (i >= mx->n)
                return;
        struct method_stats *s = &mx->m[i];
        atomic_fetch_add(&s->calls[code >= 0 && code < NCODES ? code : ERR_UNKNOWN], 1);
        double sec = (double)ns / 1e9;
        size_t b = 0;
        while (b < NBUCKETS && sec > bounds[b])
                b++;
        if (b < NBUCKETS)
                atomic_fetch_add(&s->buckets[b], 1);
        atomic_fetch_add(&s->sum_ns, (unsigned long long)(ns > 0 ? ns : 0));
        atomic_fetch_add(&s->count, 1);
}

static uint64_t rss_bytes(void)
{
        cleanup_free char *buf = NULL;
        if (file_read_all("/proc/self/statm", &buf, NULL, 4096, NULL) < 0)
                return 0;
        unsigned long size = 0, rss = 0;
        if (sscanf(buf, "%lu %lu", &size, &rss) != 2)
                return 0;
        return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static void objects(struct cri_daemon *d, struct sbuf *b)
{
        struct store_pod *pods = NULL;
        size_t np = 0;
        if (model_pod_list(d->model, &pods, &np, NULL) == 0) {
                size_t ready = 0;
                for (size_t i = 0; i < np; i++)
                        ready += pods[i].state == STORE_POD_READY;
                sbuf_puts(b, "# HELP corral_pods Pod sandboxes by state.\n# TYPE corral_pods gauge\n");
                sbuf_printf(b, "corral_pods{state=\"ready\"} %zu\ncorral_pods{state=\"notready\"} %zu\n",
                            ready, np - ready);
                store_pods_free(pods, np);
        }
        struct store_container *ctrs = NULL;
        size_t nc = 0;
        if (model_ctr_list(d->model, NULL, &ctrs, &nc, NULL) == 0) {
                size_t by[4] = {0};
                for (size_t i = 0; i < nc; i++)
                        if (ctrs[i].state >= 0 && ctrs[i].state < 4)
                                by[ctrs[i].state]++;
                static const char *const names[] = {"created", "running", "exited", "unknown"};
                sbuf_puts(b,
                          "# HELP corral_containers Containers by state.\n# TYPE corral_containers gauge\n");
                for (int i = 0; i < 4; i++)
                        sbuf_printf(b, "corral_containers{state=\"%s\"} %zu\n", names[i], by[i]);
                store_ctrs_free(ctrs, nc);
        }
        if (d->images)
                sbuf_printf(b,
                            "# HELP corral_images Images in the store.\n# TYPE corral_images "
                            "gauge\ncorral_images %zu\n",
                            img_count(d->images));
        /* What answering from memory saves shows here: list and status calls add nothing. */
        sbuf_printf(b,
                    "# HELP corral_store_statements_total SQL statements run on the store since corrald "
                    "started.\n# TYPE corral_store_statements_total counter\n"
                    "corral_store_statements_total %llu\n",
                    (unsigned long long)store_statements(d->store));
}

char *cri_metrics_text(struct cri_daemon *d)
{
        struct cri_metrics *mx = d->metrics;
        struct sbuf b = {0};
        sbuf_printf(&b,
                    "# HELP corral_build_info The running corrald.\n# TYPE corral_build_info gauge\n"
                    "corral_build_info{version=\"%s\"} 1\n",
                    CORRAL_VERSION);
        sbuf_printf(&b,
                    "# HELP corral_uptime_seconds Seconds since corrald started.\n"
                    "# TYPE corral_uptime_seconds gauge\ncorral_uptime_seconds %.3f\n",
                    (double)(time_now_ns() - d->started_ns) / 1e9);
        sbuf_printf(&b,
                    "# HELP process_resident_memory_bytes Resident memory of corrald.\n"
                    "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes %llu\n",
                    (unsigned long long)rss_bytes());
        if (mx) {
                sbuf_puts(&b, "# HELP corral_grpc_requests_total CRI calls by method and status code.\n"
                              "# TYPE corral_grpc_requests_total counter\n");
                for (size_t i = 0; i < mx->n; i++)
                        for (int c = 0; c < NCODES; c++) {
                                unsigned long long v = atomic_load(&mx->m[i].calls[c]);
                                if (v)
                                        sbuf_printf(&b,
                                                    "corral_grpc_requests_total{method=\"%s\",code=\"%s\"} "
                                                    "%llu\n",
                                                    mx->methods[i].name, err_kind_name((enum err_kind)c), v);
                        }
                sbuf_puts(&b, "# HELP corral_grpc_request_duration_seconds CRI call latency.\n"
                              "# TYPE corral_grpc_request_duration_seconds histogram\n");
                for (size_t i = 0; i < mx->n; i++) {
                        unsigned long long count = atomic_load(&mx->m[i].count);
                        if (count == 0)
                                continue;
                        const char *name = mx->methods[i].name;
                        unsigned long long cum = 0;
                        for (size_t k = 0; k < NBUCKETS; k++) {
                                cum += atomic_load(&mx->m[i].buckets[k]);
                                sbuf_printf(&b,
                                            "corral_grpc_request_duration_seconds_bucket{method=\"%s\",le=\"%"
                                            "g\"} %llu\n",
                                            name, bounds[k], cum);
                        }
                        sbuf_printf(&b,
                                    "corral_grpc_request_duration_seconds_bucket{method=\"%s\",le=\"+Inf\"} "
                                    "%llu\n"
                                    "corral_grpc_request_duration_seconds_sum{method=\"%s\"} %.9f\n"
                                    "corral_grpc_request_duration_seconds_count{method=\"%s\"} %llu\n",
                                    name, count, name, (double)atomic_load(&mx->m[i].sum_ns) / 1e9, name,
                                    count);
                }
        }
        objects(d, &b);
        return sbuf_steal(&b);
}

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                             const char *version, const char *upload_data, size_t *upload_size, void **ptr)
{
        (void)version, (void)upload_data, (void)upload_size, (void)ptr;
        struct cri_daemon *d = cls;
        struct MHD_Response *r;
        unsigned status = MHD_HTTP_OK;
        if (strcmp(method, "GET") != 0) {
                static const char msg[] = "only GET\n";
                status = MHD_HTTP_METHOD_NOT_ALLOWED;
                r = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        } else if (strcmp(url, "/metrics") != 0) {
                static const char msg[] = "not found: try /metrics\n";
                status = MHD_HTTP_NOT_FOUND;
                r = MHD_create_response_from_buffer(sizeof(msg) - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
        } else {
                char *text = cri_metrics_text(d);
                r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
                MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
        }
        enum MHD_Result ret = MHD_queue_response(conn, status, r);
        MHD_destroy_response(r);
        return ret;
}

/* "127.0.0.1:9090" or "[::1]:9090" (host required: no accidental 0.0.0.0). */
static int parse_addr(const char *s, struct sockaddr_storage *ss, struct err *e)
{
        memset(ss, 0, sizeof(*ss));
        const char *colon = strrchr(s, ':');
        if (colon == NULL || colon == s || colon[1] == '\0')
                return err_set(e, ERR_INVALID, "metrics.address %s: want host:port", s);
        char *end;
        long port = strtol(colon + 1, &end, 10);
        if (*end || port <= 0 || port > 65535)
                return err_set(e, ERR_INVALID, "metrics.address %s: bad port", s);
        cleanup_free char *host = xstrndup(s, (size_t)(colon - s));
        if (host[0] == '[' && str_has_suffix(host, "]")) {
                struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
                host[strlen(host) - 1] = '\0';
                a6->sin6_family = AF_INET6;
                a6->sin6_port = htons((uint16_t)port);
                if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) == 1)
                        return 0;
        } else {
                struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
                a4->sin_family = AF_INET;
                a4->sin_port = htons((uint16_t)port);
                if (inet_pton(AF_INET, host, &a4->sin_addr) == 1)
                        return 0;
        }
        return err_set(e, ERR_INVALID, "metrics.address %s: host must be an IP address", s);
}

int cri_metrics_init(struct cri_daemon *d, struct err *e)
{
        struct cri_metrics *mx = xzalloc(sizeof(*mx));
        mx->methods = cri_methods(&mx->n);
        mx->m = xcalloc(mx->n, sizeof(*mx->m));
        d->metrics = mx;
        const char *addr = d->cfg->metrics.address;
        if (addr == NULL || *addr == '\0')
                return 0;
        struct sockaddr_storage ss;
        if (parse_addr(addr, &ss, e) < 0)
                return -1;
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
        if (ss.ss_family == AF_INET6)
                flags |= MHD_USE_IPv6;
        mx->http = MHD_start_daemon(flags, 0, NULL, NULL, serve, d, MHD_OPTION_SOCK_ADDR,
                                    (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 64u,
                                    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
        if (mx->http == NULL)
                return err_set(e, ERR_UNAVAILABLE, "metrics: cannot listen on %s", addr);
        log_info("cri", "metrics url=http://%s/metrics", addr);
        return 0;
}

void cri_metrics_fini(struct cri_daemon *d)
{
        struct cri_metrics *mx = d->metrics;
        if (mx == NULL)
                return;
        if (mx->http)
                MHD_stop_daemon(mx->http);
        free(mx->m);
        free(mx);
        d->metrics = NULL;
}
