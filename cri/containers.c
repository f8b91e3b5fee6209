/* RuntimeService containers: CreateContainer, StartContainer,
 * StopContainer, RemoveContainer. Status and listing are in ctr_status.c,
 * ExecSync in ctr_exec.c, UpdateContainerResources and ReopenContainerLog
 * in ctr_update.c, restart recovery in ctr_recover.c, the spec in
 * ctr_spec.c; stop and remove (shared with the pod RPCs) in ctr_stop.c, the
 * record transitions and events in ctr_state.c.
 *
 * A container is: a store record (written first, CREATED, not ready), an
 * active snapshot keyed by its id, a bundle <root>/containers/<id> with
 * spec.json, and a corral-shim with its state dir <state>/containers/<id>
 * that created the process. Every step has its undo; the record becomes
 * ready only when the shim reported the container created, so a crash
 * half-way leaves a record that recovery removes.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <time.h>
#include <yajl/yajl_tree.h>

#include "config/config.h"
#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "image/image.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "snapshot/snapshot.h"

/* ---------- create ---------- */
static void set_str(char **dst, const char *s)
{
        free(*dst);
        *dst = xstrdup(s);
}

/* log_directory + log_path, refusing anything that leaves the directory. */
static int log_path_of(const Runtime__V1__PodSandboxConfig *pc, const Runtime__V1__ContainerConfig *cfg,
                       char **out, struct err *e)
{
        *out = NULL;
        const char *rel = cfg->log_path;
        if (rel == NULL || *rel == '\0')
                return 0;
        const char *dir = pc ? pc->log_directory : NULL;
        if (dir == NULL || *dir == '\0')
                return err_set(e, ERR_INVALID, "log path %s given but the pod has no log directory", rel);
        if (rel[0] == '/')
                return err_set(e, ERR_INVALID, "log path %s must be relative to the pod's log directory %s",
                               rel, dir);
        cleanup_free char *copy = xstrdup(rel);
        for (char *save = NULL, *tok = strtok_r(copy, "/", &save); tok; tok = strtok_r(NULL, "/", &save))
                if (strcmp(tok, "..") == 0)
                        return err_set(e, ERR_INVALID, "log path %s escapes the pod's log directory %s", rel,
                                       dir);
        *out = path_join(dir, rel);
        return 0;
}

static int find_existing(struct cri_daemon *d, const char *pod_id, const Runtime__V1__ContainerMetadata *md,
                         char *id_out, struct err *e)
{
        struct store_container *v = NULL;
        size_t n = 0;
        if (model_ctr_list(d->model, pod_id, &v, &n, e) < 0)
                return -1;
        int found = 0;
        for (size_t i = 0; i < n && !found; i++) {
                if (v[i].name && strcmp(v[i].name, md->name) == 0 && v[i].attempt == md->attempt) {
                        snprintf(id_out, ID_LEN + 1, "%s", v[i].id);
                        found = 1;
                }
        }
        store_ctrs_free(v, n);
        return found;
}

static char *image_ref_of(const struct store_image *img)
{
        for (char **n = img->names; n && *n; n++)
                if (strchr(*n, '@'))
                        return xstrdup(*n);
        return xstrdup(img->id);
}

struct create_ctx {
        struct store_container rec;
        struct ctr_extra x;
        bool recorded, snapshot, shim;
};

static void undo_create(struct cri_daemon *d, struct create_ctx *c)
{
        cleanup_err struct err e = ERR_INIT;
        if (c->shim) {
                struct shim_conn *sc = NULL;
                if (shim_connect(c->x.state_dir, &sc, &e) == 0) {
                        (void)shim_shutdown(sc, &e);
                        shim_close(sc);
                }
                err_clear(&e);
        }
        if (c->x.cgroup) {
                char *cg = NULL;
                if (rt_cgroup_resolve(c->x.cgroup, &cg, &e) == 0)
                        (void)rt_cgroup_remove(cg, 2000, &e);
                free(cg);
                err_clear(&e);
        }
        if (c->snapshot && snap_remove(d->snaps, c->rec.id, &e) < 0)
                log_warn("cri", "undo create: remove snapshot container=%s error=\"%s\"", c->rec.id, e.msg);
        err_clear(&e);
        if (c->x.bundle)
                (void)rm_rf(c->x.bundle, NULL);
        if (c->x.state_dir)
                (void)rm_rf(c->x.state_dir, NULL);
        if (c->recorded && model_ctr_delete(d->model, c->rec.id, &e) < 0)
                log_warn("cri", "undo create: delete record container=%s error=\"%s\"", c->rec.id, e.msg);
}

