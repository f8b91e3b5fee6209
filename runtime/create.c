/* rt_container_create / start: clone3 into the new namespaces (and the v2
 * cgroup), one SOCK_SEQPACKET socketpair to step the child through
 * GO -> set-up -> READY -> START -> execve. */
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "runtime/runtime-internal.h"

struct rt_container {
        pid_t pid;
        int pidfd;
        int sock;
        char *cgroup;
        bool started;
        void *bpf;
        size_t bpf_len;
};

pid_t rt_container_pid(const struct rt_container *c)
{
        return c->pid;
}

int rt_container_pidfd(const struct rt_container *c)
{
        return c->pidfd;
}

const char *rt_container_cgroup(const struct rt_container *c)
{
        return c->cgroup;
}

/* ---------- child ---------- */

static int join_namespaces(const struct rt_spec *s, int *joined_pid, struct err *e)
{
        /* mnt is never joined; a user namespace is joined last, by the
         * caller, once the mounts are made (see rt_userns_new). */
        static const enum rt_ns_type order[] = {RT_NS_IPC, RT_NS_UTS, RT_NS_NET, RT_NS_CGROUP, RT_NS_PID};
        *joined_pid = 0;
        for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
                const struct rt_namespace *n = &s->namespaces[order[i]];
                if (n->mode != RT_NS_JOIN)
                        continue;
                cleanup_close int fd = open(n->path, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return err_make(e, errno, "open %s namespace %s", ns_proc_name(order[i]), n->path);
                if (setns(fd, ns_clone_flag(order[i])) < 0)
                        return err_make(e, errno, "join %s namespace %s", ns_proc_name(order[i]), n->path);
                if (order[i] == RT_NS_PID)
                        *joined_pid = 1;
        }
        return 0;
}

static int write_sysctls(const struct rt_spec *s, struct err *e)
{
        for (size_t i = 0; i < s->n_sysctls; i++) {
                cleanup_free char *p = xasprintf("/proc/sys/%s", s->sysctls[i].key);
                for (char *q = p + strlen("/proc/sys/"); *q; q++)
                        if (*q == '.')
                                *q = '/';
                cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
                const char *v = s->sysctls[i].value ? s->sysctls[i].value : "";
                if (fd < 0 || write(fd, v, strlen(v)) < 0)
                        return err_make(e, errno, "sysctl %s=%s", s->sysctls[i].key, v);
        }
        return 0;
}

struct child_args {
        const struct rt_spec *spec;
        const struct rt_stdio *stdio;
        int sock;
        bool unshare_cgroup;
        const void *bpf;
        size_t bpf_len;
};

static void child_main(struct child_args *a) __attribute__((noreturn));
static void child_main(struct child_args *a)
{
        struct err e = ERR_INIT;
        const struct rt_spec *s = a->spec;
        char buf[64];
        int joined_pid;

        (void)prctl(PR_SET_NAME, "corral-init", 0, 0, 0);
        /* The caller (shim) dying before start must not leave us behind. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        int t = sync_recv(a->sock, buf, sizeof(buf), NULL);
        if (t != SYNC_GO)
                _exit(1);
        if (join_namespaces(s, &joined_pid, &e) < 0)
                sync_fail(a->sock, &e);
        if (joined_pid) {
                /* setns(pid) applies to children only: continue in a child
                 * of the caller (CLONE_PARENT), report its pid, and go. */
                pid_t p = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
                if (p < 0) {
                        err_make(&e, errno, "fork into the joined pid namespace");
                        sync_fail(a->sock, &e);
                }
                if (p > 0) {
                        (void)sync_send(a->sock, SYNC_PID, &p, sizeof(p));
                        _exit(0);
                }
                (void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        }
        if (a->unshare_cgroup && unshare(CLONE_NEWCGROUP) < 0) {
                err_make(&e, errno, "new cgroup namespace");
                sync_fail(a->sock, &e);
        }
        /* Opened before pivot_root: its pin is on the host. */
        cleanup_close int userns = -1;
        if (idmap_open_userns(s, &userns, &e) < 0)
                sync_fail(a->sock, &e);
        if (proc_stdio(a->stdio, s->process.tty, &e) < 0)
                sync_fail(a->sock, &e);
        if (!s->process.tty && setsid() < 0 && errno != EPERM) {
                err_make(&e, errno, "setsid");
                sync_fail(a->sock, &e);
        }
        if (mounts_setup(s, &e) < 0)
                sync_fail(a->sock, &e);
        if (s->hostname && s->hostname[0] && sethostname(s->hostname, strlen(s->hostname)) < 0) {
                err_make(&e, errno, "sethostname %s", s->hostname);
                sync_fail(a->sock, &e);
        }
        if (write_sysctls(s, &e) < 0 || proc_rlimits(&s->process, &e) < 0 ||
            proc_oom_score_adj(&s->process, &e) < 0)
                sync_fail(a->sock, &e);
        if (userns >= 0 && setns(userns, CLONE_NEWUSER) < 0) {
                err_make(&e, errno, "join user namespace %s", s->namespaces[RT_NS_USER].path);
                sync_fail(a->sock, &e);
        }

        struct proc_plan pl = {
                .spec = s,
                .args = s->process.args,
                .env = s->process.env,
                .cwd = s->process.cwd,
                .tty = s->process.tty,
                .uid = s->process.uid,
                .gid = s->process.gid,
                .gids = s->process.additional_gids,
                .n_gids = s->process.n_additional_gids,
                .username = s->process.username,
                .group_set = s->process.group_set,
                .strict_groups = s->process.strict_groups,
                .caps = &s->process.caps,
                .no_new_privs = s->process.no_new_privs,
                .bpf = a->bpf,
                .bpf_len = a->bpf_len,
        };
        if (proc_identity(&pl, &e) < 0)
                sync_fail(a->sock, &e);
        if (sync_send(a->sock, SYNC_READY, NULL, 0) < 0)
                _exit(1);
        t = sync_recv(a->sock, buf, sizeof(buf), NULL);
        if (t != SYNC_START)
                _exit(1);
        (void)proc_exec(&pl, &e);
        sync_fail(a->sock, &e);
}

