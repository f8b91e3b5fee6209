/* The shared state layer under the RPC files, the handlers and the exit
 * monitor: per-pod locks, id lookup, the container's state from its shim,
 * the record transitions (a container exits, a pod's sandbox dies) and the
 * events they publish. It calls down into the model, record.c, views.c (the
 * statuses an event carries) and events.c, never into an RPC file or a
 * handler. */
#include <pthread.h>
#include <string.h>
#include <yajl/yajl_tree.h>

#include "cri/ctr-internal.h"
#include "shim/shim.h"

/* ---------- per-pod locks ---------- */

struct cri_podlock {
        char id[ID_LEN + 1];
        pthread_mutex_t mu;
        int refs;
        struct cri_podlock *next;
};

void cri_pod_lock(struct cri_daemon *d, const char *pod_id)
{
        struct cri_sandboxes *s = d->sandboxes;
        pthread_mutex_lock(&s->mu);
        struct cri_podlock *l = s->locks;
        while (l && strcmp(l->id, pod_id) != 0)
                l = l->next;
        if (l == NULL) {
                l = xzalloc(sizeof(*l));
                snprintf(l->id, sizeof(l->id), "%s", pod_id);
                pthread_mutex_init(&l->mu, NULL);
                l->next = s->locks;
                s->locks = l;
        }
        l->refs++;
        pthread_mutex_unlock(&s->mu);
        pthread_mutex_lock(&l->mu);
}

void cri_pod_unlock(struct cri_daemon *d, const char *pod_id)
{
        struct cri_sandboxes *s = d->sandboxes;
        pthread_mutex_lock(&s->mu);
        struct cri_podlock **pp = &s->locks;
        while (*pp && strcmp((*pp)->id, pod_id) != 0)
                pp = &(*pp)->next;
        struct cri_podlock *l = *pp;
        if (l) {
                pthread_mutex_unlock(&l->mu);
                if (--l->refs == 0) {
                        *pp = l->next;
                        pthread_mutex_destroy(&l->mu);
                        free(l);
                }
        }
        pthread_mutex_unlock(&s->mu);
}

void cri_pod_locks_free(struct cri_sandboxes *s)
{
        while (s->locks) {
                struct cri_podlock *l = s->locks;
                s->locks = l->next;
                pthread_mutex_destroy(&l->mu);
                free(l);
        }
}

int cri_pod_resolve(struct cri_daemon *d, const char *id, struct store_pod *out, struct err *e)
{
        if (id == NULL || *id == '\0')
                return err_set(e, ERR_INVALID, "pod sandbox id is empty");
        char full[ID_LEN + 1];
        if (model_pod_resolve(d->model, id, full, e) < 0 || model_pod_get(d->model, full, out, e) < 0)
                return err_is(e, ERR_NOT_FOUND) ? err_set(e, ERR_NOT_FOUND, "pod sandbox %s not found", id)
                                                : -1;
        return 0;
}

/* ---------- helpers ---------- */

/* ---------- lookup, shim state ---------- */

int ctr_resolve(struct cri_daemon *d, const char *id, struct store_container *out, struct err *e)
{
        if (id == NULL || *id == '\0')
                return err_set(e, ERR_INVALID, "container id is empty");
        char full[ID_LEN + 1];
        if (model_ctr_resolve(d->model, id, full, e) < 0 || model_ctr_get(d->model, full, out, e) < 0)
                return err_is(e, ERR_NOT_FOUND) ? err_set(e, ERR_NOT_FOUND, "container %s not found", id)
                                                : -1;
        return 0;
}

int ctr_connect(const struct store_container *c, struct shim_conn **out, struct err *e)
{
        struct ctr_extra x;
        if (ctr_extra_parse(c->extra_json, &x) < 0 || x.state_dir == NULL) {
                ctr_extra_clear(&x);
                return err_set(e, ERR_INTERNAL, "container %s has no shim state", c->id);
        }
        int r = shim_connect(x.state_dir, out, e);
        ctr_extra_clear(&x);
        return r;
}