static int create_locked(struct cri_daemon *d, const Runtime__V1__CreateContainerRequest *rq,
                         struct store_pod *pod, char *id_out, struct err *e)
{
        const Runtime__V1__ContainerConfig *cfg = rq->config;
        if (pod->state != STORE_POD_READY)
                return err_set(e, ERR_PRECONDITION, "pod sandbox %s is not ready: cannot create container %s",
                               pod->id, cfg->metadata->name);
        int f = find_existing(d, pod->id, cfg->metadata, id_out, e);
        if (f < 0)
                return -1;
        if (f > 0) {
                log_info("cri",
                         "create container: same name and attempt exist, returning it name=%s pod=%s "
                         "id=%s",
                         cfg->metadata->name, pod->id, id_out);
                return 0;
        }
        if (cfg->linux && ctr_resources_validate(cfg->linux->resources, e) < 0)
                return err_wrap(e, "container %s", cfg->metadata->name);
        if (d->images == NULL || d->snaps == NULL)
                return err_set(e, ERR_UNAVAILABLE,
                               "the image service is not available: cannot create container %s",
                               cfg->metadata->name);

        struct cri_pod_extra px;
        if (cri_pod_extra_parse(pod->extra_json, &px, e) < 0)
                return err_wrap(e, "pod sandbox %s", pod->id);
        Runtime__V1__PodSandboxConfig *pc = cri_pod_config(pod);
        struct store_image img = {0};
        struct img_config ic = {0};
        struct rt_spec *spec = NULL;
        struct snap_mount *mnt = NULL;
        cleanup_free char *log_path = NULL, *spec_path = NULL;
        cleanup_free char *cdir = path_join(d->cfg->root, "containers");
        cleanup_free char *sdir = path_join(d->cfg->state, "containers");
        struct create_ctx c = {0};
        int r = -1;

        if (log_path_of(rq->sandbox_config ? rq->sandbox_config : pc, cfg, &log_path, e) < 0)
                goto out;
        if (img_status(d->images, cfg->image->image, &img, e) < 0) {
                if (err_is(e, ERR_NOT_FOUND))
                        err_set(e, ERR_NOT_FOUND, "image %s not found: pull it first (container %s)",
                                cfg->image->image, cfg->metadata->name);
                goto out;
        }
        if (img_image_config(&img, &ic, e) < 0) {
                err_wrap(e, "image %s", cfg->image->image);
                goto out;
        }
        size_t nchain = strv_len(img.chain_ids);

        /* 1. the record, not ready */
        id_generate(c.rec.id);
        snprintf(c.rec.pod_id, sizeof(c.rec.pod_id), "%s", pod->id);
        c.rec.name = xstrdup(cfg->metadata->name);
        c.rec.attempt = cfg->metadata->attempt;
        c.rec.image_ref = xstrdup(cfg->image->image);
        c.rec.image_id = xstrdup(img.id);
        c.rec.state = STORE_CTR_CREATED;
        c.rec.created_ns = time_now_ns();
        c.rec.log_path = xstrdup(log_path ? log_path : "");
        c.rec.labels_json = cri_map_to_json(cfg->n_labels, (void *const *)cfg->labels);
        c.rec.annotations_json = cri_map_to_json(cfg->n_annotations, (void *const *)cfg->annotations);
        c.rec.snapshot_key = xstrdup(c.rec.id);
        c.rec.config_len = protobuf_c_message_get_packed_size(&cfg->base);
        c.rec.config = xmalloc(c.rec.config_len ? c.rec.config_len : 1);
        protobuf_c_message_pack(&cfg->base, c.rec.config);
        c.x.bundle = path_join(cdir, c.rec.id);
        c.x.state_dir = path_join(sdir, c.rec.id);
        c.x.stop_signal = xstrdup(ic.stop_signal);
        c.x.image_ref = image_ref_of(&img);
        c.rec.extra_json = ctr_extra_json(&c.x);
        if (model_ctr_put(d->model, &c.rec, e) < 0)
                goto out;
        c.recorded = true;

        /* 2. the snapshot */
        if (snap_prepare(d->snaps, c.rec.id, nchain ? img.chain_ids[nchain - 1] : NULL, &mnt, e) < 0) {
                err_wrap(e, "container %s: prepare snapshot", cfg->metadata->name);
                goto out;
        }
        c.snapshot = true;

        /* 3. the spec */
        if (mkdir_p(c.x.bundle, 0700, e) < 0)
                goto out;
        struct ctr_spec_in in = {.d = d,
                                 .id = c.rec.id,
                                 .pod = pod,
                                 .podx = &px,
                                 .pod_cfg = rq->sandbox_config ? rq->sandbox_config : pc,
                                 .cfg = cfg,
                                 .img = &ic,
                                 .rootfs = mnt,
                                 .bundle = c.x.bundle};
        if (ctr_spec_build(&in, &spec, e) < 0) {
                err_wrap(e, "container %s", cfg->metadata->name);
                goto out;
        }
        c.x.cgroup = xstrdup(spec->cgroup_path);
        if (ctr_ensure_cwd(spec, e) < 0)
                goto out;
        spec_path = path_join(c.x.bundle, "spec.json");
        if (rt_spec_write_file(spec, spec_path, e) < 0)
                goto out;
        if (log_path) {
                char *ld = xstrdup(log_path);
                int mr = mkdir_p(dirname(ld), 0755, e);
                free(ld);
                if (mr < 0)
                        goto out;
        }

