/* Container and pod stats from cgroups (cpu, memory working set, pids), the
 * writable layer's disk use, and the pod's eth0 counters in its netns. */
#include <string.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "cri/stats-internal.h"
#include "net/net.h"
#include "runtime/runtime.h"
#include "snapshot/snapshot.h"

static Runtime__V1__UInt64Value *u64(uint64_t v)
{
        Runtime__V1__UInt64Value *x = xmalloc(sizeof(*x));
        runtime__v1__uint64_value__init(x);
        x->value = v;
        return x;
}

/* Figures of a running object's cgroup, as of their reading (stats_cache.c);
 * none when cgroup_path is NULL (the object does not run). */
static void fill_cgroup(const char *id, bool pod, const char *cgroup_path, Runtime__V1__CpuUsage **cpu,
                        Runtime__V1__MemoryUsage **mem, uint64_t *pids)
{
        int64_t now = time_now_ns();
        *cpu = xmalloc(sizeof(**cpu));
        runtime__v1__cpu_usage__init(*cpu);
        (*cpu)->timestamp = now;
        *mem = xmalloc(sizeof(**mem));
        runtime__v1__memory_usage__init(*mem);
        (*mem)->timestamp = now;
        if (pids)
                *pids = 0;
        if (cgroup_path == NULL) {
                cri_stats_release(id);
                return;
        }
        cleanup_err struct err e = ERR_INIT;
        struct cri_cgroup_reading r;
        if (!cri_stats_cgroup(id, pod, cgroup_path, &r, &e)) {
                log_debug("cri", "stats cgroup=%s error=\"%s\"", cgroup_path, e.msg);
                return;
        }
        (*cpu)->timestamp = (*mem)->timestamp = r.wall_ns;
        (*cpu)->usage_core_nano_seconds = u64(r.st.cpu_usage_ns);
        if (r.have_cores)
                (*cpu)->usage_nano_cores = u64(r.cores);
        (*mem)->working_set_bytes = u64(r.st.memory_working_set);
        (*mem)->usage_bytes = u64(r.st.memory_usage);
        (*mem)->rss_bytes = u64(r.st.memory_rss);
        if (pids)
                *pids = r.st.pids_current;
}

/* The usage of a container whose cgroup is not on the host, from its handler. */
static bool guest_usage(struct cri_daemon *d, const struct store_container *c, uint64_t *cpu, uint64_t *mem)
{
        struct store_pod p = {0};
        struct cri_pod_extra x = {0};
        cleanup_err struct err e = ERR_INIT;
        bool ok = false;
        if (model_pod_get(d->model, c->pod_id, &p, &e) == 0 &&
            cri_pod_extra_parse(p.extra_json, &x, &e) == 0) {
                const struct cri_handler_ops *h = cri_handler_of_pod(&x);
                ok = h->container_usage && h->container_usage(d, &x, c->id, cpu, mem);
        }
        cri_pod_extra_clear(&x);
        store_pod_clear(&p);
        return ok;
}

