/* What kubelet's image calls cost with many images, from a C client (a
 * Python client's own decoding would dominate): pulls N images
 * <prefix><i>:latest (bench/run-images.sh pushes them), then C calls each
 * of ListImages, ImageStatus by tag, ImageStatus by id and ImageFsInfo,
 * p50 / p99 / max of each; with -C, first K created containers (one
 * host-network pod) whose writable layers ImageFsInfo counts too. Works
 * against any CRI runtime. */
#include <getopt.h>
#include <string.h>

#include "bench/bench.h"

static char **refs, **ids;
static int nimages = 50;
static char *pod_id;

typedef const ProtobufCMessage *(*req_fn)(int i, void *buf);

static void measure(const char *label, const char *what, const char *rpc, const ProtobufCMessageDescriptor *d,
                    req_fn req, int n)
{
        int64_t *t = xcalloc((size_t)n, sizeof(*t));
        char buf[512];
        int done = 0;
        size_t items = 0;
        for (int i = 0; i < n; i++) {
                const ProtobufCMessage *rq = req(i, buf);
                int64_t t0 = time_mono_ns();
                ProtobufCMessage *m = call(rpc, rq, d);
                int64_t dt = time_mono_ns() - t0;
                if (m == NULL)
                        continue;
                if (d == &runtime__v1__list_images_response__descriptor)
                        items = ((Runtime__V1__ListImagesResponse *)m)->n_images;
                protobuf_c_message_free_unpacked(m, NULL);
                t[done++] = dt;
        }
        if (done > 0) {
                qsort(t, (size_t)done, sizeof(*t), cmp64);
                printf("  %-24s %s: p50 %7.3f ms  p99 %7.3f ms  max %7.3f ms  (%d calls", what, label,
                       (double)t[done / 2] / 1e6, (double)t[(size_t)done * 99 / 100] / 1e6,
                       (double)t[done - 1] / 1e6, done);
                if (items)
                        printf(", %zu images listed", items);
                printf(")\n");
        }
        free(t);
}

static const ProtobufCMessage *list_req(int i, void *buf)
{
        (void)i;
        Runtime__V1__ListImagesRequest *r = buf;
        runtime__v1__list_images_request__init(r);
        return &r->base;
}

/* The spec lives after the request in buf. */
static const ProtobufCMessage *status_req(const char *image, void *buf)
{
        Runtime__V1__ImageStatusRequest *r = buf;
        Runtime__V1__ImageSpec *s = (Runtime__V1__ImageSpec *)(r + 1);
        runtime__v1__image_status_request__init(r);
        runtime__v1__image_spec__init(s);
        s->image = (char *)image;
        r->image = s;
        return &r->base;
}

static const ProtobufCMessage *status_tag_req(int i, void *buf)
{
        return status_req(refs[i % nimages], buf);
}

static const ProtobufCMessage *status_id_req(int i, void *buf)
{
        return status_req(ids[i % nimages], buf);
}

static const ProtobufCMessage *fsinfo_req(int i, void *buf)
{
        (void)i;
        Runtime__V1__ImageFsInfoRequest *r = buf;
        runtime__v1__image_fs_info_request__init(r);
        return &r->base;
}

/* One host-network pod with k created containers of the first image. */
static void make_containers(int k)
{
        char name[64];
        snprintf(name, sizeof(name), "images-%d", (int)getpid());
        struct bench_host_pod hp;
        pod_id = bench_run_host_pod(&hp, name, "/tmp/corral-bench-images");
        if (pod_id == NULL)
                return;
        Runtime__V1__PodSandboxConfig *pc = &hp.pc;
        ProtobufCMessage *m;
        for (int j = 0; j < k; j++) {
                char cname[16];
                snprintf(cname, sizeof(cname), "c%d", j);
                Runtime__V1__ContainerMetadata cm = RUNTIME__V1__CONTAINER_METADATA__INIT;
                Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
                Runtime__V1__ContainerConfig cc = RUNTIME__V1__CONTAINER_CONFIG__INIT;
                char *cmd[] = {"sleep", "3600"};
                cm.name = cname;
                is.image = ids[0];
                cc.metadata = &cm;
                cc.image = &is;
                cc.command = cmd;
                cc.n_command = 2;
                cc.log_path = cname;
                Runtime__V1__CreateContainerRequest cr = RUNTIME__V1__CREATE_CONTAINER_REQUEST__INIT;
                cr.pod_sandbox_id = pod_id;
                cr.config = &cc;
                cr.sandbox_config = pc;
                m = call("CreateContainer", &cr.base, &runtime__v1__create_container_response__descriptor);
                if (m == NULL)
                        return;
                protobuf_c_message_free_unpacked(m, NULL);
        }
}

