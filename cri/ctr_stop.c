/* Stopping and removing containers: one (StopContainer, RemoveContainer)
 * or every container a pod owns in the model (StopPodSandbox,
 * RemovePodSandbox). Both RPC files call down into here. */
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>

#include "cri/ctr-internal.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "snapshot/snapshot.h"

/* ---------- stop ---------- */

static int stop_signal_of(const struct store_container *c)
{
        int sig = 0;
        Runtime__V1__ContainerConfig *cfg = ctr_config(c);
        if (cfg) {
                sig = ctr_signal_from_cri(cfg->stop_signal);
                runtime__v1__container_config__free_unpacked(cfg, NULL);
        }
        if (sig == 0) {
                struct ctr_extra x;
                (void)ctr_extra_parse(c->extra_json, &x);
                sig = ctr_signal_parse(x.stop_signal);
                ctr_extra_clear(&x);
        }
        return sig ? sig : SIGTERM;
}

int ctr_stop_one(struct cri_daemon *d, struct store_container *c, int64_t timeout_s, struct err *e)
{
        ctr_refresh(d, c);
        if (c->state == STORE_CTR_EXITED || c->state == STORE_CTR_UNKNOWN)
                return 0;
        if (ctr_deferred(c)) {
                ctr_defer_stop(d, c);
                return 0;
        }
        struct shim_conn *sc = NULL;
        if (ctr_connect(c, &sc, e) < 0) {
                /* Gone between refresh and now: refresh records it. */
                err_clear(e);
                ctr_refresh(d, c);
                return 0;
        }
        int64_t t0 = time_mono_ns();
        struct shim_state st;
        int r = 0;
        bool killed = false;
        if (timeout_s > 0 && c->state == STORE_CTR_RUNNING) {
                int sig = stop_signal_of(c);
                if (shim_kill(sc, sig, false, e) < 0)
                        goto out;
                r = shim_wait(sc, timeout_s * 1000, &st, e);
                if (r < 0 && !err_is(e, ERR_DEADLINE))
                        goto out;
                if (r < 0)
                        err_clear(e);
                killed = r == 0;
        }
        if (!killed) {
                if ((r = shim_kill(sc, SIGKILL, true, e)) < 0)
                        goto out;
                /* SIGKILL cannot be ignored; a process in D state can still take a while. */
                r = shim_wait(sc, 60000, &st, e);
                if (r < 0)
                        goto out;
        }
        if (ctr_transition(d, c, &st, false))
                cri_event(d, c->id, c->pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
        log_info("cri", "container stopped id=%s exit=%d ms=%.3f", c->id, st.exit_code,
                 (double)(time_mono_ns() - t0) / 1e6);
out:
        shim_close(sc);
        return r < 0 ? err_wrap(e, "stop container %s", c->id) : 0;
}

/* ---------- remove ---------- */

int ctr_remove_locked(struct cri_daemon *d, struct store_container *c, struct err *e)
{
        if (ctr_stop_one(d, c, 0, e) < 0)
                return err_wrap(e, "remove container %s", c->id);
        struct ctr_extra x;
        (void)ctr_extra_parse(c->extra_json, &x);
        int shim_pid = shim_live_pid(x.state_dir);
        struct shim_conn *sc = NULL;
        cleanup_err struct err e2 = ERR_INIT;
        if (x.state_dir && shim_connect(x.state_dir, &sc, &e2) == 0) {
                if (shim_shutdown(sc, &e2) < 0)
                        log_warn("cri", "remove container=%s: shim shutdown error=\"%s\"", c->id, e2.msg);
                shim_close(sc);
        }
        /* Wait for the shim to go, so that its directory is not pulled away under it. */
        for (int i = 0; shim_pid && i < 400 && shim_pid_alive(shim_pid); i++) {
                struct timespec ts = {0, 5 * 1000000L};
                nanosleep(&ts, NULL);
        }
        if (shim_pid && shim_pid_alive(shim_pid) && shim_live_pid(x.state_dir) == shim_pid) {
                log_warn("cri", "remove container=%s: shim pid=%d did not exit, killing it", c->id, shim_pid);
                (void)kill(shim_pid, SIGKILL);
        }
        err_clear(&e2);
        if (x.cgroup) {
                char *cg = NULL;
                if (rt_cgroup_resolve(x.cgroup, &cg, &e2) == 0 && rt_cgroup_remove(cg, 2000, &e2) < 0)
                        log_warn("cri", "remove container=%s: cgroup %s error=\"%s\"", c->id, cg, e2.msg);
                free(cg);
                err_clear(&e2);
        }
        if (d->snaps && snap_remove(d->snaps, c->snapshot_key ? c->snapshot_key : c->id, &e2) < 0 &&
            !err_is(&e2, ERR_NOT_FOUND)) {
                err_move(e, &e2);
                ctr_extra_clear(&x);
                return err_wrap(e, "remove container %s: snapshot", c->id);
        }
        if (x.bundle) {
                /* An OCI container's shim mounts the rootfs there and unmounts it
                 * when it ends; one that was killed from outside could not. */
                cleanup_free char *rootfs = path_join(x.bundle, "rootfs");
                (void)umount2(rootfs, MNT_DETACH);
                (void)rm_rf(x.bundle, NULL);
        }
        if (x.state_dir)
                (void)rm_rf(x.state_dir, NULL);
        ctr_extra_clear(&x);
        if (model_ctr_delete(d->model, c->id, e) < 0 && !err_is(e, ERR_NOT_FOUND))
                return err_wrap(e, "remove container %s", c->id);
        err_clear(e);
        cri_event(d, c->id, c->pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_DELETED_EVENT);
        log_info("cri", "container removed id=%s", c->id);
        return 0;
}

/* ---------- a pod's containers ---------- */

int cri_containers_stop_pod(struct cri_daemon *d, const char *pod_id, int64_t timeout_s, struct err *e)
{
        struct store_container *v = NULL;
        size_t n = 0;
        if (model_ctr_list(d->model, pod_id, &v, &n, e) < 0)
                return -1;
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++)
                if (v[i].state == STORE_CTR_RUNNING || v[i].state == STORE_CTR_CREATED)
                        r = ctr_stop_one(d, &v[i], timeout_s, e);
        store_ctrs_free(v, n);
        return r;
}

int cri_containers_remove_pod(struct cri_daemon *d, const char *pod_id, struct err *e)
{
        struct store_container *v = NULL;
        size_t n = 0;
        if (model_ctr_list(d->model, pod_id, &v, &n, e) < 0)
                return -1;
        int r = 0;
        for (size_t i = 0; i < n && r == 0; i++)
                r = ctr_remove_locked(d, &v[i], e);
        store_ctrs_free(v, n);
        return r;
}
