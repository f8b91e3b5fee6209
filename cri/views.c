/* What the model caches per record (the parsed labels and the packed list
 * item, made once when a record is written) and the CRI status messages
 * built from records: ContainerStatus for the RPC, for PodSandboxStatus
 * and for the events. Records in, messages out: no handler, no shim. */
#include <stdio.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "cri/ctr-internal.h"
#include "runtime/runtime.h"

Runtime__V1__ContainerState ctr_cri_state(int st)
{
        switch (st) {
        case STORE_CTR_CREATED:
                return RUNTIME__V1__CONTAINER_STATE__CONTAINER_CREATED;
        case STORE_CTR_RUNNING:
                return RUNTIME__V1__CONTAINER_STATE__CONTAINER_RUNNING;
        case STORE_CTR_EXITED:
                return RUNTIME__V1__CONTAINER_STATE__CONTAINER_EXITED;
        default:
                return RUNTIME__V1__CONTAINER_STATE__CONTAINER_UNKNOWN;
        }
}

static Runtime__V1__ContainerMetadata *metadata(const struct store_container *c)
{
        Runtime__V1__ContainerMetadata *m = xmalloc(sizeof(*m));
        runtime__v1__container_metadata__init(m);
        m->name = xstrdup(c->name ? c->name : "");
        m->attempt = c->attempt;
        return m;
}

static Runtime__V1__ImageSpec *image_spec(const char *image)
{
        Runtime__V1__ImageSpec *s = xmalloc(sizeof(*s));
        runtime__v1__image_spec__init(s);
        s->image = xstrdup(image ? image : "");
        return s;
}

/* A deep copy through pack/unpack: the copy is malloc'ed like any unpacked message. */
static void *msg_copy(const ProtobufCMessage *m)
{
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = xmalloc(len ? len : 1);
        protobuf_c_message_pack(m, buf);
        void *out = protobuf_c_message_unpack(m->descriptor, NULL, len, buf);
        free(buf);
        return out;
}

/* "uid:gid:g1,g2,..." as the shim read it from the process at start. */
static bool recorded_user(const char *rec, Runtime__V1__LinuxContainerUser *u)
{
        char *p;
        if (rec == NULL)
                return false;
        u->uid = strtoll(rec, &p, 10);
        if (*p != ':')
                return false;
        u->gid = strtoll(p + 1, &p, 10);
        if (*p != ':')
                return false;
        while (*++p) {
                char *end;
                long long g = strtoll(p, &end, 10);
                if (end == p)
                        break;
                u->supplemental_groups =
                        xrealloc(u->supplemental_groups, (u->n_supplemental_groups + 1) * sizeof(int64_t));
                u->supplemental_groups[u->n_supplemental_groups++] = g;
                p = end;
                if (*p != ',')
                        break;
        }
        return true;
}

/* The identity the process got (read when it started); before that, what
 * the spec asks for (the image's /etc/passwd and /etc/group are read only
 * inside the container). */
static Runtime__V1__ContainerUser *user_of(const struct ctr_extra *x, const struct rt_spec *spec)
{
        Runtime__V1__ContainerUser *u = xmalloc(sizeof(*u));
        runtime__v1__container_user__init(u);
        u->linux = xmalloc(sizeof(*u->linux));
        runtime__v1__linux_container_user__init(u->linux);
        if (recorded_user(x->user, u->linux))
                return u;
        free(u->linux->supplemental_groups);
        u->linux->supplemental_groups = NULL;
        u->linux->n_supplemental_groups = 0;
        if (spec) {
                u->linux->uid = spec->process.uid;
                u->linux->gid = spec->process.gid;
                if (spec->process.n_additional_gids) {
                        u->linux->supplemental_groups =
                                xcalloc(spec->process.n_additional_gids, sizeof(int64_t));
                        for (size_t i = 0; i < spec->process.n_additional_gids; i++)
                                u->linux->supplemental_groups[i] = spec->process.additional_gids[i];
                        u->linux->n_supplemental_groups = spec->process.n_additional_gids;
                }
        }
        return u;
}

