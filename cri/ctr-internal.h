/* cri/ containers: the files that work on container records (see the
 * layering in docs/architecture.md, "State"). */
#ifndef CORRAL_CRI_CTR_INTERNAL_H
#define CORRAL_CRI_CTR_INTERNAL_H

#include "cri/cri-internal.h"
#include "store/store.h"

struct rt_spec;
struct rt_resources;
struct img_config;
struct shim_conn;
struct shim_state;
struct snap_mount;

/* The container's private state kept in store_container.extra_json. */
struct ctr_extra {
        char *bundle;      /* <root>/containers/<id>: spec.json, rootfs mount point */
        char *state_dir;   /* <state>/containers/<id>: the shim's sockets and exit file */
        char *cgroup;      /* the spec's cgroup path (as given to runtime/) */
        char *stop_signal; /* the image's StopSignal, may be NULL */
        char *image_ref;   /* repo digest (or id) of the image, for ContainerStatus.image_ref */
        int shim_pid;
        bool ready; /* the shim created the container: false = half-made */
        /* Created with no shim yet: StartContainer spawns it (ctr_defer.c). */
        bool deferred;
        /* The started process's "uid:gid:g1,g2,..." (from the shim, read
         * from /proc when it started), for ContainerStatus.user; NULL before. */
        char *user;
};
int ctr_extra_parse(const char *json, struct ctr_extra *out);
char *ctr_extra_json(const struct ctr_extra *x);
void ctr_extra_clear(struct ctr_extra *x);

/* ---------- ctr_spec.c: CRI ContainerConfig + image config -> rt_spec ---------- */

struct ctr_spec_in {
        struct cri_daemon *d;
        const char *id;
        const struct store_pod *pod;
        const struct cri_pod_extra *podx;
        const Runtime__V1__PodSandboxConfig *pod_cfg; /* may be NULL */
        const Runtime__V1__ContainerConfig *cfg;
        const struct img_config *img;
        const struct snap_mount *rootfs; /* the container's snapshot */
        const char *bundle;
};
int ctr_spec_build(const struct ctr_spec_in *in, struct rt_spec **out, struct err *e);
/* Create the working directory in the writable layer when no layer has it
 * (containerd/runc do the same). */
int ctr_ensure_cwd(const struct rt_spec *s, struct err *e);
/* InvalidArgument for absurd values (negative memory, cpu period out of range ...). */
int ctr_resources_validate(const Runtime__V1__LinuxContainerResources *r, struct err *e);
/* Copy the CRI resources into *out (cleared first). */
void ctr_resources_to_rt(const Runtime__V1__LinuxContainerResources *r, struct rt_resources *out);
/* The spec's cgroup path for a container of a pod with cgroup parent `parent`. */
char *ctr_cgroup_path(const struct cri_daemon *d, const char *parent, const char *id);

/* ---------- ctr_signal.c ---------- */

/* "SIGTERM", "TERM", "15" -> 15, "SIGRTMIN+1" -> 35; 0 when unknown. */
int ctr_signal_parse(const char *s);
/* The CRI Signal enum value (SIGNAL_SIGUSR1, or the unprefixed names of
 * older protos) to a signal number; 0 for SIGNAL_RUNTIME_DEFAULT and
 * unknown values: the caller then uses the image's or the default. */
int ctr_signal_from_cri(int v);

/* ---------- ctr_state.c ---------- */

/* Resolve a full or unique-prefix container id; ERR_NOT_FOUND names it. */
int ctr_resolve(struct cri_daemon *d, const char *id, struct store_container *out, struct err *e);
/* Bring a CREATED/RUNNING record up to date with its shim (or exit file);
 * writes the record and publishes STOPPED when it exited meanwhile. */
void ctr_refresh(struct cri_daemon *d, struct store_container *c);
/* Connect to the container's shim. */
int ctr_connect(const struct store_container *c, struct shim_conn **out, struct err *e);
/* Apply a shim state to a record (state, times, exit code, reason). */
void ctr_apply_state(struct store_container *c, const struct shim_state *st);
/* Under the record's model lock: write the new state (st, or ShimGone when
 * gone) if the record is still what the caller saw; true when it exited now. */
bool ctr_transition(struct cri_daemon *d, struct store_container *c, const struct shim_state *st, bool gone);
/* The container by id, up to date with its shim, RUNNING, with shim state
 * (*x); `what` names the refused action. The caller checks the pid. */
int ctr_running(struct cri_daemon *d, const char *id, const char *what, struct store_container *c,
                struct ctr_extra *x, struct err *e);

/* ---------- record.c ---------- */

/* The packed CRI config of a record (NULL when absent). */
Runtime__V1__ContainerConfig *ctr_config(const struct store_container *c);
/* "created", "running", "exited", "unknown" */
const char *ctr_state_str(int st);

/* ---------- ctr_stop.c ---------- */

/* Stop one container: its stop signal, SIGKILL to all its processes at the
 * timeout. Idempotent on exited containers. Publishes STOPPED. */
int ctr_stop_one(struct cri_daemon *d, struct store_container *c, int64_t timeout_s, struct err *e);
/* Stop, then remove everything of it; the caller holds the pod's lock. */
int ctr_remove_locked(struct cri_daemon *d, struct store_container *c, struct err *e);

/* ---------- ctr_defer.c: the shim spawned by StartContainer ---------- */

/* Is `c` a created container whose shim does not exist yet? (record.c) */
bool ctr_deferred(const struct store_container *c);

/* Spawn the shim of a deferred container (under its pod's lock); 0 and
 * nothing done if another call did it first. `c` is re-read. */
int ctr_defer_spawn(struct cri_daemon *d, struct store_container *c, struct err *e);
/* A deferred container stopped before it started: exited, nothing to kill. */
void ctr_defer_stop(struct cri_daemon *d, struct store_container *c);
/* At restart: a deferred container whose spawn had begun is a shim's again. */
void ctr_defer_recover(struct cri_daemon *d, struct store_container *c);

/* ---------- ctr_monitor.c ---------- */

/* The exit monitor thread (started by cri_containers_recover, stopped by
 * cri_containers_fini). */
int ctr_monitor_start(struct cri_daemon *d, struct err *e);
/* Watch a running container: its exit updates the record and publishes
 * CONTAINER_STOPPED_EVENT at once. */
void ctr_monitor_watch(struct cri_daemon *d, const struct store_container *c);
/* Watch a READY pod whose sandbox can die by itself (sandbox_watch): its
 * death turns it NOTREADY and its containers EXITED at once, with events. */
void ctr_monitor_watch_pod(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x);

/* ---------- views.c ---------- */

Runtime__V1__ContainerStatus *ctr_status_build(const struct store_container *c);
Runtime__V1__Container *ctr_item_build(const struct store_container *c);
Runtime__V1__ContainerState ctr_cri_state(int st);
/* What the model keeps per container. */
struct ctr_view {
        bool ready; /* false: a create in progress, not listed */
        struct cri_map labels;
        struct cri_packed item;   /* Runtime__V1__Container */
        struct cri_packed status; /* Runtime__V1__ContainerStatus */
};

#endif