static Runtime__V1__ContainerStats *ctr_stats(struct cri_daemon *d, const struct store_container *c)
{
        int64_t now = time_now_ns();
        Runtime__V1__ContainerStats *s = xmalloc(sizeof(*s));
        runtime__v1__container_stats__init(s);
        Runtime__V1__ContainerAttributes *a = xmalloc(sizeof(*a));
        runtime__v1__container_attributes__init(a);
        a->id = xstrdup(c->id);
        a->metadata = xmalloc(sizeof(*a->metadata));
        runtime__v1__container_metadata__init(a->metadata);
        a->metadata->name = xstrdup(c->name ? c->name : "");
        a->metadata->attempt = c->attempt;
        a->n_labels = cri_map_from_json(c->labels_json,
                                        &runtime__v1__container_attributes__labels_entry__descriptor,
                                        (void ***)&a->labels);
        a->n_annotations = cri_map_from_json(
                c->annotations_json, &runtime__v1__container_attributes__annotations_entry__descriptor,
                (void ***)&a->annotations);
        s->attributes = a;
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        fill_cgroup(c->id, false, c->state == STORE_CTR_RUNNING ? x.cgroup : NULL, &s->cpu, &s->memory, NULL);
        uint64_t vcpu, vmem;
        if (c->state == STORE_CTR_RUNNING && !x.cgroup && guest_usage(d, c, &vcpu, &vmem)) {
                /* A container in a VM pod: its cgroup lives in the guest. */
                s->cpu->usage_core_nano_seconds = u64(vcpu);
                uint64_t cores;
                if (cri_cpu_nano_cores(c->id, vcpu, &cores))
                        s->cpu->usage_nano_cores = u64(cores);
                s->memory->working_set_bytes = u64(vmem);
        }
        ctr_extra_clear(&x);
        s->writable_layer = xmalloc(sizeof(*s->writable_layer));
        runtime__v1__filesystem_usage__init(s->writable_layer);
        s->writable_layer->timestamp = now;
        if (d->snaps) {
                s->writable_layer->fs_id = xmalloc(sizeof(*s->writable_layer->fs_id));
                runtime__v1__filesystem_identifier__init(s->writable_layer->fs_id);
                s->writable_layer->fs_id->mountpoint = xstrdup(snap_root(d->snaps));
                /* The last walk, if a minute old at most (exited: the one
                 * walk made after the exit); the walks themselves mostly run
                 * in the image service's usage thread, not in this call. */
                struct snap_live fs;
                cleanup_err struct err e = ERR_INIT;
                const char *key = c->snapshot_key ? c->snapshot_key : c->id;
                int64_t final_after = c->state == STORE_CTR_EXITED ? c->finished_ns : 0;
                if (snap_live_usage(d->snaps, key, SNAP_LIVE_MAX_AGE_NS, final_after, &fs, &e) < 0)
                        log_debug("cri", "stats container=%s usage error=\"%s\"", c->id, e.msg);
                else
                        s->writable_layer->timestamp = fs.wall;
                s->writable_layer->used_bytes = u64(fs.bytes);
                s->writable_layer->inodes_used = u64(fs.inodes);
        }
        return s;
}

/* ---------- containers ---------- */

struct ctr_filter {
        const char *id, *pod_id;
        size_t n_sel;
        void *const *sel;
};

static int collect_ctr(struct cri_daemon *d, const struct ctr_filter *f, Runtime__V1__ContainerStats ***out,
                       size_t *nout, struct err *e)
{
        *out = NULL;
        *nout = 0;
        char id[ID_LEN + 1] = "", pod_id[ID_LEN + 1] = "";
        cleanup_err struct err e2 = ERR_INIT;
        if (f->id && *f->id) {
                struct store_container c = {0};
                int r = ctr_resolve(d, f->id, &c, &e2);
                snprintf(id, sizeof(id), "%s", c.id);
                store_ctr_clear(&c);
                if (r < 0)
                        return 0;
        }
        if (f->pod_id && *f->pod_id) {
                struct store_pod p = {0};
                int r = cri_pod_resolve(d, f->pod_id, &p, &e2);
                snprintf(pod_id, sizeof(pod_id), "%s", p.id);
                store_pod_clear(&p);
                if (r < 0)
                        return 0;
        }
        int64_t t0 = time_mono_ns();
        struct store_container *v = NULL;
        size_t n = 0;
        if (model_ctr_list(d->model, *pod_id ? pod_id : NULL, &v, &n, e) < 0)
                return -1;
        Runtime__V1__ContainerStats **arr = n ? xcalloc(n, sizeof(*arr)) : NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (*id && strcmp(v[i].id, id) != 0)
                        continue;
                if (!cri_labels_match(v[i].labels_json, f->n_sel, f->sel))
                        continue;
                /* Like containerd: stats of containers that exist, running or not. */
                arr[k++] = ctr_stats(d, &v[i]);
        }
        store_ctrs_free(v, n);
        if (!*id && !*pod_id && f->n_sel == 0)
                cri_stats_listed(false, t0);
        *out = arr;
        *nout = k;
        return 0;
}

static int container_stats(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                           ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ContainerStatsRequest *rq = (const Runtime__V1__ContainerStatsRequest *)req;
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        Runtime__V1__ContainerStatsResponse *r = xmalloc(sizeof(*r));
        runtime__v1__container_stats_response__init(r);
        r->stats = ctr_stats(d, &c);
        store_ctr_clear(&c);
        *resp = &r->base;
        return 0;
}

static void ctr_filter_of(const Runtime__V1__ContainerStatsFilter *f, struct ctr_filter *out)
{
        memset(out, 0, sizeof(*out));
        if (f == NULL)
                return;
        out->id = f->id;
        out->pod_id = f->pod_sandbox_id;
        out->n_sel = f->n_label_selector;
        out->sel = (void *const *)f->label_selector;
}

