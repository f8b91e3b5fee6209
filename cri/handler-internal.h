/* cri/ private: the runtime handler interface. A handler type (namespace,
 * vm, oci) is an ops table; a pod's table is chosen once, from the pod's
 * handler at RunPodSandbox and from its recorded state afterwards
 * (cri_handler_of_pod), and every call that depends on the type goes
 * through it. cri/ outside the handler_*.c and vm_*.c files asks no
 * "which type is this pod" of its own.
 *
 *   handler_ns.c   namespace containers (corral's runtime/, corral-shim)
 *   handler_vm.c   microVM pods (vm_pods.c holds the VM work it calls)
 *   handler_oci.c  an OCI runtime binary (runc, crun) driven by corral-shim
 */
#ifndef CORRAL_CRI_HANDLER_INTERNAL_H
#define CORRAL_CRI_HANDLER_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cri/cri-internal.h"

struct cfg_runtime;
struct net_cni_result;
struct rt_spec;
struct sbuf;
struct shim_conn;
struct store_pod;
struct store_container;
struct stream_exec_req;
struct stream_io;

/* What RunPodSandbox made before the handler's part starts. */
struct cri_sandbox_start {
        const struct cfg_runtime *rt;
        const char *netns; /* the pinned network namespace, NULL on the host's */
        const struct net_cni_result *res;
        const char *hostname;
        const Runtime__V1__LinuxPodSandboxConfig *lx; /* may be NULL */
};

/* What CreateContainer hands the handler once the spec is written. */
struct cri_ctr_create {
        const char *id;
        const struct rt_spec *spec;
        const char *bundle;    /* holds spec.json */
        const char *state_dir; /* the container's shim state */
        const char *log_path;  /* may be NULL */
        bool stdin_open, stdin_once, tty;
        /* out */
        int shim_pid;     /* 0 when the pod's shim serves it */
        int pid;          /* on the host; 0 when it has none */
        bool host_cgroup; /* the spec's cgroup is on the host (removed with the container) */
};

/* A feature a handler cannot offer, by design, and why (Status verbose). */
struct cri_unsupported {
        const char *feature;
        const char *reason;
};

struct cri_handler_ops {
        const char *type; /* "namespace", "vm", "oci": Status and the pod record */

        /* ----- Status ----- */
        /* NULL when the handler can run here, else why not (caller frees). */
        char *(*unusable)(const struct cri_daemon *d, const struct cfg_runtime *rt);
        /* A note for a usable handler (caller frees), may be NULL. */
        char *(*note)(const struct cri_daemon *d, const struct cfg_runtime *rt);
        /* KEP-127 pods and KEP-3857 recursive read-only mounts. */
        bool (*userns)(const char **why);
        /* Why the type never runs KEP-127 pods (RunPodSandbox refuses them); NULL when it can. */
        const char *no_userns;
        bool (*rro)(void);
        const struct cri_unsupported *unsupported; /* ends with {NULL} */
        /* Extra keys of the handler's Status verbose object (",\"k\":v..."), may be NULL. */
        void (*status_json)(const struct cri_daemon *d, const struct cfg_runtime *rt, struct sbuf *b);

        /* ----- pod sandbox ----- */
        /* RunPodSandbox, before anything is made: what the type refuses
         * (InvalidArgument) or cannot run here (FailedPrecondition). */
        int (*sandbox_check)(const struct cri_daemon *d, const struct cfg_runtime *rt,
                             const Runtime__V1__PodSandboxConfig *cfg, struct err *e);
        /* The type's part of the pod's private state, before the record is
         * first written; returns the CLONE_NEW* flags of the namespaces to pin. */
        int (*sandbox_init)(const struct cri_daemon *d, const struct cfg_runtime *rt,
                            const struct store_pod *p, struct cri_pod_extra *x);
        /* After CNI ADD, the pod files and the pod cgroup. */
        int (*sandbox_start)(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                             const struct cri_sandbox_start *in, struct err *e);
        /* The first step of the pod's teardown; idempotent. */
        int (*sandbox_stop)(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                            struct err *e);
        /* True (with *reason, caller frees) when a READY pod has died by itself; may be NULL. */
        bool (*sandbox_dead)(const struct cri_pod_extra *x, char **reason);
        /* A connection that becomes readable (or hangs up) when a READY
         * pod's sandbox may have died, for the exit monitor's epoll: then it
         * asks sandbox_dead. NULL for types that cannot die by themselves. */
        int (*sandbox_watch)(const struct cri_pod_extra *x, struct shim_conn **out, struct err *e);
        /* PodSandboxStatus verbose: the key and object of the type's own state; may be NULL. */
        const char *info_key;
        char *(*sandbox_info)(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x);
        /* RemovePodSandbox stops a NOTREADY pod again (it may have died
         * before anything was torn down). */
        bool stop_again_on_remove;

