/* ContainerStatus, ListContainers, StreamContainers: answered from the
 * model alone, with no SQL and no call to a shim. The records are kept
 * current by events: the exit monitor (ctr_monitor.c) writes an exit the
 * moment a shim reports it and publishes CONTAINER_STOPPED_EVENT then. A
 * list reply copies each container's list item, packed once when its record
 * was written (the view below). */
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "cri/ctr-internal.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "snapshot/snapshot.h"

static char *verbose_info(struct cri_daemon *d, const struct store_container *c)
{
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        struct sbuf b = {0};
        sbuf_printf(&b,
                    "{\"pid\":%d,\"shimPid\":%d,\"sandboxID\":", c->state == STORE_CTR_RUNNING ? c->pid : 0,
                    x.shim_pid);
        json_quote(&b, c->pod_id);
        sbuf_puts(&b, ",\"bundle\":");
        json_quote(&b, x.bundle ? x.bundle : "");
        sbuf_puts(&b, ",\"stateDir\":");
        json_quote(&b, x.state_dir ? x.state_dir : "");
        sbuf_puts(&b, ",\"cgroup\":");
        json_quote(&b, x.cgroup ? x.cgroup : "");
        sbuf_puts(&b, ",\"snapshotKey\":");
        json_quote(&b, c->snapshot_key ? c->snapshot_key : c->id);
        sbuf_puts(&b, ",\"snapshotter\":");
        json_quote(&b, d->snaps ? snap_driver_name(d->snaps) : "");
        cleanup_free char *spec_path = x.bundle ? path_join(x.bundle, "spec.json") : NULL;
        struct rt_spec *spec = spec_path ? rt_spec_read_file(spec_path, NULL) : NULL;
        if (spec) {
                static const char *const ns_names[] = {"mount", "pid",  "network", "ipc",
                                                       "uts",   "user", "cgroup"};
                static const char *const modes[] = {"host", "new", "join"};
                sbuf_puts(&b, ",\"runtimeSpec\":{\"args\":[");
                for (size_t i = 0; spec->process.args && spec->process.args[i]; i++) {
                        if (i)
                                sbuf_putc(&b, ',');
                        json_quote(&b, spec->process.args[i]);
                }
                sbuf_puts(&b, "],\"cwd\":");
                json_quote(&b, spec->process.cwd ? spec->process.cwd : "/");
                sbuf_printf(&b, ",\"uid\":%u,\"gid\":%u,\"username\":", spec->process.uid, spec->process.gid);
                json_quote(&b, spec->process.username ? spec->process.username : "");
                sbuf_printf(&b,
                            ",\"privileged\":%s,\"readonlyRootfs\":%s,\"noNewPrivs\":%s,\"seccomp\":%s,"
                            "\"tty\":%s,\"capabilities\":[",
                            spec->privileged ? "true" : "false", spec->readonly_rootfs ? "true" : "false",
                            spec->process.no_new_privs ? "true" : "false", spec->seccomp ? "true" : "false",
                            spec->process.tty ? "true" : "false");
                for (size_t i = 0; spec->process.caps.bounding && spec->process.caps.bounding[i]; i++) {
                        if (i)
                                sbuf_putc(&b, ',');
                        json_quote(&b, spec->process.caps.bounding[i]);
                }
                sbuf_puts(&b, "],\"namespaces\":{");
                for (int i = 0; i < RT_NS_COUNT; i++) {
                        sbuf_printf(&b, "%s\"%s\":", i ? "," : "", ns_names[i]);
                        const struct rt_namespace *n = &spec->namespaces[i];
                        if (n->mode == RT_NS_JOIN && n->path)
                                json_quote(&b, n->path);
                        else
                                sbuf_printf(&b, "\"%s\"", modes[n->mode]);
                }
                sbuf_printf(&b,
                            "},\"mounts\":%zu,\"memoryLimit\":%lld,\"cpuQuota\":%lld,\"cpuPeriod\":%llu,"
                            "\"cpuShares\":%llu}",
                            spec->n_mounts, (long long)spec->resources.memory_limit,
                            (long long)spec->resources.cpu_quota,
                            (unsigned long long)spec->resources.cpu_period,
                            (unsigned long long)spec->resources.cpu_shares);
                rt_spec_free(spec);
        }
        sbuf_putc(&b, '}');
        ctr_extra_clear(&x);
        return sbuf_steal(&b);
}

static bool put_status(const struct store_container *c, const void *view, void *arg)
{
        (void)c;
        const struct ctr_view *v = view;
        if (v)
                cri_packed_put(arg, 1 /* status */, &v->status);
        return true;
}

/* The status as packed in the container's view; verbose adds the info
 * built from the record and its spec. */
