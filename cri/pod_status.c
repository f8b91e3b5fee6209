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

static char *verbose_info(struct cri_daemon *d, const struct store_pod *p)
{
        struct cri_pod_extra x = {0};
        cleanup_err struct err pe = ERR_INIT;
        (void)cri_pod_extra_parse(p->extra_json, &x, &pe);
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"netns\":");
        json_quote(&b, p->netns_path ? p->netns_path : "");
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
                cleanup_free char *hi = h->sandbox_info(d, p, &x);
                sbuf_printf(&b, ",\"%s\":%s", h->info_key, hi);
        }
        sbuf_putc(&b, '}');
        cri_pod_extra_clear(&x);
        return sbuf_steal(&b);
}

static bool put_status(const struct store_pod *p, const void *view, void *arg)
{
        (void)p;
        const struct cri_pod_view *v = view;
        if (v)
                cri_packed_put(arg, 1 /* status */, &v->status);
        return true;
}

/* The pod's and its containers' statuses as packed in their views: a reply
 * that copies bytes, with no message built. */
static int pod_status(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                      ProtobufCMessage **resp, struct err *e)
{
        (void)resp;
        const Runtime__V1__PodSandboxStatusRequest *rq = (const Runtime__V1__PodSandboxStatusRequest *)req;
        char id[ID_LEN + 1];
        if (rq->pod_sandbox_id == NULL || *rq->pod_sandbox_id == '\0')
                return err_set(e, ERR_INVALID, "pod sandbox id is empty");
        if (model_pod_resolve(d->model, rq->pod_sandbox_id, id, e) < 0)
                return err_is(e, ERR_NOT_FOUND)
                               ? err_set(e, ERR_NOT_FOUND, "pod sandbox %s not found", rq->pod_sandbox_id)
                               : -1;
        struct sbuf b = {0};
        struct store_pod p = {0};
        if (!model_pod_with(d->model, id, put_status, &b) ||
            (rq->verbose && model_pod_get(d->model, id, &p, e) < 0)) {
                sbuf_free(&b);
                return err_set(e, ERR_NOT_FOUND, "pod sandbox %s not found", rq->pod_sandbox_id);
        }
        if (rq->verbose) {
                cleanup_free char *info = verbose_info(d, &p);
                cri_wire_map_entry(&b, 2 /* info */, "info", info);
                store_pod_clear(&p);
        }
        cri_ctr_statuses_put(d, id, 3 /* containers_statuses */, &b);
        cri_wire_varint(&b, 4 /* timestamp */, (uint64_t)time_now_ns());
        cri_call_reply_bytes(call, &b);
        return 0;
}

struct collect {
        const Runtime__V1__PodSandboxFilter *f;
        struct sbuf *b;           /* a reply: items put as field 1 */
        struct cri_packed *items; /* else copies */
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
        if (f && f->state && cri_pod_state(p->state) != f->state->state)
                return true;
        if (f && !cri_map_match(&v->labels, f->n_label_selector, (void *const *)f->label_selector))
                return true;
        if (k->b) {
                cri_packed_put(k->b, 1 /* items */, &v->item);
                return true;
        }
        if (k->n == k->cap) {
                k->cap = k->cap ? k->cap * 2 : 64;
                k->items = xrealloc(k->items, k->cap * sizeof(*k->items));
        }
        k->items[k->n++] = cri_packed_copy(&v->item);
        return true;
}

static void collect(struct cri_daemon *d, const Runtime__V1__PodSandboxFilter *f, struct sbuf *b,
                    struct cri_packed **out, size_t *n_out)
{
        struct collect k = {.f = f, .b = b};
        model_pod_each(d->model, collect_one, &k);
        *out = k.items;
        *n_out = k.n;
}

static int list_pods(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                     ProtobufCMessage **resp, struct err *e)
{
        (void)resp;
        (void)e;
        const Runtime__V1__ListPodSandboxRequest *rq = (const Runtime__V1__ListPodSandboxRequest *)req;
        const Runtime__V1__PodSandboxFilter *f = rq->filter;
        bool all = f == NULL || ((f->id == NULL || !*f->id) && f->state == NULL && f->n_label_selector == 0);
        uint64_t gen = 0;
        struct cri_shared_reply *cached = all ? cri_list_cache_get(d->pod_list, d, &gen) : NULL;
        if (cached) {
                cri_call_reply_shared(call, cached);
                return 0;
        }
        struct sbuf b = {0};
        struct cri_packed *items;
        size_t n;
        collect(d, f, &b, &items, &n);
        if (all)
                cri_call_reply_shared(call, cri_list_cache_put(d->pod_list, gen, &b));
        else
                cri_call_reply_bytes(call, &b);
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
        collect(d, rq->filter, NULL, &items, &n);
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
        /* From memory under a read lock: inline, no hand-off to a worker. */
        {.name = "PodSandboxStatus", .unary = pod_status, .flags = CRI_INLINE},
        {.name = "ListPodSandbox", .unary = list_pods, .flags = CRI_INLINE},
        {.name = "StreamPodSandboxes", .stream = stream_pods},
        {0},
};
