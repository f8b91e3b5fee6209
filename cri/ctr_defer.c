/* A container whose shim is spawned by StartContainer, not CreateContainer.
 *
 * The shim and the container process it makes (mounts, cgroups, the
 * namespaces joined) were ~90% of CreateContainer. When the handler allows
 * it (create_at_start), CreateContainer writes the record, the snapshot and
 * spec.json and stops there, marked "deferred"; the first StartContainer
 * spawns the shim from what is on disk, so a corrald restarted in between
 * starts it the same way. A deferred container has no process: nothing to
 * ask, nothing to kill, nothing for Exec to join. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "shim/shim.h"

/* Under the record's model lock: the spawn's outcome into the record. */
static void record_spawn(struct cri_daemon *d, struct store_container *c, const struct cri_ctr_create *cc,
                         const struct err *failed)
{
        model_lock(d->model, c->id);
        struct store_container cur = {0};
        cleanup_err struct err e2 = ERR_INIT;
        bool orphan = failed == NULL;
        if (model_ctr_get(d->model, c->id, &cur, &e2) == 0) {
                orphan = false;
                struct ctr_extra x;
                (void)ctr_extra_parse(cur.extra_json, &x);
                x.deferred = false;
                if (failed) {
                        cur.state = STORE_CTR_EXITED;
                        cur.exit_code = 128;
                        cur.finished_ns = time_now_ns();
                        free(cur.reason);
                        cur.reason = xstrdup("StartError");
                        free(cur.message);
                        cur.message = xstrdup(failed->msg);
                } else if (!ctr_deferred(&cur)) {
                        /* Stopped while we spawned: what we made must go. */
                        orphan = true;
                } else {
                        x.shim_pid = cc->shim_pid;
                        cur.pid = cc->pid;
                }
                free(cur.extra_json);
                cur.extra_json = ctr_extra_json(&x);
                ctr_extra_clear(&x);
                if (!orphan && model_ctr_put(d->model, &cur, &e2) < 0)
                        log_warn("cri", "update container=%s error=\"%s\"", c->id, e2.msg);
                store_ctr_clear(c);
                *c = cur;
        }
        model_unlock(d->model, c->id);
        if (orphan) {
                log_warn("cri", "container=%s was stopped or removed while its shim started: killing it",
                         c->id);
                if (cc->pid > 0)
                        (void)kill(cc->pid, SIGKILL);
                if (cc->shim_pid > 0)
                        (void)kill(cc->shim_pid, SIGKILL);
        }
}