static int ctr_status(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct err *e)
{
        (void)resp;
        const Runtime__V1__ContainerStatusRequest *rq = (const Runtime__V1__ContainerStatusRequest *)req;
        char id[ID_LEN + 1];
        if (rq->container_id == NULL || *rq->container_id == '\0')
                return err_set(e, ERR_INVALID, "container id is empty");
        if (model_ctr_resolve(d->model, rq->container_id, id, e) < 0)
                return err_is(e, ERR_NOT_FOUND)
                               ? err_set(e, ERR_NOT_FOUND, "container %s not found", rq->container_id)
                               : -1;
        struct sbuf b = {0};
        struct store_container c = {0};
        if (!model_ctr_with(d->model, id, put_status, &b) ||
            (rq->verbose && model_ctr_get(d->model, id, &c, e) < 0)) {
                sbuf_free(&b);
                return err_set(e, ERR_NOT_FOUND, "container %s not found", rq->container_id);
        }
        if (rq->verbose) {
                cleanup_free char *info = verbose_info(d, &c);
                cri_wire_map_entry(&b, 2 /* info */, "info", info);
                store_ctr_clear(&c);
        }
        cri_call_reply_bytes(call, &b);
        return 0;
}

/* ---------- list ---------- */

struct collect {
        const Runtime__V1__ContainerFilter *f;
        const char *id;           /* resolved filter id or NULL */
        struct sbuf *b;           /* a reply: items put as field 1 */
        struct cri_packed *items; /* else copies */
        size_t n, cap;
};
static bool collect_one(const struct store_container *c, const void *view, void *arg)
{
        struct collect *k = arg;
        const struct ctr_view *v = view;
        if (v == NULL || !v->ready)
                return true;
        if (k->id && strcmp(c->id, k->id) != 0)
                return true;
        if (k->f && k->f->state && ctr_cri_state(c->state) != k->f->state->state)
                return true;
        if (k->f && !cri_map_match(&v->labels, k->f->n_label_selector, (void *const *)k->f->label_selector))
                return true;
        if (k->b) {
                cri_packed_put(k->b, 1 /* containers */, &v->item);
                return !k->id; /* one id: done */
        }
        if (k->n == k->cap) {
                k->cap = k->cap ? k->cap * 2 : 64;
                k->items = xrealloc(k->items, k->cap * sizeof(*k->items));
        }
        k->items[k->n++] = cri_packed_copy(&v->item);
        return !k->id;
}

/* The list items the filter selects: put into b when b is given, else
 * copied out (caller frees each buf and the array). */
static void collect(struct cri_daemon *d, const Runtime__V1__ContainerFilter *f, struct sbuf *b,
                    struct cri_packed **out, size_t *nout)
{
        *out = NULL;
        *nout = 0;
        char id[ID_LEN + 1] = "", pod_id[ID_LEN + 1] = "";
        cleanup_err struct err e = ERR_INIT;
        /* A given id that matches nothing selects nothing. */
        if (f && f->id && *f->id && model_ctr_resolve(d->model, f->id, id, &e) < 0)
                return;
        err_clear(&e);
        if (f && f->pod_sandbox_id && *f->pod_sandbox_id &&
            model_pod_resolve(d->model, f->pod_sandbox_id, pod_id, &e) < 0)
                return;
        struct collect k = {.f = f, .id = *id ? id : NULL, .b = b};
        model_ctr_each(d->model, *pod_id ? pod_id : NULL, collect_one, &k);
        *out = k.items;
        *nout = k.n;
}

static int ctr_list(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                    ProtobufCMessage **resp, struct err *e)
{
        (void)resp;
        (void)e;
        const Runtime__V1__ListContainersRequest *rq = (const Runtime__V1__ListContainersRequest *)req;
        const Runtime__V1__ContainerFilter *f = rq->filter;
        bool all =
                f == NULL || ((f->id == NULL || !*f->id) && f->state == NULL &&
                              (f->pod_sandbox_id == NULL || !*f->pod_sandbox_id) && f->n_label_selector == 0);
        uint64_t gen = 0;
        struct cri_shared_reply *cached = all ? cri_list_cache_get(d->ctr_list, d, &gen) : NULL;
        if (cached) {
                cri_call_reply_shared(call, cached);
                return 0;
        }
        struct sbuf b = {0};
        struct cri_packed *items;
        size_t n;
        collect(d, f, &b, &items, &n);
        if (all)
                cri_call_reply_shared(call, cri_list_cache_put(d->ctr_list, gen, &b));
        else
                cri_call_reply_bytes(call, &b);
        return 0;
}

static int ctr_stream(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req, struct err *e)
{
        const Runtime__V1__StreamContainersRequest *rq = (const Runtime__V1__StreamContainersRequest *)req;
        struct cri_packed *items;
        size_t n;
        collect(d, rq->filter, NULL, &items, &n);
        /* Batches of 100 keep each message far below the size cap. */
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i += 100) {
                Runtime__V1__StreamContainersResponse m = RUNTIME__V1__STREAM_CONTAINERS_RESPONSE__INIT;
                cri_packed_attach(&m.base, 1 /* containers */, items + i, n - i < 100 ? n - i : 100);
                r = cri_call_send(call, &m.base, e);
                for (size_t j = 0; j < m.base.n_unknown_fields; j++)
                        free(m.base.unknown_fields[j].data);
                free(m.base.unknown_fields);
        }
        for (size_t i = 0; i < n; i++)
                free(items[i].buf);
        free(items);
        return r;
}

const struct cri_handler cri_ctr_status_handlers[] = {
        /* From memory under a read lock: inline, no hand-off to a worker. */
        {.name = "ContainerStatus", .unary = ctr_status, .flags = CRI_INLINE},
        {.name = "ListContainers", .unary = ctr_list, .flags = CRI_INLINE},
        {.name = "StreamContainers", .stream = ctr_stream},
        {0},
};