static int list_container_stats(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                                ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ListContainerStatsRequest *rq =
                (const Runtime__V1__ListContainerStatsRequest *)req;
        struct ctr_filter f;
        ctr_filter_of(rq->filter, &f);
        Runtime__V1__ListContainerStatsResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_container_stats_response__init(r);
        if (collect_ctr(d, &f, &r->stats, &r->n_stats, e) < 0) {
                free(r);
                return -1;
        }
        *resp = &r->base;
        return 0;
}

static int stream_container_stats(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                                  struct err *e)
{
        const Runtime__V1__StreamContainerStatsRequest *rq =
                (const Runtime__V1__StreamContainerStatsRequest *)req;
        struct ctr_filter f;
        ctr_filter_of(rq->filter, &f);
        Runtime__V1__ContainerStats **all = NULL;
        size_t n = 0;
        if (collect_ctr(d, &f, &all, &n, e) < 0)
                return -1;
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i += 100) {
                Runtime__V1__StreamContainerStatsResponse m =
                        RUNTIME__V1__STREAM_CONTAINER_STATS_RESPONSE__INIT;
                m.container_stats = all + i;
                m.n_container_stats = n - i < 100 ? n - i : 100;
                r = cri_call_send(call, &m.base, e);
        }
        for (size_t i = 0; i < n; i++)
                protobuf_c_message_free_unpacked(&all[i]->base, NULL);
        free(all);
        return r;
}

/* ---------- pods ---------- */

static Runtime__V1__NetworkInterfaceUsage *iface_usage(const char *name, const struct net_link_stats *ls)
{
        Runtime__V1__NetworkInterfaceUsage *u = xmalloc(sizeof(*u));
        runtime__v1__network_interface_usage__init(u);
        u->name = xstrdup(name);
        u->rx_bytes = u64(ls->rx_bytes);
        u->rx_errors = u64(ls->rx_errors);
        u->tx_bytes = u64(ls->tx_bytes);
        u->tx_errors = u64(ls->tx_errors);
        return u;
}

static Runtime__V1__PodSandboxStats *pod_stats(struct cri_daemon *d, const struct store_pod *p)
{
        int64_t now = time_now_ns();
        Runtime__V1__PodSandboxStats *s = xmalloc(sizeof(*s));
        runtime__v1__pod_sandbox_stats__init(s);
        Runtime__V1__PodSandboxAttributes *a = xmalloc(sizeof(*a));
        runtime__v1__pod_sandbox_attributes__init(a);
        a->id = xstrdup(p->id);
        a->metadata = cri_pod_metadata(p->name, p->uid, p->namespace, p->attempt);
        a->n_labels = cri_map_from_json(p->labels_json,
                                        &runtime__v1__pod_sandbox_attributes__labels_entry__descriptor,
                                        (void ***)&a->labels);
        a->n_annotations = cri_map_from_json(
                p->annotations_json, &runtime__v1__pod_sandbox_attributes__annotations_entry__descriptor,
                (void ***)&a->annotations);
        s->attributes = a;
        Runtime__V1__LinuxPodSandboxStats *l = xmalloc(sizeof(*l));
        runtime__v1__linux_pod_sandbox_stats__init(l);
        s->linux = l;
        struct cri_pod_extra x = {0};
        cleanup_err struct err e = ERR_INIT;
        bool have_x = cri_pod_extra_parse(p->extra_json, &x, &e) == 0;
        uint64_t pids = 0;
        fill_cgroup(p->id, true,
                    have_x && p->state == STORE_POD_READY && x.cgroup && *x.cgroup ? x.cgroup : NULL, &l->cpu,
                    &l->memory, &pids);
        l->process = xmalloc(sizeof(*l->process));
        runtime__v1__process_usage__init(l->process);
        l->process->timestamp = now;
        l->process->process_count = u64(pids);
        if (have_x && !x.host_net && x.ns_dir && p->state == STORE_POD_READY) {
                cleanup_free char *netns = path_join(x.ns_dir, "net");
                struct net_link_stats ls;
                if (net_link_stats(netns, "eth0", &ls, &e) == 0) {
                        l->network = xmalloc(sizeof(*l->network));
                        runtime__v1__network_usage__init(l->network);
                        l->network->timestamp = now;
                        l->network->default_interface = iface_usage("eth0", &ls);
                        l->network->interfaces = xcalloc(1, sizeof(*l->network->interfaces));
                        l->network->interfaces[0] = iface_usage("eth0", &ls);
                        l->network->n_interfaces = 1;
                } else {
                        log_debug("cri", "pod stats pod=%s net error=\"%s\"", p->id, e.msg);
                }
        }
        cri_pod_extra_clear(&x);
        struct ctr_filter f = {.pod_id = p->id};
        err_clear(&e);
        (void)collect_ctr(d, &f, &l->containers, &l->n_containers, &e);
        return s;
}

