/* rt_exec: a new process in a running container. An intermediate child
 * joins the cgroup and the target's namespaces, then forks the real process
 * with CLONE_PARENT (so it is the caller's child, inside the pid namespace),
 * which applies the container's security and execs. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "runtime/runtime-internal.h"

/* Open the target's namespaces that differ from ours (setns into our own
 * user namespace fails with EINVAL). */
static int open_target_ns(pid_t pid, int fds[RT_NS_COUNT], struct err *e)
{
        for (int i = 0; i < RT_NS_COUNT; i++) {
                fds[i] = -1;
                cleanup_free char *tp = xasprintf("/proc/%d/ns/%s", (int)pid, ns_proc_name(i));
                cleanup_free char *sp = xasprintf("/proc/self/ns/%s", ns_proc_name(i));
                struct stat ts, ss;
                if (stat(tp, &ts) < 0) {
                        if (errno == ENOENT && i == RT_NS_CGROUP)
                                continue;
                        return err_make(e, errno, "target process %d", (int)pid);
                }
                if (stat(sp, &ss) == 0 && ss.st_ino == ts.st_ino && ss.st_dev == ts.st_dev)
                        continue;
                fds[i] = open(tp, O_RDONLY | O_CLOEXEC);
                if (fds[i] < 0)
                        return err_make(e, errno, "open %s", tp);
        }
        return 0;
}

/* v2 without a spec cgroup: the target's own ("0::/path"). */
static char *target_cgroup(pid_t pid)
{
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED)
                return NULL;
        cleanup_free char *p = xasprintf("/proc/%d/cgroup", (int)pid);
        cleanup_free char *s = NULL;
        size_t n;
        if (file_read_all(p, &s, &n, 1 << 16, NULL) < 0)
                return NULL;
        char *l = strstr(s, "0::");
        if (l == NULL)
                return NULL;
        l += 3;
        l[strcspn(l, "\n")] = '\0';
        return xstrdup(l);
}

static void intermediate(int sock, int fds[RT_NS_COUNT], const char *cgroup, struct proc_plan *pl,
                         const struct rt_stdio *stdio) __attribute__((noreturn));
static void intermediate(int sock, int fds[RT_NS_COUNT], const char *cgroup, struct proc_plan *pl,
                         const struct rt_stdio *stdio)
{
        struct err e = ERR_INIT;
        /* The user namespace last, in the real process: the mount (and pid)
         * namespace of a pod's container belongs to the host's user
         * namespace (see rt_userns_new), and rlimits and oom_score_adj
         * need host caps. */
        static const enum rt_ns_type order[] = {RT_NS_IPC,    RT_NS_UTS, RT_NS_NET,
                                                RT_NS_CGROUP, RT_NS_PID, RT_NS_MNT};
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        /* Before the mount namespace changes: the host's cgroupfs. */
        if (cgroup && rt_cgroup_enter(cgroup, getpid(), &e) < 0)
                sync_fail(sock, &e);
        for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                int fd = fds[order[i]];
                if (fd >= 0 && setns(fd, ns_clone_flag(order[i])) < 0) {
                        err_make(&e, errno, "join %s namespace", ns_proc_name(order[i]));
                        sync_fail(sock, &e);
                }
        }
        pid_t p = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
        if (p < 0) {
                err_make(&e, errno, "fork into the container");
                sync_fail(sock, &e);
        }
        if (p > 0) {
                (void)sync_send(sock, SYNC_PID, &p, sizeof(p));
                _exit(0);
        }
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        const struct rt_spec *s = pl->spec;
        if (proc_stdio(stdio, pl->tty, &e) < 0 || proc_rlimits(&s->process, &e) < 0 ||
            proc_oom_score_adj(&s->process, &e) < 0)
                sync_fail(sock, &e);
        if (fds[RT_NS_USER] >= 0 && setns(fds[RT_NS_USER], CLONE_NEWUSER) < 0) {
                err_make(&e, errno, "join user namespace");
                sync_fail(sock, &e);
        }
        if (proc_identity(pl, &e) < 0)
                sync_fail(sock, &e);
        (void)proc_exec(pl, &e);
        sync_fail(sock, &e);
}

int rt_exec(pid_t target_pid, const struct rt_spec *spec, const struct rt_process *proc,
            const struct rt_stdio *stdio, pid_t *out_pid, struct err *e)
{
        int fds[RT_NS_COUNT];
        int ret = -1;
        int sv[2] = {-1, -1};
        cleanup_free char *cgroup = NULL;
        cleanup_free void *bpf = NULL;
        size_t bpf_len = 0;
        pid_t mid = -1, child = -1;

        for (int i = 0; i < RT_NS_COUNT; i++)
                fds[i] = -1;
        if (proc == NULL || proc->args == NULL || proc->args[0] == NULL)
                return err_set(e, ERR_INVALID, "exec: no command");
        if (open_target_ns(target_pid, fds, e) < 0)
                goto out;
        if (spec->cgroup_path) {
                if (rt_cgroup_resolve(spec->cgroup_path, &cgroup, e) < 0)
                        goto out;
                cg_scope_leaf(&cgroup);
        } else {
                cgroup = target_cgroup(target_pid);
        }
        if (spec->seccomp && !spec->privileged && rt_seccomp_compile(spec->seccomp, &bpf, &bpf_len, e) < 0)
                goto out;

        bool own_user = (proc->username && proc->username[0]) || proc->uid || proc->gid;
        const struct rt_process *u = own_user ? proc : &spec->process;
        struct proc_plan pl = {
                .spec = spec,
                .args = proc->args,
                .env = proc->env ? proc->env : spec->process.env,
                .cwd = proc->cwd ? proc->cwd : spec->process.cwd,
                .tty = proc->tty,
                .uid = u->uid,
                .gid = u->gid,
                .gids = u->additional_gids,
                .n_gids = u->n_additional_gids,
                .username = u->username,
                .group_set = u->group_set,
                .strict_groups = u->strict_groups,
                .caps = &spec->process.caps,
                .no_new_privs = spec->process.no_new_privs,
                .bpf = bpf,
                .bpf_len = bpf_len,
        };
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                err_make(e, errno, "socketpair");
                goto out;
        }
        mid = fork();
        if (mid < 0) {
                err_make(e, errno, "fork");
                goto out;
        }
        if (mid == 0) {
                close(sv[0]);
                intermediate(sv[1], fds, cgroup, &pl, stdio);
        }
        close(sv[1]);
        sv[1] = -1;
        for (;;) {
                char buf[4096];
                size_t len = 0;
                int t = sync_recv(sv[0], buf, sizeof(buf), &len);
                if (t == SYNC_PID && len == sizeof(pid_t)) {
                        memcpy(&child, buf, sizeof(pid_t));
                        continue;
                }
                if (t == 0 && child > 0) {
                        ret = 0; /* close-on-exec: execve succeeded */
                        break;
                }
                if (t == SYNC_ERROR)
                        sync_error_to_err(buf, len, e);
                else if (t == 0)
                        err_set(e, ERR_INTERNAL, "exec: helper exited early");
                else
                        err_make(e, errno, "exec: sync");
                break;
        }
out:
        if (mid > 0)
                while (waitpid(mid, NULL, 0) < 0 && errno == EINTR)
                        ;
        if (ret < 0 && child > 0) {
                kill(child, SIGKILL);
                while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        for (int i = 0; i < 2; i++)
                if (sv[i] >= 0)
                        close(sv[i]);
        for (int i = 0; i < RT_NS_COUNT; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        if (ret < 0)
                return err_wrap(e, "exec in %d", (int)target_pid);
        *out_pid = child;
        return 0;
}
