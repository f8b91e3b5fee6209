/* What the protocol loop (serve.c) needs around a container's life beyond
 * runtime/: the pod's shared PID namespace in the guest, signals to a pid 1
 * that has no handler for them yet, and the OOM kills of its cgroup. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include "runtime/runtime.h"
#include "vm/agent/agent-internal.h"
#include "vm/vm.h"

/* How long after its start a container's pid 1 may still be setting up its
 * signal handlers (an exec under TCG takes a while). */
#define SIG_DEFER_MS 10000
#define SIG_POLL_MS  20

/* ---------- the pod's PID namespace ---------- */

static bool pidns_mounted(void)
{
        struct statfs sf;
        return statfs(VM_GUEST_POD_PIDNS, &sf) == 0 && sf.f_type == NSFS_MAGIC;
}

int agent_pod_pidns(struct agent *a, const struct rt_spec *s, struct err *e)
{
        const struct rt_namespace *ns = &s->namespaces[RT_NS_PID];
        if (ns->mode != RT_NS_JOIN || !ns->path || strcmp(ns->path, VM_GUEST_POD_PIDNS) != 0)
                return 0;
        if (a->pod_init > 0 && kill(a->pod_init, 0) == 0 && pidns_mounted())
                return 0;
        /* None yet, or its init is gone (a namespace without one takes no
         * new process): a new one. */
        (void)umount2(VM_GUEST_POD_PIDNS, MNT_DETACH);
        pid_t pid;
        if (rt_pod_init_spawn("pod", &pid, e) < 0)
                return err_wrap(e, "the pod's PID namespace");
        cleanup_free char *dir = xstrdup(VM_GUEST_POD_PIDNS);
        *strrchr(dir, '/') = '\0';
        (void)mkdir_p(dir, 0755, NULL);
        int fd = open(VM_GUEST_POD_PIDNS, O_WRONLY | O_CREAT | O_CLOEXEC, 0444);
        if (fd >= 0)
                close(fd);
        char src[64];
        snprintf(src, sizeof(src), "/proc/%d/ns/pid", (int)pid);
        if (mount(src, VM_GUEST_POD_PIDNS, NULL, MS_BIND, NULL) < 0) {
                int saved = errno;
                (void)kill(pid, SIGKILL);
                return err_make(e, saved, "bind the pod's PID namespace on %s", VM_GUEST_POD_PIDNS);
        }
        a->pod_init = pid;
        return 0;
}

/* ---------- signals ---------- */

int agent_ctr_signal(struct ctr *c, int sig, struct err *e)
{
        if (c->state == CTR_RUNNING && agent_now_ms() - c->started_ms < SIG_DEFER_MS &&
            rt_signal_dropped(c->pid, sig)) {
                /* Its pid 1 may still be starting (critest stops `top` right
                 * after StartContainer): sent once it has a handler. */
                c->pending_sig = sig;
                return 0;
        }
        if (kill(c->pid, sig) < 0 && errno != ESRCH)
                return err_make(e, errno, "kill container %s", c->id);
        if (sig == SIGKILL)
                c->pending_sig = 0;
        return 0;
}

int agent_ctr_signals_due(struct agent *a, int64_t now)
{
        int next = -1;
        for (size_t i = 0; i < a->n_ctrs; i++) {
                struct ctr *c = a->ctrs[i];
                if (!c->pending_sig)
                        continue;
                if (c->state != CTR_RUNNING) {
                        c->pending_sig = 0;
                } else if (!rt_signal_dropped(c->pid, c->pending_sig) ||
                           now - c->started_ms >= SIG_DEFER_MS) {
                        /* Past the window a pid 1 without a handler keeps
                         * ignoring it, as the kernel would have. */
                        (void)kill(c->pid, c->pending_sig);
                        c->pending_sig = 0;
                } else {
                        next = SIG_POLL_MS;
                }
        }
        return next;
}

/* ---------- OOM ---------- */

void agent_ctr_oom_base(struct ctr *c)
{
        const char *cg = c->rc ? rt_container_cgroup(c->rc) : NULL;
        if (!cg)
                return;
        c->cgroup = xstrdup(cg);
        if (rt_cgroup_oom_kills(c->cgroup, &c->oom_base, NULL) < 0)
                c->oom_base = 0;
}

bool agent_ctr_oom_killed(const struct ctr *c)
{
        uint64_t kills = 0;
        cleanup_err struct err e = ERR_INIT;
        if (!c->cgroup || rt_cgroup_oom_kills(c->cgroup, &kills, &e) < 0)
                return false;
        return kills > c->oom_base;
}