static void set_str(char **dst, const char *s)
{
        free(*dst);
        *dst = xstrdup(s);
}

/* Kept in the record: a status after the exit still says who it ran as. */
static void keep_user(struct store_container *c, const struct shim_state *st)
{
        struct ctr_extra x;
        if (!st->has_user || ctr_extra_parse(c->extra_json, &x) < 0)
                return;
        if (x.user == NULL) {
                struct sbuf b = {0};
                sbuf_printf(&b, "%u:%u:", st->uid, st->gid);
                for (uint32_t i = 0; i < st->n_groups; i++)
                        sbuf_printf(&b, "%s%u", i ? "," : "", st->groups[i]);
                x.user = sbuf_steal(&b);
                free(c->extra_json);
                c->extra_json = ctr_extra_json(&x);
        }
        ctr_extra_clear(&x);
}

void ctr_apply_state(struct store_container *c, const struct shim_state *st)
{
        keep_user(c, st);
        if (st->pid > 0)
                c->pid = st->pid;
        if (st->started_ns)
                c->started_ns = st->started_ns;
        switch (st->status) {
        case SHIM_CREATED:
                c->state = STORE_CTR_CREATED;
                break;
        case SHIM_RUNNING:
                c->state = STORE_CTR_RUNNING;
                break;
        case SHIM_EXITED:
                c->state = STORE_CTR_EXITED;
                c->exit_code = st->exit_code;
                c->finished_ns = st->finished_ns ? st->finished_ns : time_now_ns();
                if (st->reason[0]) {
                        /* Ended from outside (the pod's VM died): say so. */
                        set_str(&c->reason, st->reason);
                        set_str(&c->message, st->message);
                } else if (st->oom_killed) {
                        set_str(&c->reason, "OOMKilled");
                        set_str(&c->message, "the container was killed for exceeding its memory limit");
                } else if (st->exit_code == 0) {
                        set_str(&c->reason, "Completed");
                } else {
                        set_str(&c->reason, "Error");
                        if (st->signal && (c->message == NULL || *c->message == '\0')) {
                                free(c->message);
                                c->message = xasprintf("killed by signal %d (%s)", st->signal,
                                                       strsignal(st->signal));
                        }
                }
                break;
        }
}

/* The shim's view, or the exit file's, or "gone". Returns true when st is filled from a shim or exit
 * file. */
static bool query_state(const struct store_container *c, struct shim_state *st, bool *gone)
{
        *gone = false;
        cleanup_err struct err e = ERR_INIT;
        struct shim_conn *sc = NULL;
        if (ctr_connect(c, &sc, &e) == 0) {
                int r = shim_state(sc, st, &e);
                shim_close(sc);
                if (r == 0)
                        return true;
                log_debug("cri", "shim state container=%s error=\"%s\"", c->id, e.msg);
                return false; /* alive but not answering: keep what we know */
        }
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        err_clear(&e);
        int r = x.state_dir ? shim_read_exit(x.state_dir, st, &e) : -1;
        ctr_extra_clear(&x);
        if (r == 0)
                return true;
        *gone = true;
        return false;
}

/* Under the record's model lock: write the new state if the record is still what we saw. */
bool ctr_transition(struct cri_daemon *d, struct store_container *c, const struct shim_state *st, bool gone)
{
        bool exited = false;
        model_lock(d->model, c->id);
        struct store_container cur = {0};
        cleanup_err struct err e = ERR_INIT;
        if (model_ctr_get(d->model, c->id, &cur, &e) == 0 &&
            (cur.state == STORE_CTR_CREATED || cur.state == STORE_CTR_RUNNING)) {
                int before = cur.state;
                if (st) {
                        ctr_apply_state(&cur, st);
                } else if (gone) {
                        cur.state = STORE_CTR_EXITED;
                        cur.exit_code = 255;
                        cur.finished_ns = time_now_ns();
                        set_str(&cur.reason, "ShimGone");
                        set_str(&cur.message, "corral-shim is gone and left no exit status");
                }
                if (cur.state != before || (st && cur.started_ns != c->started_ns)) {
                        if (model_ctr_put(d->model, &cur, &e) < 0)
                                log_warn("cri", "update container=%s error=\"%s\"", c->id, e.msg);
                        exited = cur.state == STORE_CTR_EXITED;
                }
                store_ctr_clear(c);
                *c = cur;
        } else {
                store_ctr_clear(&cur);
        }
        model_unlock(d->model, c->id);
        return exited;
}