Runtime__V1__ContainerStatus *ctr_status_build(const struct store_container *c)
{
        Runtime__V1__ContainerStatus *s = xmalloc(sizeof(*s));
        runtime__v1__container_status__init(s);
        s->id = xstrdup(c->id);
        s->metadata = metadata(c);
        s->state = ctr_cri_state(c->state);
        s->created_at = c->created_ns;
        s->started_at = c->started_ns;
        s->finished_at = c->finished_ns;
        s->exit_code = c->exit_code;
        s->image = image_spec(c->image_ref);
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        s->image_ref = xstrdup(x.image_ref ? x.image_ref : c->image_id ? c->image_id : "");
        s->image_id = xstrdup(c->image_id ? c->image_id : "");
        s->reason = xstrdup(c->reason ? c->reason : "");
        s->message = xstrdup(c->message ? c->message : "");
        s->log_path = xstrdup(c->log_path ? c->log_path : "");
        s->n_labels =
                cri_map_from_json(c->labels_json, &runtime__v1__container_status__labels_entry__descriptor,
                                  (void ***)&s->labels);
        s->n_annotations = cri_map_from_json(c->annotations_json,
                                             &runtime__v1__container_status__annotations_entry__descriptor,
                                             (void ***)&s->annotations);
        Runtime__V1__ContainerConfig *cfg = ctr_config(c);
        if (cfg) {
                if (cfg->n_mounts) {
                        s->mounts = xcalloc(cfg->n_mounts, sizeof(*s->mounts));
                        for (size_t i = 0; i < cfg->n_mounts; i++)
                                s->mounts[i] = msg_copy(&cfg->mounts[i]->base);
                        s->n_mounts = cfg->n_mounts;
                }
                if (cfg->linux && cfg->linux->resources) {
                        s->resources = xmalloc(sizeof(*s->resources));
                        runtime__v1__container_resources__init(s->resources);
                        s->resources->linux = msg_copy(&cfg->linux->resources->base);
                }
                s->stop_signal = cfg->stop_signal;
                runtime__v1__container_config__free_unpacked(cfg, NULL);
        }
        cleanup_free char *spec_path = x.bundle ? path_join(x.bundle, "spec.json") : NULL;
        struct rt_spec *spec = spec_path && x.user == NULL ? rt_spec_read_file(spec_path, NULL) : NULL;
        s->user = user_of(&x, spec);
        rt_spec_free(spec);
        ctr_extra_clear(&x);
        return s;
}

Runtime__V1__Container *ctr_item_build(const struct store_container *c)
{
        Runtime__V1__Container *it = xmalloc(sizeof(*it));
        runtime__v1__container__init(it);
        it->id = xstrdup(c->id);
        it->pod_sandbox_id = xstrdup(c->pod_id);
        it->metadata = metadata(c);
        it->image = image_spec(c->image_ref);
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        it->image_ref = xstrdup(x.image_ref ? x.image_ref : c->image_id ? c->image_id : "");
        ctr_extra_clear(&x);
        it->image_id = xstrdup(c->image_id ? c->image_id : "");
        it->state = ctr_cri_state(c->state);
        it->created_at = c->created_ns;
        it->n_labels = cri_map_from_json(c->labels_json, &runtime__v1__container__labels_entry__descriptor,
                                         (void ***)&it->labels);
        it->n_annotations =
                cri_map_from_json(c->annotations_json, &runtime__v1__container__annotations_entry__descriptor,
                                  (void ***)&it->annotations);
        return it;
}

/* ---------- the model's views ---------- */

static void *ctr_view_make(const struct store_container *c)
{
        struct ctr_view *v = xzalloc(sizeof(*v));
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        v->ready = x.ready || c->state != STORE_CTR_CREATED;
        ctr_extra_clear(&x);
        cri_map_parse(c->labels_json, &v->labels);
        Runtime__V1__Container *it = ctr_item_build(c);
        cri_packed_make(&it->base, &v->item);
        protobuf_c_message_free_unpacked(&it->base, NULL);
        Runtime__V1__ContainerStatus *st = ctr_status_build(c);
        cri_packed_make(&st->base, &v->status);
        protobuf_c_message_free_unpacked(&st->base, NULL);
        return v;
}