static void remove_pod(void)
{
        if (pod_id == NULL)
                return;
        Runtime__V1__StopPodSandboxRequest sp = RUNTIME__V1__STOP_POD_SANDBOX_REQUEST__INIT;
        sp.pod_sandbox_id = pod_id;
        ProtobufCMessage *m =
                call("StopPodSandbox", &sp.base, &runtime__v1__stop_pod_sandbox_response__descriptor);
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
        Runtime__V1__RemovePodSandboxRequest rp = RUNTIME__V1__REMOVE_POD_SANDBOX_REQUEST__INIT;
        rp.pod_sandbox_id = pod_id;
        m = call("RemovePodSandbox", &rp.base, &runtime__v1__remove_pod_sandbox_response__descriptor);
        if (m)
                protobuf_c_message_free_unpacked(m, NULL);
        free(pod_id);
}

int main(int argc, char **argv)
{
        const char *endpoint = "unix:///run/corral/corral.sock", *label = "runtime", *prefix = NULL;
        int calls = 1000, nctrs = 0, c;
        while ((c = getopt(argc, argv, "r:i:N:n:l:C:")) != -1) {
                switch (c) {
                case 'r':
                        endpoint = optarg;
                        break;
                case 'i':
                        prefix = optarg;
                        break;
                case 'N':
                        nimages = atoi(optarg);
                        break;
                case 'n':
                        calls = atoi(optarg);
                        break;
                case 'l':
                        label = optarg;
                        break;
                case 'C':
                        nctrs = atoi(optarg);
                        break;
                default:
                        fprintf(stderr, "usage: bench_images -i <registry>/many [-r endpoint] [-N images] "
                                        "[-n calls] [-C created containers] [-l label]\n");
                        return 2;
                }
        }
        if (prefix == NULL || nimages < 1 || calls < 1) {
                fprintf(stderr, "bench_images: -i prefix and sizes >= 1 are needed\n");
                return 2;
        }
        cleanup_err struct err e = ERR_INIT;
        if (cri_client_new(endpoint, &C, &e) < 0) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
        }
        refs = xcalloc((size_t)nimages, sizeof(*refs));
        ids = xcalloc((size_t)nimages, sizeof(*ids));
        int64_t t0 = time_mono_ns();
        for (int i = 0; i < nimages; i++) {
                refs[i] = xasprintf("%s%d:latest", prefix, i);
                Runtime__V1__PullImageRequest pr = RUNTIME__V1__PULL_IMAGE_REQUEST__INIT;
                Runtime__V1__ImageSpec is = RUNTIME__V1__IMAGE_SPEC__INIT;
                is.image = refs[i];
                pr.image = &is;
                ProtobufCMessage *m =
                        call("PullImage", &pr.base, &runtime__v1__pull_image_response__descriptor);
                if (m == NULL)
                        return 1;
                ids[i] = xstrdup(((Runtime__V1__PullImageResponse *)m)->image_ref);
                protobuf_c_message_free_unpacked(m, NULL);
        }
        printf("%s: %d images pulled in %.1f s\n", label, nimages, (double)(time_mono_ns() - t0) / 1e9);
        if (nctrs > 0) {
                t0 = time_mono_ns();
                make_containers(nctrs);
                printf("%s: %d containers created in %.1f s\n", label, nctrs,
                       (double)(time_mono_ns() - t0) / 1e9);
        }
        measure(label, "ListImages", "ListImages", &runtime__v1__list_images_response__descriptor, list_req,
                calls);
        measure(label, "ImageStatus (tag)", "ImageStatus", &runtime__v1__image_status_response__descriptor,
                status_tag_req, calls);
        measure(label, "ImageStatus (id)", "ImageStatus", &runtime__v1__image_status_response__descriptor,
                status_id_req, calls);
        measure(label, "ImageFsInfo", "ImageFsInfo", &runtime__v1__image_fs_info_response__descriptor,
                fsinfo_req, calls);
        remove_pod();
        for (int i = 0; i < nimages; i++) {
                free(refs[i]);
                free(ids[i]);
        }
        free(refs);
        free(ids);
        cri_client_free(C);
        if (failures)
                fprintf(stderr, "%s: %d calls failed\n", label, (int)failures);
        return failures ? 1 : 0;
}
