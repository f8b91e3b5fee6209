/* RuntimeService pod sandboxes, the read side: PodSandboxStatus,
 * ListPodSandbox, StreamPodSandboxes, answered from the model alone. A pod
 * that can die by itself (a VM pod whose VM died) is turned NOTREADY by the
 * exit monitor when its VM shim reports it (cri_pod_died), not at read time. */
#include <string.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "cri/cri-internal.h"
#include "cri/handler-internal.h"
#include "store/store.h"

static char **ips_of(const struct store_pod *p)
{
        if (p->ips_json == NULL)
                return NULL;
        yajl_val v = json_parse(p->ips_json, strlen(p->ips_json), "ips", NULL);
        char **out = NULL;
        if (v && YAJL_IS_ARRAY(v))
                for (size_t i = 0; i < v->u.array.len; i++)
                        if (YAJL_IS_STRING(v->u.array.values[i]))
                                strv_push(&out, v->u.array.values[i]->u.string);
        yajl_tree_free(v);
        return out;
}

static Runtime__V1__PodSandboxState pod_state(int st)
{
        return st == STORE_POD_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                     : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

static Runtime__V1__PodSandboxStatus *build_status(const struct store_pod *p)
{
        Runtime__V1__PodSandboxStatus *s = xmalloc(sizeof(*s));
        runtime__v1__pod_sandbox_status__init(s);
        s->id = xstrdup(p->id);
        s->metadata = cri_pod_metadata(p->name, p->uid, p->namespace, p->attempt);
        s->state = pod_state(p->state);
        s->created_at = p->created_ns;
        s->runtime_handler = xstrdup(p->runtime_handler ? p->runtime_handler : "");
        s->n_labels =
                cri_map_from_json(p->labels_json, &runtime__v1__pod_sandbox_status__labels_entry__descriptor,
                                  (void ***)&s->labels);
        s->n_annotations = cri_map_from_json(p->annotations_json,
                                             &runtime__v1__pod_sandbox_status__annotations_entry__descriptor,
                                             (void ***)&s->annotations);
        struct cri_pod_extra x = {0};
        cleanup_err struct err e = ERR_INIT;
        (void)cri_pod_extra_parse(p->extra_json, &x, &e);
        s->network = xmalloc(sizeof(*s->network));
        runtime__v1__pod_sandbox_network_status__init(s->network);
        cleanup_strv char **ips = x.host_net || p->state != STORE_POD_READY ? NULL : ips_of(p);
        s->network->ip = xstrdup(ips && ips[0] ? ips[0] : "");
        size_t n_ips = strv_len(ips);
        if (n_ips > 1) {
                s->network->n_additional_ips = n_ips - 1;
                s->network->additional_ips = xcalloc(n_ips - 1, sizeof(*s->network->additional_ips));
                for (size_t i = 1; i < n_ips; i++) {
                        Runtime__V1__PodIP *ip = xmalloc(sizeof(*ip));
                        runtime__v1__pod_ip__init(ip);
                        ip->ip = xstrdup(ips[i]);
                        s->network->additional_ips[i - 1] = ip;
                }
        }
        s->linux = xmalloc(sizeof(*s->linux));
        runtime__v1__linux_pod_sandbox_status__init(s->linux);
        s->linux->namespaces = xmalloc(sizeof(*s->linux->namespaces));
        runtime__v1__namespace__init(s->linux->namespaces);
        Runtime__V1__NamespaceOption *o = xmalloc(sizeof(*o));
        runtime__v1__namespace_option__init(o);
        o->network = x.host_net ? RUNTIME__V1__NAMESPACE_MODE__NODE : RUNTIME__V1__NAMESPACE_MODE__POD;
        o->ipc = x.host_ipc ? RUNTIME__V1__NAMESPACE_MODE__NODE : RUNTIME__V1__NAMESPACE_MODE__POD;
        o->pid = x.host_pid     ? RUNTIME__V1__NAMESPACE_MODE__NODE
                 : x.shared_pid ? RUNTIME__V1__NAMESPACE_MODE__POD
                                : RUNTIME__V1__NAMESPACE_MODE__CONTAINER;
        s->linux->namespaces->options = o;
        cri_pod_extra_clear(&x);
        return s;
}

static int pod_status(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__PodSandboxStatusRequest *rq = (const Runtime__V1__PodSandboxStatusRequest *)req;
        struct store_pod p = {0};
        if (cri_pod_resolve(d, rq->pod_sandbox_id, &p, e) < 0)
                return -1;
        Runtime__V1__PodSandboxStatusResponse *r = xmalloc(sizeof(*r));
        runtime__v1__pod_sandbox_status_response__init(r);
        r->status = build_status(&p);
        r->n_containers_statuses = cri_containers_statuses(d, p.id, &r->containers_statuses);
        r->timestamp = time_now_ns();
        if (rq->verbose) {
                struct cri_pod_extra x = {0};
                cleanup_err struct err pe = ERR_INIT;
                (void)cri_pod_extra_parse(p.extra_json, &x, &pe);
                struct sbuf b = {0};
                sbuf_puts(&b, "{\"netns\":");
                json_quote(&b, p.netns_path ? p.netns_path : "");
                sbuf_puts(&b, ",\"nsDir\":");
                json_quote(&b, x.ns_dir);
                sbuf_puts(&b, ",\"podDir\":");
                json_quote(&b, x.pod_dir);
                sbuf_puts(&b, ",\"cgroupParent\":");
                json_quote(&b, x.cgroup);
                sbuf_printf(&b, ",\"podInitPid\":%d,\"cniAttached\":%s", x.pod_init_pid,
                            x.net_setup ? "true" : "false");
                const struct cri_handler_ops *h = cri_handler_of_pod(&x);
                if (h->sandbox_info) {
                        cleanup_free char *hi = h->sandbox_info(d, &p, &x);
                        sbuf_printf(&b, ",\"%s\":%s", h->info_key, hi);
                }
                sbuf_putc(&b, '}');
                cri_pod_extra_clear(&x);
                r->n_info = 1;
                r->info = xcalloc(1, sizeof(*r->info));
                Runtime__V1__PodSandboxStatusResponse__InfoEntry *kv = xmalloc(sizeof(*kv));
                runtime__v1__pod_sandbox_status_response__info_entry__init(kv);
                kv->key = xstrdup("info");
                kv->value = sbuf_steal(&b);
                r->info[0] = kv;
        }
        store_pod_clear(&p);
        *resp = &r->base;
        return 0;
}

struct collect {
        const Runtime__V1__PodSandboxFilter *f;
        struct cri_packed *items;
        size_t n, cap;
};

static bool collect_one(const struct store_pod *p, const void *view, void *arg)
{
        struct collect *k = arg;
        const struct cri_pod_view *v = view;
        const Runtime__V1__PodSandboxFilter *f = k->f;
        if (v == NULL || p->state == STORE_POD_CREATING)
                return true;
        if (f && f->id && *f->id && !str_has_prefix(p->id, f->id))
                return true;
        if (f && f->state && pod_state(p->state) != f->state->state)
                return true;
        if (f && !cri_map_match(&v->labels, f->n_label_selector, (void *const *)f->label_selector))
                return true;
        if (k->n == k->cap) {
                k->cap = k->cap ? k->cap * 2 : 64;
                k->items = xrealloc(k->items, k->cap * sizeof(*k->items));
        }
        k->items[k->n++] = cri_packed_copy(&v->item);
        return true;
}

static void collect(struct cri_daemon *d, const Runtime__V1__PodSandboxFilter *f, struct cri_packed **out,
                    size_t *n_out)
{
        struct collect k = {.f = f};
        model_pod_each(d->model, collect_one, &k);
        *out = k.items;
        *n_out = k.n;
}

static int list_pods(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                     ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        (void)e;
        const Runtime__V1__ListPodSandboxRequest *rq = (const Runtime__V1__ListPodSandboxRequest *)req;
        Runtime__V1__ListPodSandboxResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_pod_sandbox_response__init(r);
        struct cri_packed *items;
        size_t n;
        collect(d, rq->filter, &items, &n);
        cri_packed_attach(&r->base, 1 /* items */, items, n);
        free(items);
        *resp = &r->base;
        return 0;
}

/* Batches keep each message far below the 16 MiB limit at any pod count. */
#define STREAM_BATCH 100

static int stream_pods(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                       struct err *e)
{
        const Runtime__V1__StreamPodSandboxesRequest *rq =
                (const Runtime__V1__StreamPodSandboxesRequest *)req;
        struct cri_packed *items;
        size_t n;
        collect(d, rq->filter, &items, &n);
        int ret = 0;
        for (size_t i = 0; i < n && ret == 0; i += STREAM_BATCH) {
                Runtime__V1__StreamPodSandboxesResponse m = RUNTIME__V1__STREAM_POD_SANDBOXES_RESPONSE__INIT;
                cri_packed_attach(&m.base, 1 /* pod_sandboxes */, items + i,
                                  n - i < STREAM_BATCH ? n - i : STREAM_BATCH);
                ret = cri_call_send(call, &m.base, e);
                for (size_t j = 0; j < m.base.n_unknown_fields; j++)
                        free(m.base.unknown_fields[j].data);
                free(m.base.unknown_fields);
        }
        for (size_t i = 0; i < n; i++)
                free(items[i].buf);
        free(items);
        return ret;
}

const struct cri_handler cri_pod_status_handlers[] = {
        {.name = "PodSandboxStatus", .unary = pod_status},
        {.name = "ListPodSandbox", .unary = list_pods},
        {.name = "StreamPodSandboxes", .stream = stream_pods},
        {0},
};
