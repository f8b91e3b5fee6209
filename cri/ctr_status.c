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

static Runtime__V1__ContainerState cri_state(int st)
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

Runtime__V1__ContainerStatus *ctr_status_build(struct cri_daemon *d, const struct store_container *c)
{
        (void)d;
        Runtime__V1__ContainerStatus *s = xmalloc(sizeof(*s));
        runtime__v1__container_status__init(s);
        s->id = xstrdup(c->id);
        s->metadata = metadata(c);
        s->state = cri_state(c->state);
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
        it->state = cri_state(c->state);
        it->created_at = c->created_ns;
        it->n_labels = cri_map_from_json(c->labels_json, &runtime__v1__container__labels_entry__descriptor,
                                         (void ***)&it->labels);
        it->n_annotations =
                cri_map_from_json(c->annotations_json, &runtime__v1__container__annotations_entry__descriptor,
                                  (void ***)&it->annotations);
        return it;
}

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

int ctr_status(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
               ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__ContainerStatusRequest *rq = (const Runtime__V1__ContainerStatusRequest *)req;
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        Runtime__V1__ContainerStatusResponse *r = xmalloc(sizeof(*r));
        runtime__v1__container_status_response__init(r);
        r->status = ctr_status_build(d, &c);
        if (rq->verbose) {
                Runtime__V1__ContainerStatusResponse__InfoEntry *kv = xmalloc(sizeof(*kv));
                runtime__v1__container_status_response__info_entry__init(kv);
                kv->key = xstrdup("info");
                kv->value = verbose_info(d, &c);
                r->info = xcalloc(1, sizeof(*r->info));
                r->info[0] = kv;
                r->n_info = 1;
        }
        store_ctr_clear(&c);
        *resp = &r->base;
        return 0;
}

/* ---------- the model's view of a container ---------- */

struct ctr_view {
        bool ready; /* false: a create in progress, not listed */
        struct cri_map labels;
        struct cri_packed item; /* Runtime__V1__Container */
};

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
        return v;
}

static void ctr_view_free(void *p)
{
        struct ctr_view *v = p;
        cri_map_clear(&v->labels);
        free(v->item.buf);
        free(v);
}

const struct model_hooks cri_model_hooks = {
        .pod_view = cri_pod_view_make,
        .pod_view_free = cri_pod_view_free,
        .ctr_view = ctr_view_make,
        .ctr_view_free = ctr_view_free,
};

/* ---------- list ---------- */

struct collect {
        const Runtime__V1__ContainerFilter *f;
        const char *id; /* resolved filter id or NULL */
        struct cri_packed *items;
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
        if (k->f && k->f->state && cri_state(c->state) != k->f->state->state)
                return true;
        if (k->f && !cri_map_match(&v->labels, k->f->n_label_selector, (void *const *)k->f->label_selector))
                return true;
        if (k->n == k->cap) {
                k->cap = k->cap ? k->cap * 2 : 64;
                k->items = xrealloc(k->items, k->cap * sizeof(*k->items));
        }
        k->items[k->n++] = cri_packed_copy(&v->item);
        return !k->id; /* one id: done */
}

/* The packed list items the filter selects (caller frees each buf and the array). */
static void collect(struct cri_daemon *d, const Runtime__V1__ContainerFilter *f, struct cri_packed **out,
                    size_t *nout)
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
        struct collect k = {.f = f, .id = *id ? id : NULL};
        model_ctr_each(d->model, *pod_id ? pod_id : NULL, collect_one, &k);
        *out = k.items;
        *nout = k.n;
}

int ctr_list(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
             ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        (void)e;
        const Runtime__V1__ListContainersRequest *rq = (const Runtime__V1__ListContainersRequest *)req;
        Runtime__V1__ListContainersResponse *r = xmalloc(sizeof(*r));
        runtime__v1__list_containers_response__init(r);
        struct cri_packed *items;
        size_t n;
        collect(d, rq->filter, &items, &n);
        cri_packed_attach(&r->base, 1 /* containers */, items, n);
        free(items);
        *resp = &r->base;
        return 0;
}

int ctr_stream(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req, struct err *e)
{
        const Runtime__V1__StreamContainersRequest *rq = (const Runtime__V1__StreamContainersRequest *)req;
        struct cri_packed *items;
        size_t n;
        collect(d, rq->filter, &items, &n);
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

/* ---------- events ---------- */

static Runtime__V1__PodSandboxStatus *pod_status_of(const struct store_pod *p)
{
        Runtime__V1__PodSandboxStatus *s = xmalloc(sizeof(*s));
        runtime__v1__pod_sandbox_status__init(s);
        s->id = xstrdup(p->id);
        s->metadata = cri_pod_metadata(p->name, p->uid, p->namespace, p->attempt);
        s->state = p->state == STORE_POD_READY ? RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_READY
                                               : RUNTIME__V1__POD_SANDBOX_STATE__SANDBOX_NOTREADY;
        s->created_at = p->created_ns;
        s->n_labels =
                cri_map_from_json(p->labels_json, &runtime__v1__pod_sandbox_status__labels_entry__descriptor,
                                  (void ***)&s->labels);
        s->n_annotations = cri_map_from_json(p->annotations_json,
                                             &runtime__v1__pod_sandbox_status__annotations_entry__descriptor,
                                             (void ***)&s->annotations);
        s->runtime_handler = xstrdup(p->runtime_handler ? p->runtime_handler : "");
        if (p->ips_json) {
                yajl_val v = json_parse(p->ips_json, strlen(p->ips_json), "ips", NULL);
                if (v && YAJL_IS_ARRAY(v) && v->u.array.len > 0) {
                        s->network = xmalloc(sizeof(*s->network));
                        runtime__v1__pod_sandbox_network_status__init(s->network);
                        for (size_t i = 0; i < v->u.array.len; i++) {
                                const char *ip = YAJL_GET_STRING(v->u.array.values[i]);
                                if (ip == NULL)
                                        continue;
                                if (i == 0) {
                                        s->network->ip = xstrdup(ip);
                                        continue;
                                }
                                Runtime__V1__PodIP *pi = xmalloc(sizeof(*pi));
                                runtime__v1__pod_ip__init(pi);
                                pi->ip = xstrdup(ip);
                                s->network->additional_ips =
                                        xrealloc(s->network->additional_ips,
                                                 (s->network->n_additional_ips + 1) * sizeof(*pi));
                                s->network->additional_ips[s->network->n_additional_ips++] = pi;
                        }
                }
                yajl_tree_free(v);
        }
        return s;
}

void cri_event(struct cri_daemon *d, const char *container_id, const char *pod_id,
               Runtime__V1__ContainerEventType type)
{
        if (d->events == NULL)
                return;
        Runtime__V1__ContainerEventResponse *ev = xmalloc(sizeof(*ev));
        runtime__v1__container_event_response__init(ev);
        ev->container_id = xstrdup(container_id);
        ev->container_event_type = type;
        ev->created_at = time_now_ns();
        struct store_pod p = {0};
        cleanup_err struct err e = ERR_INIT;
        if (pod_id && model_pod_get(d->model, pod_id, &p, &e) == 0) {
                ev->pod_sandbox_status = pod_status_of(&p);
                ev->n_containers_statuses = cri_containers_statuses(d, pod_id, &ev->containers_statuses);
        }
        store_pod_clear(&p);
        cri_events_publish(d->events, ev);
        protobuf_c_message_free_unpacked(&ev->base, NULL);
}