/* ---------- parent ---------- */

static int write_id_map(pid_t pid, const char *file, const struct rt_id_map *m, size_t n, struct err *e)
{
        struct sbuf b = {0};
        for (size_t i = 0; i < n; i++)
                sbuf_printf(&b, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
        cleanup_free char *p = xasprintf("/proc/%d/%s", (int)pid, file);
        cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
        int r = fd < 0 ? -1 : (int)write(fd, b.buf, b.len);
        int er = errno;
        sbuf_free(&b);
        if (r < 0)
                return err_make(e, er, "write %s", p);
        return 0;
}

static pid_t do_clone(uint64_t flags, int cgroup_fd, int *pidfd)
{
        struct clone_args ca = {
                .flags = flags | CLONE_PIDFD | (cgroup_fd >= 0 ? CLONE_INTO_CGROUP : 0),
                .pidfd = (uint64_t)(uintptr_t)pidfd,
                .exit_signal = SIGCHLD,
                .cgroup = cgroup_fd >= 0 ? (uint64_t)cgroup_fd : 0,
        };
        pid_t p = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
        if (p >= 0 || (errno != ENOSYS && errno != E2BIG && errno != EINVAL))
                return p;
        *pidfd = -1;
        return (pid_t)syscall(SYS_clone, (unsigned long)flags | SIGCHLD, NULL, NULL, NULL, NULL);
}

static void reap(pid_t pid)
{
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
}

int rt_container_create(const struct rt_spec *spec, const struct rt_stdio *stdio, struct rt_container **out,
                        struct err *e)
{
        const char *id = spec->id ? spec->id : "container";
        if (rt_spec_validate(spec, e) < 0)
                return -1;

        struct rt_container *c = xzalloc(sizeof(*c));
        c->pid = -1;
        c->pidfd = -1;
        c->sock = -1;
        int sv[2] = {-1, -1};
        cleanup_close int cgfd = -1;
        bool cg_made = false;

        if (spec->cgroup_path) {
                if (rt_cgroup_resolve(spec->cgroup_path, &c->cgroup, e) < 0)
                        goto fail;
                cg_scope_leaf(&c->cgroup);
                if (rt_cgroup_create(c->cgroup, &spec->resources, e) < 0)
                        goto fail;
                cg_made = true;
                cgfd = cg_v2_dirfd(c->cgroup, NULL);
        }
        if (spec->seccomp && !spec->privileged &&
            rt_seccomp_compile(spec->seccomp, &c->bpf, &c->bpf_len, e) < 0)
                goto fail;
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                err_make(e, errno, "socketpair");
                goto fail;
        }

        uint64_t flags = CLONE_NEWNS;
        bool unshare_cgroup = false;
        for (int i = 0; i < RT_NS_COUNT; i++) {
                if (i == RT_NS_MNT || spec->namespaces[i].mode != RT_NS_NEW)
                        continue;
                /* A new cgroup ns must be rooted at the container's cgroup:
                 * with v1 the child enters it after clone, so unshare late. */
                if (i == RT_NS_CGROUP && cgfd < 0 && c->cgroup) {
                        unshare_cgroup = true;
                        continue;
                }
                flags |= (uint64_t)ns_clone_flag(i);
        }
        /* Joining a user namespace is done by the child; a new one is made
         * by clone and mapped below. */
        struct child_args ca = {
                .spec = spec,
                .stdio = stdio,
                .sock = sv[1],
                .unshare_cgroup = unshare_cgroup,
                .bpf = c->bpf,
                .bpf_len = c->bpf_len,
        };
        c->pid = do_clone(flags, cgfd, &c->pidfd);
        if (c->pid < 0) {
                err_make(e, errno, "%s: clone", id);
                goto fail;
        }
        if (c->pid == 0) {
                close(sv[0]);
                child_main(&ca);
        }
        close(sv[1]);
        sv[1] = -1;
        c->sock = sv[0];
        sv[0] = -1;
        if (c->pidfd < 0)
                c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);

        if (c->cgroup && cgfd < 0 && rt_cgroup_enter(c->cgroup, c->pid, e) < 0)
                goto fail;
        if (spec->namespaces[RT_NS_USER].mode == RT_NS_NEW &&
            (write_id_map(c->pid, "uid_map", spec->uid_mappings, spec->n_uid_mappings, e) < 0 ||
             write_id_map(c->pid, "gid_map", spec->gid_mappings, spec->n_gid_mappings, e) < 0))
                goto fail;
        if (sync_send(c->sock, SYNC_GO, NULL, 0) < 0) {
                err_make(e, errno, "%s: sync with child", id);
                goto fail;
        }
        /* After a pid namespace join two processes write here, the
         * intermediate (the real pid) and its child (ready), in either
         * order: on a busy node the child can be set up before its parent
         * ran again. Stopping at "ready" would leave the pid in the socket,
         * read by start in place of the exec's EOF. */
        bool want_pid = spec->namespaces[RT_NS_PID].mode == RT_NS_JOIN;
        bool ready = false;
        while (!ready || want_pid) {
                char buf[4096];
                size_t len = 0;
                int t = sync_recv(c->sock, buf, sizeof(buf), &len);
                if (t == SYNC_READY && !ready) {
                        ready = true;
                        continue;
                }
                if (t == SYNC_PID && len == sizeof(pid_t) && want_pid) {
                        /* The intermediate of a pid namespace join: reap it. */
                        reap(c->pid);
                        memcpy(&c->pid, buf, sizeof(pid_t));
                        if (c->pidfd >= 0)
                                close(c->pidfd);
                        c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
                        want_pid = false;
                        continue;
                }
                if (t == SYNC_ERROR)
                        sync_error_to_err(buf, len, e);
                else if (t == 0)
                        err_set(e, ERR_INTERNAL, "container process exited during set-up");
                else if (t < 0)
                        err_make(e, errno, "sync with child");
                else
                        err_set(e, ERR_INTERNAL, "sync with child: unexpected message %d of %zu bytes", t,
                                len);
                goto fail;
        }
        /* Device rules only now: the child has made its /dev nodes, which a
         * spec device allowed "rw" without "m" could not have been (runc
         * applies them at the same point). It runs none of its own code yet. */
        if (c->cgroup && cg_devices_apply(c->cgroup, spec, e) < 0)
                goto fail;
        *out = c;
        return 0;