void ctr_refresh(struct cri_daemon *d, struct store_container *c)
{
        if (c->state != STORE_CTR_CREATED && c->state != STORE_CTR_RUNNING)
                return;
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        bool ready = x.ready;
        ctr_extra_clear(&x);
        if (!ready || ctr_deferred(c))
                return; /* being created right now, or no shim to ask yet */
        struct shim_state st;
        bool gone;
        bool have = query_state(c, &st, &gone);
        if (!have && !gone)
                return;
        if (have && ((st.status == SHIM_RUNNING && c->state == STORE_CTR_RUNNING) ||
                     (st.status == SHIM_CREATED && c->state == STORE_CTR_CREATED)))
                return;
        if (ctr_transition(d, c, have ? &st : NULL, gone))
                cri_event(d, c->id, c->pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
}

/* ---------- events ---------- */

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
                ev->pod_sandbox_status = cri_pod_status_build(&p);
                ev->n_containers_statuses = cri_containers_statuses(d, pod_id, &ev->containers_statuses);
        }
        store_pod_clear(&p);
        cri_events_publish(d->events, ev);
        protobuf_c_message_free_unpacked(&ev->base, NULL);
}

/* A READY pod whose sandbox died by itself (a VM pod whose VM or shim is
 * gone) is NOTREADY now: nothing runs in it any more. Its containers are
 * brought up to date first (the VM shim ended them with reason VMDied; a
 * shim that is gone left exit files or nothing), each with its event, then
 * the pod's. The network stays until StopPodSandbox. */
void cri_pod_died(struct cri_daemon *d, const char *id, const char *reason)
{
        cleanup_err struct err e = ERR_INIT;
        cri_pod_lock(d, id);
        struct store_pod cur = {0};
        if (model_pod_get(d->model, id, &cur, &e) == 0 && cur.state == STORE_POD_READY) {
                struct store_container *v = NULL;
                size_t n = 0;
                if (model_ctr_list(d->model, id, &v, &n, &e) == 0)
                        for (size_t i = 0; i < n; i++)
                                ctr_refresh(d, &v[i]);
                store_ctrs_free(v, n);
                err_clear(&e);
                cur.state = STORE_POD_NOTREADY;
                if (model_pod_put(d->model, &cur, &e) == 0) {
                        log_warn("pod", "pod id=%s name=%s NOTREADY: %s", id, cur.name, reason);
                        cri_event(d, id, id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
                }
        }
        store_pod_clear(&cur);
        cri_pod_unlock(d, id);
}

static const char *ctr_state_name(int s)
{
        switch (s) {
        case STORE_CTR_CREATED:
                return "created";
        case STORE_CTR_RUNNING:
                return "running";
        case STORE_CTR_EXITED:
                return "exited";
        default:
                return "in an unknown state";
        }
}

int ctr_running(struct cri_daemon *d, const char *id, const char *what, struct store_container *c,
                struct ctr_extra *x, struct err *e)
{
        memset(x, 0, sizeof(*x));
        if (ctr_resolve(d, id, c, e) < 0)
                return -1;
        ctr_refresh(d, c);
        if (c->state != STORE_CTR_RUNNING)
                return err_set(e, ERR_PRECONDITION, "container %s is %s, not running: cannot %s", c->id,
                               ctr_state_name(c->state), what);
        if (ctr_extra_parse(c->extra_json, x) < 0 || x->state_dir == NULL || x->bundle == NULL)
                return err_set(e, ERR_INTERNAL, "container %s has no shim state", c->id);
        return 0;
}