        /* 4. the handler creates the process: a shim (in a VM pod: the pod's shim, in the guest) */
        struct cri_ctr_create cc = {
                .id = c.rec.id,
                .spec = spec,
                .bundle = c.x.bundle,
                .state_dir = c.x.state_dir,
                .log_path = log_path,
                .stdin_open = cfg->stdin,
                .stdin_once = cfg->stdin_once,
                .tty = cfg->tty,
                .host_cgroup = true,
        };
        const struct cri_handler_ops *h = cri_handler_of_pod(&px);
        if (h->create_at_start && h->create_at_start()) {
                c.x.deferred = true;
                goto ready;
        }
        c.shim = true; /* a shim may exist even when create fails late */
        int cr = h->container_create(d, pod, &px, &cc, e);
        if (!cc.host_cgroup) {
                /* The cgroup is not on the host (a VM's guest): nothing to remove here. */
                free(c.x.cgroup);
                c.x.cgroup = NULL;
        }
        if (cr < 0) {
                err_wrap(e, "create container %s", cfg->metadata->name);
                goto out;
        }
        c.x.shim_pid = cc.shim_pid;
        c.rec.pid = cc.pid;
ready: /* 5. ready */
        c.x.ready = true;
        free(c.rec.extra_json);
        c.rec.extra_json = ctr_extra_json(&c.x);
        if (model_ctr_put(d->model, &c.rec, e) < 0)
                goto out;
        snprintf(id_out, ID_LEN + 1, "%s", c.rec.id);
        r = 0;
out:
        if (r < 0 && c.recorded)
                undo_create(d, &c);
        rt_spec_free(spec);
        snap_mount_free(mnt);
        img_config_clear(&ic);
        store_image_clear(&img);
        if (pc)
                runtime__v1__pod_sandbox_config__free_unpacked(pc, NULL);
        cri_pod_extra_clear(&px);
        store_ctr_clear(&c.rec);
        ctr_extra_clear(&c.x);
        return r;
}

static int create_container(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__CreateContainerRequest *rq = (const Runtime__V1__CreateContainerRequest *)req;
        const Runtime__V1__ContainerConfig *cfg = rq->config;
        if (cfg == NULL || cfg->metadata == NULL || cfg->metadata->name == NULL ||
            *cfg->metadata->name == '\0')
                return err_set(e, ERR_INVALID, "CreateContainer: the config has no metadata name");
        if (cfg->image == NULL || cfg->image->image == NULL || *cfg->image->image == '\0')
                return err_set(e, ERR_INVALID, "container %s: no image given", cfg->metadata->name);
        struct store_pod pod = {0};
        if (cri_pod_resolve(d, rq->pod_sandbox_id, &pod, e) < 0)
                return err_wrap(e, "container %s", cfg->metadata->name);
        char id[ID_LEN + 1] = "";
        int64_t t0 = time_mono_ns();
        cri_pod_lock(d, pod.id);
        /* Re-read under the lock: a StopPodSandbox may have just finished. */
        struct store_pod cur = {0};
        int r = model_pod_get(d->model, pod.id, &cur, e);
        if (r < 0 && err_is(e, ERR_NOT_FOUND))
                err_set(e, ERR_NOT_FOUND, "pod sandbox %s not found", pod.id);
        if (r == 0)
                r = create_locked(d, rq, &cur, id, e);
        cri_pod_unlock(d, pod.id);
        store_pod_clear(&cur);
        if (r == 0) {
                log_info("cri", "container created id=%s name=%s pod=%s ms=%.3f", id, cfg->metadata->name,
                         pod.id, (double)(time_mono_ns() - t0) / 1e6);
                cri_event(d, id, pod.id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_CREATED_EVENT);
        }
        store_pod_clear(&pod);
        if (r < 0)
                return r;
        Runtime__V1__CreateContainerResponse *out = xmalloc(sizeof(*out));
        runtime__v1__create_container_response__init(out);
        out->container_id = xstrdup(id);
        *resp = &out->base;
        return 0;
}

/* ---------- start ---------- */

