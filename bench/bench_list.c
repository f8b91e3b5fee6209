/* What kubelet's relist costs at node scale, from a C client (a Python
 * client's own decoding would dominate): P host-network pods of M created
 * containers each, then N calls each of ListContainers, ListPodSandbox,
 * ContainerStatus and PodSandboxStatus (the status calls on ids picked
 * round robin), p50 / p99 / max of each. Works against any CRI runtime
 * (corral or containerd). Setup uses T threads; the pods are removed at
 * the end. */
#include <getopt.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench/bench.h"

static const char *image = "busybox";
static int npods = 334, nctrs = 3;
static bool kubelet_meta; /* -L: the labels and annotations kubelet puts on each container */
static atomic_int next_pod;
static char **pod_ids, **ctr_ids;

/* One pod on the host network with nctrs created containers. */
static void make_pod(int i)
{
        char name[64];
        snprintf(name, sizeof(name), "list-%d-%d", (int)getpid(), i);
        struct bench_host_pod hp;
        pod_ids[i] = bench_run_host_pod(&hp, name, "/tmp/corral-bench-list");
        if (pod_ids[i] == NULL)
                return;
        Runtime__V1__PodSandboxConfig *pc = &hp.pc;
        ProtobufCMessage *m;
        for (int j = 0; j < nctrs; j++) {
                char cname[16];
                snprintf(cname, sizeof(cname), "c%d", j);
                Runtime__V1__ContainerMetadata cm = RUNTIME__V1__CONTAINER_METADATA__INIT;
                Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
                Runtime__V1__ContainerConfig cc = RUNTIME__V1__CONTAINER_CONFIG__INIT;
                char *cmd[] = {"sleep", "3600"};
                cm.name = cname;
                is.image = (char *)image;
                cc.metadata = &cm;
                cc.image = &is;
                cc.command = cmd;
                cc.n_command = 2;
                cc.log_path = cname;
                /* What kubelet's labels.go puts on every container: 4 labels, 4 annotations. */
                Runtime__V1__ContainerConfig__LabelsEntry l[4], *lp[4];
                Runtime__V1__ContainerConfig__AnnotationsEntry a[4], *ap[4];
                static const char *const lk[] = {"io.kubernetes.container.name", "io.kubernetes.pod.name",
                                                 "io.kubernetes.pod.namespace", "io.kubernetes.pod.uid"};
                static const char *const ak[] = {"io.kubernetes.container.hash",
                                                 "io.kubernetes.container.restartCount",
                                                 "io.kubernetes.container.terminationMessagePath",
                                                 "io.kubernetes.container.terminationMessagePolicy"};
                char *lv[] = {cname, name, "bench", name};
                char *av[] = {"5c3f1e2a", "0", "/dev/termination-log", "File"};
                for (int k = 0; kubelet_meta && k < 4; k++) {
                        runtime__v1__container_config__labels_entry__init(&l[k]);
                        l[k].key = (char *)lk[k];
                        l[k].value = lv[k];
                        lp[k] = &l[k];
                        runtime__v1__container_config__annotations_entry__init(&a[k]);
                        a[k].key = (char *)ak[k];
                        a[k].value = av[k];
                        ap[k] = &a[k];
                }
                if (kubelet_meta) {
                        cc.labels = lp;
                        cc.n_labels = 4;
                        cc.annotations = ap;
                        cc.n_annotations = 4;
                }
                Runtime__V1__CreateContainerRequest cr = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
                cr.pod_sandbox_id = pod_ids[i];
                cr.config = &cc;
                cr.sandbox_config = pc;
                m = call("CreateContainer", &cr.base, &runtime__v1__create_container_response__descriptor);
                if (m == NULL)
                        return;
                ctr_ids[i * nctrs + j] = xstrdup(((Runtime__V1__CreateContainerResponse *)m)->container_id);
                protobuf_c_message_free_unpacked(m, NULL);
        }
}

static void remove_pod(int i)
{
        if (pod_ids[i] == NULL)
                return;
        Runtime__V1__StopPodSandboxRequest sp = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
        sp.pod_sandbox_id = pod_ids[i];
        ProtobufCMessage *m =
                call("StopPodSandbox", &sp.base, &runtime__v1__stop_pod_sandbox_response__descriptor);
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
        Runtime__V1__RemovePodSandboxRequest rp = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
        rp.pod_sandbox_id = pod_ids[i];
        m = call("RemovePodSandbox", &rp.base, &runtime__v1__remove_pod_sandbox_response__descriptor);
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
}

static void *worker(void *arg)
{
        void (*fn)(int) = (void (*)(int))arg;
        for (int i; (i = atomic_fetch_add(&next_pod, 1)) < npods;)
                fn(i);
        return NULL;
}

static void run_threads(void (*fn)(int), int nthreads)
{
        pthread_t th[64];
        atomic_store(&next_pod, 0);
        for (int t = 0; t < nthreads; t++)
                pthread_create(&th[t], NULL, worker, (void *)fn);
        for (int t = 0; t < nthreads; t++)
                pthread_join(th[t], NULL);
}