fail:
        if (sv[0] >= 0)
                close(sv[0]);
        if (sv[1] >= 0)
                close(sv[1]);
        if (c->pid > 0) {
                kill(c->pid, SIGKILL);
                reap(c->pid);
                c->pid = -1;
        }
        if (cg_made)
                (void)rt_cgroup_remove(c->cgroup, 2000, NULL);
        free(c->cgroup);
        c->cgroup = NULL;
        rt_container_free(c);
        return err_wrap(e, "create %s", id);
}

int rt_container_start(struct rt_container *c, struct err *e)
{
        if (c->started || c->sock < 0)
                return err_set(e, ERR_PRECONDITION, "container already started");
        if (sync_send(c->sock, SYNC_START, NULL, 0) < 0)
                return err_make(e, errno, "start: sync with child");
        char buf[4096];
        size_t len = 0;
        /* The socket is close-on-exec: EOF means execve succeeded. */
        int t = sync_recv(c->sock, buf, sizeof(buf), &len);
        int recv_errno = errno;
        close(c->sock);
        c->sock = -1;
        c->started = true;
        if (t == 0)
                return 0;
        if (t == SYNC_ERROR)
                sync_error_to_err(buf, len, e);
        else if (t < 0)
                err_make(e, recv_errno, "start: sync with child");
        else /* errno says nothing here: name what came instead of EOF */
                err_set(e, ERR_INTERNAL, "start: sync with child: message %d of %zu bytes instead of exec", t,
                        len);
        reap(c->pid);
        return err_wrap(e, "start");
}

void rt_container_free(struct rt_container *c)
{
        if (c == NULL)
                return;
        if (!c->started && c->pid > 0) {
                kill(c->pid, SIGKILL);
                reap(c->pid);
                if (c->cgroup)
                        (void)rt_cgroup_remove(c->cgroup, 2000, NULL);
        }
        if (c->sock >= 0)
                close(c->sock);
        if (c->pidfd >= 0)
                close(c->pidfd);
        free(c->cgroup);
        free(c->bpf);
        free(c);
}