static int collect_pods(struct cri_daemon *d, const char *id, size_t n_sel, void *const *sel,
                        Runtime__V1__PodSandboxStats ***out, size_t *nout, struct err *e)
{
        *out = NULL;
        *nout = 0;
        char want[ID_LEN + 1] = "";
        if (id && *id) {
                struct store_pod p = {0};
                cleanup_err struct err e2 = ERR_INIT;
                int r = cri_pod_resolve(d, id, &p, &e2);
                snprintf(want, sizeof(want), "%s", p.id);
                store_pod_clear(&p);
                if (r < 0)
                        return 0;
        }
        int64_t t0 = time_mono_ns();
        struct store_pod *v = NULL;
        size_t n = 0;
        if (model_pod_list(d->model, &v, &n, e) < 0)
                return -1;
        Runtime__V1__PodSandboxStats **arr = n ? xcalloc(n, sizeof(*arr)) : NULL;
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
                if (v[i].state != STORE_POD_READY && v[i].state != STORE_POD_NOTREADY)
                        continue;
                if (*want && strcmp(v[i].id, want) != 0)
                        continue;
                if (!cri_labels_match(v[i].labels_json, n_sel, sel))
                        continue;
                arr[k++] = pod_stats(d, &v[i]);
        }
        store_pods_free(v, n);
        if (!*want && n_sel == 0)
                cri_stats_listed(true, t0);
        *out = arr;
        *nout = k;
        return 0;
}

static int pod_sandbox_stats(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                             ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__PodSandboxStatsRequest *rq = (const Runtime__V1__PodSandboxStatsRequest *)req;
        struct store_pod p = {0};
        if (cri_pod_resolve(d, rq->pod_sandbox_id, &p, e) < 0)
                return -1;
        Runtime__V1__PodSandboxStatsResponse *r = xmalloc(sizeof(*r));
        runtime__v1__pod_sandbox_stats_response__init(r);
        r->stats = pod_stats(d, &p);
        store_pod_clear(&p);
        *resp = &r->base;
        return 0;
}

static int list_pod_stats(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                          ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ListPodSandboxStatsRequest *rq =
                (const Runtime__V1__ListPodSandboxStatsRequest *)req;
        const Runtime__V1__PodSandboxStatsFilter *f = rq->filter;
        Runtime__V1__ListPodSandboxStatsResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_pod_sandbox_stats_response__init(r);
        if (collect_pods(d, f ? f->id : NULL, f ? f->n_label_selector : 0,
                         f ? (void *const *)f->label_selector : NULL, &r->stats, &r->n_stats, e) < 0) {
                free(r);
                return -1;
        }
        *resp = &r->base;
        return 0;
}

static int stream_pod_stats(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            struct err *e)
{
        const Runtime__V1__StreamPodSandboxStatsRequest *rq =
                (const Runtime__V1__StreamPodSandboxStatsRequest *)req;
        const Runtime__V1__PodSandboxStatsFilter *f = rq->filter;
        Runtime__V1__PodSandboxStats **all = NULL;
        size_t n = 0;
        if (collect_pods(d, f ? f->id : NULL, f ? f->n_label_selector : 0,
                         f ? (void *const *)f->label_selector : NULL, &all, &n, e) < 0)
                return -1;
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i += 50) {
                Runtime__V1__StreamPodSandboxStatsResponse m =
                        RUNTIME__V1__STREAM_POD_SANDBOX_STATS_RESPONSE__INIT;
                m.pod_sandbox_stats = all + i;
                m.n_pod_sandbox_stats = n - i < 50 ? n - i : 50;
                r = cri_call_send(call, &m.base, e);
        }
        for (size_t i = 0; i < n; i++)
                protobuf_c_message_free_unpacked(&all[i]->base, NULL);
        free(all);
        return r;
}

const struct cri_handler cri_stats_handlers[] = {
        {.name = "ContainerStats", .unary = container_stats},
        {.name = "ListContainerStats", .unary = list_container_stats},
        {.name = "StreamContainerStats", .stream = stream_container_stats},
        {.name = "PodSandboxStats", .unary = pod_sandbox_stats},
        {.name = "ListPodSandboxStats", .unary = list_pod_stats},
        {.name = "StreamPodSandboxStats", .stream = stream_pod_stats},
        {0},
};