/* n calls of one RPC; req_for(i) builds the i-th request in *buf. */
typedef const ProtobufCMessage *(*req_fn)(int i, void *buf);

static int daemon_pid; /* -P: the daemon's CPU per call is printed too */

/* CPU seconds used so far: this process (pid 0) or the daemon. */
static double cpu_s(int pid)
{
        if (pid == 0) {
                struct rusage ru;
                getrusage(RUSAGE_SELF, &ru);
                return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
                       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
        }
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        cleanup_free char *st = NULL;
        if (file_read_all(path, &st, NULL, 4096, NULL) < 0)
                return 0;
        const char *p = strrchr(st, ')');
        unsigned long long ut = 0, stime = 0;
        if (p == NULL ||
            sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &stime) != 2)
                return 0;
        return (double)(ut + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* The replies are decoded into an arena reset after each call, as a client
 * that cares would (protobuf-c's default is a malloc per string and per
 * message): the client's own cost, kept small and the same for both
 * runtimes. Chunks beyond the first are freed at each reset. */
struct arena {
        char *buf;
        size_t used, cap;
        void **extra;
        size_t n_extra;
};

static void *arena_alloc(void *data, size_t n)
{
        struct arena *a = data;
        n = (n + 15) & ~(size_t)15;
        if (a->used + n > a->cap) {
                a->extra = xrealloc(a->extra, (a->n_extra + 1) * sizeof(*a->extra));
                return a->extra[a->n_extra++] = xmalloc(n);
        }
        void *p = a->buf + a->used;
        a->used += n;
        return p;
}

static void arena_free(void *data, void *p)
{
        (void)data;
        (void)p;
}

static void arena_reset(struct arena *a)
{
        for (size_t i = 0; i < a->n_extra; i++)
                free(a->extra[i]);
        a->n_extra = 0;
        a->used = 0;
}

static double p50_ms(int64_t *t, int n)
{
        qsort(t, (size_t)n, sizeof(*t), cmp64);
        return (double)t[n / 2] / 1e6;
}

/* n calls of one RPC: the whole call (request out, reply in and decoded
 * into protobuf-c structs, as a client uses it) and, apart, the decoding
 * alone, which is the client's own cost. */
static void measure(const char *label, const char *rpc, const ProtobufCMessageDescriptor *d, req_fn req,
                    int n, size_t *items_out)
{
        int64_t *t = xcalloc((size_t)n, sizeof(*t)), *dec = xcalloc((size_t)n, sizeof(*dec));
        struct arena ar = {.buf = xmalloc(16 << 20), .cap = 16 << 20};
        ProtobufCAllocator alloc = {.alloc = arena_alloc, .free = arena_free, .allocator_data = &ar};
        char buf[512];
        int done = 0;
        size_t bytes = 0;
        double c0 = cpu_s(0), d0 = daemon_pid ? cpu_s(daemon_pid) : 0;
        for (int i = 0; i < n; i++) {
                const ProtobufCMessage *rq = req(i, buf);
                size_t len = protobuf_c_message_get_packed_size(rq);
                uint8_t rbuf[512];
                protobuf_c_message_pack(rq, rbuf);
                uint8_t *out = NULL;
                size_t out_len = 0;
                cleanup_err struct err e = ERR_INIT;
                int64_t t0 = time_mono_ns();
                int r = cri_client_call_raw(C, cri_method_path(rpc), rbuf, len, 120000, &out, &out_len, &e);
                int64_t t1 = time_mono_ns();
                ProtobufCMessage *m = r < 0 ? NULL : protobuf_c_message_unpack(d, &alloc, out_len, out);
                int64_t t2 = time_mono_ns();
                free(out);
                if (m == NULL) {
                        fprintf(stderr, "%s: %s\n", rpc, r < 0 ? e.msg : "malformed reply");
                        failures++;
                        continue;
                }
                if (items_out && d == &runtime__v1__list_containers_response__descriptor)
                        *items_out = ((Runtime__V1__ListContainersResponse *)m)->n_containers;
                arena_reset(&ar);
                bytes = out_len;
                dec[done] = t2 - t1;
                t[done++] = t2 - t0;
        }
        double ccpu = (cpu_s(0) - c0) * 1e3 / n, dcpu = daemon_pid ? (cpu_s(daemon_pid) - d0) * 1e3 / n : 0;
        if (done > 0) {
                double dp50 = p50_ms(dec, done);
                qsort(t, (size_t)done, sizeof(*t), cmp64);
                printf("  %-18s %s: p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%d calls, %zu B, decoding "
                       "p50 %.3f ms)\n",
                       rpc, label, (double)t[done / 2] / 1e6, (double)t[(size_t)done * 99 / 100] / 1e6,
                       (double)t[done - 1] / 1e6, done, bytes, dp50);
                printf("  %-18s %s: CPU per call: client %.3f ms", "", label, ccpu);
                if (daemon_pid)
                        printf(", daemon %.3f ms", dcpu);
                printf("\n");
        }
        arena_reset(&ar);
        free(ar.extra);
        free(ar.buf);
        free(t);
        free(dec);
}

static const ProtobufCMessage *list_ctrs_req(int i, void *buf)
{
        (void)i;
        Runtime__V1__ListContainersRequest *r = buf;
        runtime__v1__list_containers_request__init(r);
        return &r->base;
}

static const ProtobufCMessage *list_pods_req(int i, void *buf)
{
        (void)i;
        Runtime__V1__ListPodSandboxRequest *r = buf;
        runtime__v1__list_pod_sandbox_request__init(r);
        return &r->base;
}

static const ProtobufCMessage *ctr_status_req(int i, void *buf)
{
        Runtime__V1__ContainerStatusRequest *r = buf;
        runtime__v1__container_status_request__init(r);
        r->container_id = ctr_ids[(size_t)i % ((size_t)npods * (size_t)nctrs)];
        return &r->base;
}

static const ProtobufCMessage *pod_status_req(int i, void *buf)
{
        Runtime__V1__PodSandboxStatusRequest *r = buf;
        runtime__v1__pod_sandbox_status_request__init(r);
        r->pod_sandbox_id = pod_ids[i % npods];
        return &r->base;
}

int main(int argc, char **argv)
{
        const char *endpoint = "unix:///run/corral/corral.sock", *label = "runtime";
        int calls = 1000, nthreads = 4, c;
        while ((c = getopt(argc, argv, "r:i:p:c:n:t:l:LP:")) != -1) {
                switch (c) {
                case 'r':
                        endpoint = optarg;
                        break;
                case 'i':
                        image = optarg;
                        break;
                case 'p':
                        npods = atoi(optarg);
                        break;
                case 'c':
                        nctrs = atoi(optarg);
                        break;
                case 'n':
                        calls = atoi(optarg);
                        break;
                case 't':
                        nthreads = atoi(optarg);
                        break;
                case 'l':
                        label = optarg;
                        break;
                case 'L':
                        kubelet_meta = true;
                        break;
                case 'P':
                        daemon_pid = atoi(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench_list [-r endpoint] [-i image] [-p pods] [-c containers "
                                        "per pod] [-n calls] [-t setup threads] [-l label] [-L: kubelet's "
                                        "labels] [-P daemon pid]\n");
                        return 2;
                }
        }
        if (npods < 1 || nctrs < 1 || calls < 1 || nthreads < 1 || nthreads > 64) {
                fprintf(stderr, "bench_list: bad sizes\n");
                return 2;
        }
        /* glibc maps each large reply buffer fresh and faults its pages in on
         * every call: at 1,000 containers that was two thirds of this
         * client's CPU (2.4 ms of 3.1 per ListContainers), a cost of the
         * client and not of the runtime measured (kubelet's Go allocator
         * reuses its heap). Both runtimes are measured with this setting. */
        mallopt(M_MMAP_THRESHOLD, 64 << 20);
        mallopt(M_TRIM_THRESHOLD, 64 << 20);
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_new(endpoint, &C, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        Runtime__V1__PullImageRequest pr = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
        Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
        is.image = (char *)image;
        pr.image = &is;
        ProtobufCMessage *m = call("PullImage", &pr.base, &runtime__v1__pull_image_response__descriptor);
        if (m == NULL)
                return 1;
        protobuf_c_message_free_unpacked(m, NULL);

        pod_ids = xcalloc((size_t)npods, sizeof(*pod_ids));
        ctr_ids = xcalloc((size_t)npods * (size_t)nctrs, sizeof(*ctr_ids));
        int64_t t0 = time_mono_ns();
        run_threads(make_pod, nthreads);
        int made = 0;
        for (int i = 0; i < npods * nctrs; i++)
                made += ctr_ids[i] != NULL;
        printf("%s: %d pods x %d containers made in %.1f s (%d containers)\n", label, npods, nctrs,
               (double)(time_mono_ns() - t0) / 1e9, made);
        if (made == npods * nctrs) {
                size_t listed = 0;
                measure(label, "ListContainers", &runtime__v1__list_containers_response__descriptor,
                        list_ctrs_req, calls, &listed);
                measure(label, "ListPodSandbox", &runtime__v1__list_pod_sandbox_response__descriptor,
                        list_pods_req, calls, NULL);
                measure(label, "ContainerStatus", &runtime__v1__container_status_response__descriptor,
                        ctr_status_req, calls, NULL);
                measure(label, "PodSandboxStatus", &runtime__v1__pod_sandbox_status_response__descriptor,
                        pod_status_req, calls, NULL);
                printf("  (ListContainers returned %zu containers)\n", listed);
        }
        t0 = time_mono_ns();
        run_threads(remove_pod, nthreads);
        printf("%s: removed in %.1f s\n", label, (double)(time_mono_ns() - t0) / 1e9);
        for (int i = 0; i < npods; i++)
                free(pod_ids[i]);
        for (int i = 0; i < npods * nctrs; i++)
                free(ctr_ids[i]);
        free(pod_ids);
        free(ctr_ids);
        cri_client_free(C);
        if (failures)
                fprintf(stderr, "%s: %d calls failed\n", label, (int)failures);
        return failures ? 1 : 0;
}