static int spawn_locked(struct cri_daemon *d, struct store_container *c, struct err *e)
{
        struct store_pod pod = {0};
        struct store_container cur = {0};
        struct cri_pod_extra px = {0};
        bool have_px = false;
        Runtime__V1__ContainerConfig *cfg = NULL;
        struct ctr_extra x = {0};
        int r = -1;
        if (model_ctr_get(d->model, c->id, &cur, e) < 0)
                goto out;
        store_ctr_clear(c);
        *c = cur;
        memset(&cur, 0, sizeof(cur));
        if (!ctr_deferred(c)) { /* another StartContainer did it, or a stop */
                r = 0;
                goto out;
        }
        if (model_pod_get(d->model, c->pod_id, &pod, e) < 0)
                goto out;
        if (pod.state != STORE_POD_READY) {
                err_set(e, ERR_PRECONDITION, "pod sandbox %s is not ready", pod.id);
                goto out;
        }
        if (cri_pod_extra_parse(pod.extra_json, &px, e) < 0)
                goto out;
        have_px = true;
        (void)ctr_extra_parse(c->extra_json, &x);
        cfg = ctr_config(c);
        struct cri_ctr_create cc = {
                .id = c->id,
                .bundle = x.bundle,
                .state_dir = x.state_dir,
                .log_path = c->log_path && *c->log_path ? c->log_path : NULL,
                .stdin_open = cfg && cfg->stdin,
                .stdin_once = cfg && cfg->stdin_once,
                .tty = cfg && cfg->tty,
                .host_cgroup = true,
        };
        if (x.bundle == NULL || x.state_dir == NULL) {
                err_set(e, ERR_INTERNAL, "container %s has no bundle", c->id);
                goto out;
        }
        r = cri_handler_of_pod(&px)->container_create(d, &pod, &px, &cc, e);
        record_spawn(d, c, &cc, r < 0 ? e : NULL);
        if (r == 0 && c->state != STORE_CTR_CREATED)
                r = err_set(e, ERR_PRECONDITION, "container %s was stopped while it started", c->id);
        else if (r < 0)
                cri_event(d, c->id, c->pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
out:
        if (cfg)
                runtime__v1__container_config__free_unpacked(cfg, NULL);
        ctr_extra_clear(&x);
        if (have_px)
                cri_pod_extra_clear(&px);
        store_pod_clear(&pod);
        store_ctr_clear(&cur);
        return r;
}

int ctr_defer_spawn(struct cri_daemon *d, struct store_container *c, struct err *e)
{
        /* The pod's lock, as CreateContainer: no StopPodSandbox in between. */
        cri_pod_lock(d, c->pod_id);
        char pod_id[ID_LEN + 1];
        snprintf(pod_id, sizeof(pod_id), "%s", c->pod_id);
        int r = spawn_locked(d, c, e);
        cri_pod_unlock(d, pod_id);
        return r;
}

void ctr_defer_stop(struct cri_daemon *d, struct store_container *c)
{
        bool stopped = false;
        model_lock(d->model, c->id);
        struct store_container cur = {0};
        cleanup_err struct err e2 = ERR_INIT;
        if (model_ctr_get(d->model, c->id, &cur, &e2) == 0 && ctr_deferred(&cur)) {
                /* What a SIGKILL to a created process reports. */
                struct shim_state st = {.status = SHIM_EXITED,
                                        .exit_code = 128 + SIGKILL,
                                        .signal = SIGKILL,
                                        .finished_ns = time_now_ns()};
                ctr_apply_state(&cur, &st);
                struct ctr_extra x;
                (void)ctr_extra_parse(cur.extra_json, &x);
                x.deferred = false;
                free(cur.extra_json);
                cur.extra_json = ctr_extra_json(&x);
                ctr_extra_clear(&x);
                if (model_ctr_put(d->model, &cur, &e2) < 0)
                        log_warn("cri", "update container=%s error=\"%s\"", c->id, e2.msg);
                else
                        stopped = true;
        }
        if (cur.id[0]) {
                store_ctr_clear(c);
                *c = cur;
        } else {
                store_ctr_clear(&cur);
        }
        model_unlock(d->model, c->id);
        if (stopped)
                cri_event(d, c->id, c->pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
}

void ctr_defer_recover(struct cri_daemon *d, struct store_container *c)
{
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        /* A state directory: a spawn began before corrald was killed. The
         * shim (or its exit file, or its absence) says what became of it. */
        bool begun = x.deferred && x.state_dir && access(x.state_dir, F_OK) == 0;
        ctr_extra_clear(&x);
        if (!begun)
                return;
        model_lock(d->model, c->id);
        struct store_container cur = {0};
        cleanup_err struct err e2 = ERR_INIT;
        if (model_ctr_get(d->model, c->id, &cur, &e2) == 0) {
                (void)ctr_extra_parse(cur.extra_json, &x);
                x.deferred = false;
                free(cur.extra_json);
                cur.extra_json = ctr_extra_json(&x);
                ctr_extra_clear(&x);
                if (model_ctr_put(d->model, &cur, &e2) < 0)
                        log_warn("cri", "update container=%s error=\"%s\"", c->id, e2.msg);
                store_ctr_clear(c);
                *c = cur;
        } else {
                store_ctr_clear(&cur);
        }
        model_unlock(d->model, c->id);
}
