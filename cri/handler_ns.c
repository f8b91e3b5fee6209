/* The namespace handler type: the pod is its pinned namespaces (pods.c
 * makes them) plus, here, its /dev/shm, sysctls and, for a shared PID
 * namespace, its init; each container is a corral-shim that creates the
 * process with runtime/. The oci type shares the sandbox part and the shim. */
#include <errno.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include "config/config.h"
#include "cri/ctr-internal.h"
#include "cri/handler-internal.h"
#include "runtime/runtime.h"
#include "shim/shim.h"
#include "store/store.h"

static int ns_sandbox_init(const struct cri_daemon *d, const struct cfg_runtime *rt,
                           const struct store_pod *p, struct cri_pod_extra *x)
{
        (void)d;
        (void)rt;
        (void)p;
        return (x->host_net ? 0 : CLONE_NEWNET | CLONE_NEWUTS) | (x->host_ipc ? 0 : CLONE_NEWIPC);
}

/* The pod's /dev/shm: one tmpfs its containers share (kubelet's 64 MiB default),
 * as the pause container's is in other runtimes. */
static int shm_mount(const struct cri_pod_extra *x, struct err *e)
{
        cleanup_free char *shm = path_join(x->pod_dir, "shm");
        if (mkdir(shm, 0755) < 0 && errno != EEXIST)
                return err_make(e, errno, "mkdir %s", shm);
        if (mount("shm", shm, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") < 0)
                return err_make(e, errno, "mount the pod's /dev/shm on %s", shm);
        return 0;
}

int cri_ns_sandbox_start(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                         const struct cri_sandbox_start *in, struct err *e)
{
        (void)d;
        if (!x->host_ipc && shm_mount(x, e) < 0)
                return -1;
        if (cri_pod_apply_sysctls(x, in->lx, e) < 0)
                return -1;
        if (x->shared_pid) {
                pid_t init = 0;
                cleanup_free char *name = xasprintf("pod-%.12s", p->id);
                cleanup_free char *pid_file = path_join(x->pod_dir, POD_INIT_PID_FILE);
                if (mkdir_p(x->pod_dir, 0755, e) < 0 || rt_pod_init_spawn_at(name, pid_file, &init, e) < 0)
                        return err_wrap(e, "start the pod's init for its shared PID namespace");
                x->pod_init_pid = (int)init;
        }
        return 0;
}

int cri_ns_sandbox_stop(struct cri_daemon *d, const struct store_pod *p, struct cri_pod_extra *x,
                        struct err *e)
{
        (void)d;
        (void)e;
        if (x->pod_init_pid > 0) {
                cleanup_err struct err e2 = ERR_INIT;
                if (rt_pod_init_kill(x->pod_init_pid, &e2) < 0)
                        log_warn("pod", "kill pod init id=%s pid=%d: %s", p->id, x->pod_init_pid, e2.msg);
                x->pod_init_pid = 0;
        }
        return 0;
}

int cri_ns_shim_create(const struct cri_pod_extra *x, struct cri_ctr_create *c, const char *runtime_path,
                       const char *runtime_root, struct err *e)
{
        (void)x;
        cleanup_free char *shim_path = cri_shim_binary();
        struct shim_opts so = {
                .id = c->id,
                .bundle = c->bundle,
                .state_dir = c->state_dir,
                .log_path = c->log_path,
                .stdin_open = c->stdin_open,
                .stdin_once = c->stdin_once,
                .tty = c->tty,
                .shim_path = shim_path,
                .runtime_path = runtime_path,
                .runtime_root = runtime_root,
        };
        struct shim_info si;
        int64_t t0 = time_mono_ns();
        if (shim_spawn(&so, &si, e) < 0)
                return -1;
        log_debug("cri", "shim spawned container=%s shim_pid=%d pid=%d ms=%.3f", c->id, (int)si.shim_pid,
                  (int)si.pid, (double)(time_mono_ns() - t0) / 1e6);
        c->shim_pid = si.shim_pid;
        c->pid = si.pid;
        return 0;
}

static int ns_container_create(struct cri_daemon *d, const struct store_pod *p, const struct cri_pod_extra *x,
                               struct cri_ctr_create *c, struct err *e)
{
        (void)d;
        (void)p;
        /* The systemd driver's scope is started here, where sd-bus is: the
         * static shim then clones the container into its cgroup. */
        if (rt_cgroup_systemd_enabled() && rt_cgroup_create(c->spec->cgroup_path, &c->spec->resources, e) < 0)
                return -1;
        return cri_ns_shim_create(x, c, NULL, NULL, e);
}

/* The shim, and the container process it makes, come with StartContainer
 * (as containerd's task): CreateContainer stays a record, a snapshot and
 * a spec. The systemd driver's scope needs the spec: not deferred there. */
static bool ns_create_at_start(void)
{
        return !rt_cgroup_systemd_enabled();
}

static char *ns_unusable(const struct cri_daemon *d, const struct cfg_runtime *rt)
{
        (void)d;
        (void)rt;
        return NULL;
}

static bool ns_userns(const char **why)
{
        const struct rt_features *f = rt_host_features();
        if (why)
                *why = f->userns_pods ? "" : f->userns_pods_why;
        return f->userns_pods;
}

static bool ns_rro(void)
{
        return rt_host_features()->new_mount_api;
}

static const struct cri_unsupported ns_unsupported[] = {{0}};

const struct cri_handler_ops cri_handler_ns = {
        .type = "namespace",
        .unusable = ns_unusable,
        .userns = ns_userns,
        .rro = ns_rro,
        .unsupported = ns_unsupported,
        .sandbox_init = ns_sandbox_init,
        .sandbox_start = cri_ns_sandbox_start,
        .sandbox_stop = cri_ns_sandbox_stop,
        .container_create = ns_container_create,
        .create_at_start = ns_create_at_start,
        .host_process = true,
        .exec = cri_ns_exec,
        .port_forward = cri_ns_port_forward,
};