static void ctr_view_free(void *p)
{
        struct ctr_view *v = p;
        cri_map_clear(&v->labels);
        free(v->item.buf);
        free(v->status.buf);
        free(v);
}

static Runtime__V1__PodSandbox *build_item(const struct store_pod *p)
{
        Runtime__V1__PodSandbox *s = xmalloc(sizeof(*s));
        runtime__v1__pod_sandbox__init(s);
        s->id = xstrdup(p->id);
        s->metadata = cri_pod_metadata(p->name, p->uid, p->namespace, p->attempt);
        s->state = cri_pod_state(p->state);
        s->created_at = p->created_ns;
        s->runtime_handler = xstrdup(p->runtime_handler ? p->runtime_handler : "");
        s->n_labels = cri_map_from_json(p->labels_json, &runtime__v1__pod_sandbox__labels_entry__descriptor,
                                        (void ***)&s->labels);
        s->n_annotations = cri_map_from_json(p->annotations_json,
                                             &runtime__v1__pod_sandbox__annotations_entry__descriptor,
                                             (void ***)&s->annotations);
        return s;
}

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

Runtime__V1__PodSandboxState cri_pod_state(int st)
{
        return st == STORE_POD_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                     : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
}

Runtime__V1__PodSandboxStatus *cri_pod_status_build(const struct store_pod *p)
{
        Runtime__V1__PodSandboxStatus *s = xmalloc(sizeof(*s));
        runtime__v1__pod_sandbox_status__init(s);
        s->id = xstrdup(p->id);
        s->metadata = cri_pod_metadata(p->name, p->uid, p->namespace, p->attempt);
        s->state = cri_pod_state(p->state);
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

static void *pod_view_make(const struct store_pod *p)
{
        struct cri_pod_view *v = xzalloc(sizeof(*v));
        cri_map_parse(p->labels_json, &v->labels);
        Runtime__V1__PodSandbox *it = build_item(p);
        cri_packed_make(&it->base, &v->item);
        protobuf_c_message_free_unpacked(&it->base, NULL);
        Runtime__V1__PodSandboxStatus *st = cri_pod_status_build(p);
        cri_packed_make(&st->base, &v->status);
        protobuf_c_message_free_unpacked(&st->base, NULL);
        return v;
}

static void pod_view_free(void *p)
{
        struct cri_pod_view *v = p;
        cri_map_clear(&v->labels);
        free(v->item.buf);
        free(v->status.buf);
        free(v);
}

size_t cri_containers_statuses(struct cri_daemon *d, const char *pod_id, Runtime__V1__ContainerStatus ***out)
{
        *out = NULL;
        struct store_container *v = NULL;
        size_t n = 0;
        cleanup_err struct err e = ERR_INIT;
        if (model_ctr_list(d->model, pod_id, &v, &n, &e) < 0 || n == 0) {
                store_ctrs_free(v, n);
                return 0;
        }
        Runtime__V1__ContainerStatus **arr = xcalloc(n, sizeof(*arr));
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                arr[k++] = ctr_status_build(&v[i]);
        store_ctrs_free(v, n);
        *out = arr;
        return k;
}

struct statuses_put {
        struct sbuf *b;
        uint32_t tag;
};

static bool put_status(const struct store_container *c, const void *view, void *arg)
{
        (void)c;
        const struct ctr_view *v = view;
        struct statuses_put *k = arg;
        if (v)
                cri_packed_put(k->b, k->tag, &v->status);
        return true;
}

void cri_ctr_statuses_put(struct cri_daemon *d, const char *pod_id, uint32_t tag, struct sbuf *b)
{
        struct statuses_put k = {.b = b, .tag = tag};
        model_ctr_each(d->model, pod_id, put_status, &k);
}

const struct model_hooks cri_model_hooks = {
        .pod_view = pod_view_make,
        .pod_view_free = pod_view_free,
        .ctr_view = ctr_view_make,
        .ctr_view_free = ctr_view_free,
};