        /* ----- containers ----- */
        /* The spec's namespaces (ctr_spec.c); NULL: the pod's pinned ones. */
        int (*spec_namespaces)(struct rt_spec *s, const Runtime__V1__NamespaceOption *no,
                               const struct cri_pod_extra *x, struct err *e);
        /* A CRI mount the type refuses (InvalidArgument), may be NULL. */
        int (*check_mount)(const Runtime__V1__Mount *m, struct err *e);
        /* Create the container's process (not started). */
        int (*container_create)(struct cri_daemon *d, const struct store_pod *p,
                                const struct cri_pod_extra *x, struct cri_ctr_create *c, struct err *e);
        /* CreateContainer only records the container; StartContainer
         * calls container_create (with spec NULL) and starts it at once. */
        bool (*create_at_start)(void);
        /* A container is a host process: a host pid (exec joins it) and a host cgroup. */
        bool host_process;
        /* cpu and memory of a running container whose cgroup is not on the host; may be NULL. */
        bool (*container_usage)(struct cri_daemon *d, const struct cri_pod_extra *x, const char *ctr_id,
                                uint64_t *cpu_ns, uint64_t *memory);
        /* The connection to the pod's guest, whose figures are the
         * containers' own (CRI metrics); NULL for types whose containers'
         * cgroups are on the host. The caller closes *out. */
        int (*guest_conn)(const struct cri_pod_extra *x, struct shim_conn **out, struct err *e);
        /* Streaming exec and port-forward. */
        int (*exec)(struct cri_daemon *d, const struct cri_pod_extra *x, const struct stream_exec_req *req,
                    struct stream_io *io, int *exit_code, struct err *e);
        int (*port_forward)(struct cri_daemon *d, const char *pod_id, const struct cri_pod_extra *x,
                            uint16_t port, int *fd_out, struct err *e);
};

extern const struct cri_handler_ops cri_handler_ns;
extern const struct cri_handler_ops cri_handler_vm;
extern const struct cri_handler_ops cri_handler_oci;

/* The table of a configured handler. */
const struct cri_handler_ops *cri_handler_of(const struct cfg_runtime *rt);
/* The table of a pod, from its private state (never NULL). */
const struct cri_handler_ops *cri_handler_of_pod(const struct cri_pod_extra *x);
/* The same from the pod's id; the namespace table when the pod is unknown. */
const struct cri_handler_ops *cri_handler_of_pod_id(struct cri_daemon *d, const char *pod_id);

/* ---------- shared by the implementations ---------- */

/* In the pod dir: the pod init's pid, written before RunPodSandbox records
 * it, so that recovery after a crash in between kills it (pods.c). */
#define POD_INIT_PID_FILE "init.pid"

/* handler_ns.c: what the namespace and oci types share. */
int cri_ns_sandbox_start(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                         const struct cri_sandbox_start *in, struct err *e);
int cri_ns_sandbox_stop(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                        struct err *e);
/* corral-shim for one container, with `runtime_path` NULL (runtime/) or an
 * OCI runtime keeping its state under `runtime_root`. */
int cri_ns_shim_create(const struct cri_pod_extra *x, struct cri_ctr_create *c, const char *runtime_path,
                       const char *runtime_root, struct err *e);
/* streaming.c: the namespace-side exec and port-forward (oci uses them too). */
int cri_ns_exec(struct cri_daemon *d, const struct cri_pod_extra *x, const struct stream_exec_req *req,
                struct stream_io *io, int *exit_code, struct err *e);
int cri_ns_port_forward(struct cri_daemon *d, const char *pod_id, const struct cri_pod_extra *x,
                        uint16_t port, int *fd_out, struct err *e);
/* vm_pods.c: the VM side of exec and port-forward. */
int cri_vm_exec(struct cri_daemon *d, const struct cri_pod_extra *x, const struct stream_exec_req *req,
                struct stream_io *io, int *exit_code, struct err *e);
int cri_vm_port_forward(struct cri_daemon *d, const char *pod_id, const struct cri_pod_extra *x,
                        uint16_t port, int *fd_out, struct err *e);

#endif