static int start_container(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                           ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__StartContainerRequest *rq = (const Runtime__V1__StartContainerRequest *)req;
        struct store_container c = {0};
        if (ctr_resolve(d, rq->container_id, &c, e) < 0)
                return -1;
        int r = -1;
        struct shim_conn *sc = NULL;
        cleanup_err struct err e2 = ERR_INIT;
        ctr_refresh(d, &c);
        if (c.state != STORE_CTR_CREATED) {
                err_set(e, ERR_PRECONDITION, "container %s is %s, not created", c.id, ctr_state_str(c.state));
                goto out;
        }
        if (ctr_deferred(&c) && ctr_defer_spawn(d, &c, e) < 0) {
                err_wrap(e, "start container %s", c.id);
                goto out;
        }
        if (ctr_connect(&c, &sc, e) < 0) {
                err_wrap(e, "start container %s", c.id);
                goto out;
        }
        int64_t t0 = time_mono_ns();
        r = shim_start(sc, e);
        struct shim_state st;
        bool have = shim_state(sc, &st, &e2) == 0;
        model_lock(d->model, c.id);
        struct store_container cur = {0};
        if (model_ctr_get(d->model, c.id, &cur, &e2) == 0) {
                if (have)
                        ctr_apply_state(&cur, &st);
                if (r < 0) {
                        /* The exec failed: the container is done, say why. */
                        cur.state = STORE_CTR_EXITED;
                        if (cur.finished_ns == 0)
                                cur.finished_ns = time_now_ns();
                        if (cur.exit_code == 0)
                                cur.exit_code = 128;
                        set_str(&cur.reason, "StartError");
                        set_str(&cur.message, e->msg);
                } else if (cur.state == STORE_CTR_CREATED) {
                        cur.state = STORE_CTR_RUNNING;
                }
                if (cur.started_ns == 0)
                        cur.started_ns = time_now_ns();
                (void)model_ctr_put(d->model, &cur, &e2);
        }
        store_ctr_clear(&cur);
        model_unlock(d->model, c.id);
        if (r < 0) {
                err_wrap(e, "start container %s", c.id);
                cri_event(d, c.id, c.pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STOPPED_EVENT);
                goto out;
        }
        ctr_monitor_watch(d, &c);
        log_info("cri", "container started id=%s ms=%.3f", c.id, (double)(time_mono_ns() - t0) / 1e6);
        cri_event(d, c.id, c.pod_id, RUNTIME__V1__CONTAINER_EVENT_TYPE__CONTAINER_STARTED_EVENT);
        Runtime__V1__StartContainerResponse *out = xmalloc(sizeof(*out));
        runtime__v1__start_container_response__init(out);
        *resp = &out->base;
out:
        shim_close(sc);
        store_ctr_clear(&c);
        return r;
}

static int stop_container(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                          ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__StopContainerRequest *rq = (const Runtime__V1__StopContainerRequest *)req;
        struct store_container c = {0};
        int r = ctr_resolve(d, rq->container_id, &c, e);
        if (r < 0 && err_is(e, ERR_NOT_FOUND)) {
                /* Idempotent, as RemoveContainer: kubelet retries stops. */
                err_clear(e);
                r = 1;
        }
        if (r < 0)
                return -1;
        if (r == 0)
                r = ctr_stop_one(d, &c, rq->timeout, e);
        store_ctr_clear(&c);
        if (r < 0)
                return r;
        Runtime__V1__StopContainerResponse *out = xmalloc(sizeof(*out));
        runtime__v1__stop_container_response__init(out);
        *resp = &out->base;
        return 0;
}

static int remove_container(struct cri_daemon *d, struct cri_call *call, const ProtobufCMessage *req,
                            ProtobufCMessage **resp, struct err *e)
{
        (void)call;
        const Runtime__V1__RemoveContainerRequest *rq = (const Runtime__V1__RemoveContainerRequest *)req;
        struct store_container c = {0};
        int r = ctr_resolve(d, rq->container_id, &c, e);
        if (r < 0 && err_is(e, ERR_NOT_FOUND)) {
                /* Idempotent: kubelet retries removals. */
                err_clear(e);
                r = 1;
        }
        if (r < 0)
                return r;
        if (r == 0) {
                char pod_id[ID_LEN + 1];
                snprintf(pod_id, sizeof(pod_id), "%s", c.pod_id);
                cri_pod_lock(d, pod_id);
                r = ctr_remove_locked(d, &c, e);
                cri_pod_unlock(d, pod_id);
        }
        store_ctr_clear(&c);
        if (r < 0)
                return r;
        Runtime__V1__RemoveContainerResponse *out = xmalloc(sizeof(*out));
        runtime__v1__remove_container_response__init(out);
        *resp = &out->base;
        return 0;
}

const struct cri_handler cri_container_handlers[] = {
        {.name = "CreateContainer", .unary = create_container},
        {.name = "StartContainer", .unary = start_container},
        {.name = "StopContainer", .unary = stop_container},
        {.name = "RemoveContainer", .unary = remove_container},
        {0},
};
