/* After a (re)start of corrald: every container record is reconciled with
 * its shim. A live shim is asked for the state; a dead one left an exit
 * file (EXITED with its code) or nothing (EXITED, reason ShimGone). Records
 * of creates that never finished (not ready) are undone. Nothing running is
 * killed. */
#include <string.h>

#include "cri/ctr-internal.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "snapshot/snapshot.h"

static void remove_half_made(struct cri_daemon *d, struct store_container *c, const struct ctr_extra *x)
{
        cleanup_err struct err e = ERR_INIT;
        struct shim_conn *sc = NULL;
        if (x->state_dir && shim_connect(x->state_dir, &sc, &e) == 0) {
                /* A created, never started process: shutdown kills it. */
                (void)shim_shutdown(sc, &e);
                shim_close(sc);
        }
        err_clear(&e);
        if (x->cgroup) {
                char *cg = NULL;
                if (rt_cgroup_resolve(x->cgroup, &cg, &e) == 0)
                        (void)rt_cgroup_remove(cg, 2000, &e);
                free(cg);
                err_clear(&e);
        }
        if (d->snaps && snap_remove(d->snaps, c->id, &e) < 0 && !err_is(&e, ERR_NOT_FOUND))
                log_warn("cri", "recover: remove snapshot container=%s error=\"%s\"", c->id, e.msg);
        err_clear(&e);
        if (x->bundle)
                (void)rm_rf(x->bundle, NULL);
        if (x->state_dir)
                (void)rm_rf(x->state_dir, NULL);
        if (model_ctr_delete(d->model, c->id, &e) < 0)
                log_warn("cri", "recover: delete container=%s error=\"%s\"", c->id, e.msg);
        log_info("cri", "recover: removed half-created container id=%s name=%s", c->id, c->name);
}

int cri_containers_recover(struct cri_daemon *d, struct err *e)
{
        struct store_container *v = NULL;
        size_t n = 0;
        if (model_ctr_list(d->model, NULL, &v, &n, e) < 0)
                return err_wrap(e, "recover containers");
        size_t live = 0, exited = 0, gone = 0, removed = 0;
        if (ctr_monitor_start(d, e) < 0) {
                store_ctrs_free(v, n);
                return -1;
        }
        for (size_t i = 0; i < n; i++) {
                struct store_container *c = &v[i];
                struct ctr_extra x;
                bool parsed = ctr_extra_parse(c->extra_json, &x) == 0;
                cleanup_free char *spec = x.bundle ? path_join(x.bundle, "spec.json") : NULL;
                if (!parsed || !x.ready || spec == NULL || access(spec, F_OK) != 0) {
                        remove_half_made(d, c, &x);
                        ctr_extra_clear(&x);
                        removed++;
                        continue;
                }
                ctr_extra_clear(&x);
                if (c->state != STORE_CTR_CREATED && c->state != STORE_CTR_RUNNING)
                        continue;
                int before = c->state;
                ctr_defer_recover(d, c);
                ctr_refresh(d, c);
                if (c->state == STORE_CTR_EXITED && c->reason && strcmp(c->reason, "ShimGone") == 0)
                        gone++;
                else if (c->state == STORE_CTR_EXITED && before != STORE_CTR_EXITED)
                        exited++;
                else
                        live++;
                if (c->state == STORE_CTR_RUNNING)
                        ctr_monitor_watch(d, c);
        }
        store_ctrs_free(v, n);
        log_info("cri", "containers recovered live=%zu exited=%zu shim_gone=%zu half_made_removed=%zu", live,
                 exited, gone, removed);
        /* VMs that died while corrald was down; the live ones are watched. */
        cri_pods_sweep(d);
        return 0;
}
