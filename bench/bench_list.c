/* What kubelet's relist costs at node scale, from a C client (a Python
 * client's own decoding would dominate): P host-network pods of M created
 * containers each, then N calls each of ListContainers, ListPodSandbox,
 * ContainerStatus and PodSandboxStatus (the status calls on ids picked
 * round robin), p50 / p99 / max of each. Works against any CRI runtime
 * (corral or containerd). Setup uses T threads; the pods are removed at
 * the end. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "cri/cri.h"
#include "runtime/v1/api.pb-c.h"

static struct cri_client *C;
static const char *image = "busybox";
static int npods = 334, nctrs = 3;
static atomic_int next_pod, failures;
static char **pod_ids, **ctr_ids;

static ProtobufCMessage *call(const char *rpc, const ProtobufCMessage *req,
                              const ProtobufCMessageDescriptor *d)
{
        ProtobufCMessage *resp = NULL;
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_call(C, cri_method_path(rpc), req, d, 120000, &resp, &e) < 0) {
                fprintf(stderr, "%s: %s\n", rpc, e.msg);
                failures++;
                return NULL;
        }
        return resp;
}

static int cmp64(const void *a, const void *b)
{
        int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
        return x < y ? -1 : x > y;
}

/* One pod on the host network with nctrs created containers. */
static void make_pod(int i)
{
        char name[64];
        snprintf(name, sizeof(name), "list-%d-%d", (int)getpid(), i);
        Runtime__V1__PodSandboxMetadata md = RUNTIME__V1__POD_SANDBOX_METADATA__INIT;
        Runtime__V1__PodSandboxConfig pc = RUNTIME__V1__POD_SANDBOX_CONFIG__INIT;
        Runtime__V1__LinuxPodSandboxConfig lx = RUNTIME__V1__LINUX_POD_SANDBOX_CONFIG__INIT;
        Runtime__V1__LinuxSandboxSecurityContext sc;
        runtime__v1__linux_sandbox_security_context__init(&sc); /* the INIT macro names a deprecated field */
        Runtime__V1__NamespaceOption no = RUNTIME__V1__NAMESPACE_OPTION__INIT;
        md.name = name;
        md.uid = name;
        md.namespace_ = "bench";
        no.network = RUNTIME__V1__NAMESPACE_MODE__NODE;
        sc.namespace_options = &no;
        lx.security_context = &sc;
        pc.metadata = &md;
        pc.linux = &lx;
        pc.log_directory = "/tmp/corral-bench-list";
        Runtime__V1__RunPodSandboxRequest rr = RUNTIME__V1__RUN_POD_SANDBOX_REQUEST__INIT;
        rr.config = &pc;
        ProtobufCMessage *m =
                call("RunPodSandbox", &rr.base, &runtime__v1__run_pod_sandbox_response__descriptor);
        if (m == NULL)
                return;
        pod_ids[i] = xstrdup(((Runtime__V1__RunPodSandboxResponse *)m)->pod_sandbox_id);
        protobuf_c_message_free_unpacked(m, NULL);
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
                Runtime__V1__CreateContainerRequest cr = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
                cr.pod_sandbox_id = pod_ids[i];
                cr.config = &cc;
                cr.sandbox_config = &pc;
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

static void measure(const char *label, const char *rpc, const ProtobufCMessageDescriptor *d, req_fn req,
                    int n, size_t *items_out)
{
        int64_t *t = xcalloc((size_t)n, sizeof(*t));
        char buf[512];
        int done = 0;
        for (int i = 0; i < n; i++) {
                const ProtobufCMessage *rq = req(i, buf);
                int64_t t0 = time_mono_ns();
                ProtobufCMessage *m = call(rpc, rq, d);
                int64_t dt = time_mono_ns() - t0;
                if (m == NULL)
                        continue;
                if (items_out && d == &runtime__v1__list_containers_response__descriptor)
                        *items_out = ((Runtime__V1__ListContainersResponse *)m)->n_containers;
                protobuf_c_message_free_unpacked(m, NULL);
                t[done++] = dt;
        }
        if (done > 0) {
                qsort(t, (size_t)done, sizeof(*t), cmp64);
                printf("  %-18s %s: p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%d calls)\n", rpc, label,
                       (double)t[done / 2] / 1e6, (double)t[(size_t)done * 99 / 100] / 1e6,
                       (double)t[done - 1] / 1e6, done);
        }
        free(t);
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
        while ((c = getopt(argc, argv, "r:i:p:c:n:t:l:")) != -1) {
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
                default:
                        fprintf(stderr, "usage: bench_list [-r endpoint] [-i image] [-p pods] [-c containers "
                                        "per pod] [-n calls] [-t setup threads] [-l label]\n");
                        return 2;
                }
        }
        if (npods < 1 || nctrs < 1 || calls < 1 || nthreads < 1 || nthreads > 64) {
                fprintf(stderr, "bench_list: bad sizes\n");
                return 2;
        }
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
