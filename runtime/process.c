/* Child-side process set-up shared by create and exec (stdio, rlimits,
 * oom_score_adj, user, capabilities, no_new_privs, seccomp, execve) and the
 * parent/child sync messages over the SOCK_SEQPACKET socketpair. */
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <linux/close_range.h>
#include <sys/syscall.h>

#include "runtime/runtime-internal.h"

/* ---------- sync ---------- */

int sync_send(int fd, char type, const void *data, size_t len)
{
        char buf[4096];
        if (len > sizeof(buf) - 1)
                len = sizeof(buf) - 1;
        buf[0] = type;
        if (len)
                memcpy(buf + 1, data, len);
        ssize_t n;
        do
                n = send(fd, buf, len + 1, MSG_NOSIGNAL);
        while (n < 0 && errno == EINTR);
        return n < 0 ? -1 : 0;
}

int sync_recv(int fd, char *data, size_t cap, size_t *len)
{
        char buf[4096];
        ssize_t n;
        do
                n = recv(fd, buf, sizeof(buf), 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -1;
        if (n == 0)
                return 0;
        size_t l = (size_t)n - 1;
        if (data) {
                if (l > cap)
                        l = cap;
                memcpy(data, buf + 1, l);
        }
        if (len)
                *len = l;
        return (unsigned char)buf[0];
}

void sync_fail(int fd, struct err *e)
{
        char buf[4000];
        int n = snprintf(buf, sizeof(buf), "%d:%d:%s", (int)e->kind, e->errnum,
                         e->msg ? e->msg : "unknown error");
        if (n >= (int)sizeof(buf))
                n = sizeof(buf) - 1;
        (void)sync_send(fd, SYNC_ERROR, buf, (size_t)n);
        _exit(1);
}

int sync_error_to_err(const char *data, size_t len, struct err *e)
{
        cleanup_free char *s = xstrndup(data, len);
        int kind = ERR_INTERNAL, errnum = 0, off = 0;
        if (sscanf(s, "%d:%d:%n", &kind, &errnum, &off) < 2 || off == 0)
                off = 0;
        err_set(e, (enum err_kind)kind, "%s", s + off);
        if (e)
                e->errnum = errnum;
        return -1;
}

/* ---------- stdio ---------- */

int proc_stdio(const struct rt_stdio *stdio, bool tty, struct err *e)
{
        int src[3] = {stdio ? stdio->in : -1, stdio ? stdio->out : -1, stdio ? stdio->err : -1};
        int tmp[3];
        /* Move out of 0..2 first so that one dup2 cannot clobber another's source. */
        for (int i = 0; i < 3; i++) {
                if (src[i] < 0) {
                        tmp[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
                        if (tmp[i] < 0)
                                return err_make(e, errno, "open /dev/null");
                        int hi = fcntl(tmp[i], F_DUPFD_CLOEXEC, 10);
                        close(tmp[i]);
                        tmp[i] = hi;
                } else {
                        tmp[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10);
                }
                if (tmp[i] < 0)
                        return err_make(e, errno, "dup stdio fd %d", src[i]);
        }
        for (int i = 0; i < 3; i++) {
                if (dup2(tmp[i], i) < 0)
                        return err_make(e, errno, "dup2 stdio %d", i);
                close(tmp[i]);
        }
        if (tty) {
                if (setsid() < 0 && errno != EPERM)
                        return err_make(e, errno, "setsid");
                if (ioctl(0, TIOCSCTTY, 0) < 0)
                        return err_make(e, errno, "make stdin the controlling terminal");
        }
        return 0;
}

int proc_rlimits(const struct rt_process *p, struct err *e)
{
        for (size_t i = 0; i < p->n_rlimits; i++) {
                struct rlimit rl = {.rlim_cur = p->rlimits[i].soft, .rlim_max = p->rlimits[i].hard};
                if (setrlimit(p->rlimits[i].resource, &rl) < 0)
                        return err_make(e, errno, "setrlimit %d to %llu/%llu", p->rlimits[i].resource,
                                        (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max);
        }
        return 0;
}

int proc_oom_score_adj(const struct rt_process *p, struct err *e)
{
        if (!p->has_oom_score_adj)
                return 0;
        cleanup_close int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open /proc/self/oom_score_adj");
        char buf[16];
        int n = snprintf(buf, sizeof(buf), "%d", p->oom_score_adj);
        if (write(fd, buf, (size_t)n) == n)
                return 0;
        int er = errno;
        if (er != EACCES && er != EPERM)
                return err_make(e, er, "set oom_score_adj %d", p->oom_score_adj);
        /* Lowering needs CAP_SYS_RESOURCE: keep the current (lowest allowed) value. */
        char cur[16] = {0};
        if (pread(fd, cur, sizeof(cur) - 1, 0) <= 0)
                return err_make(e, er, "set oom_score_adj %d", p->oom_score_adj);
        if (p->oom_score_adj < atoi(cur))
                return 0;
        return err_make(e, er, "set oom_score_adj %d", p->oom_score_adj);
}

/* ---------- identity ---------- */

static const char *env_get(char *const *env, const char *key)
{
        size_t kl = strlen(key);
        for (; env && *env; env++)
                if (strncmp(*env, key, kl) == 0 && (*env)[kl] == '=')
                        return *env + kl + 1;
        return NULL;
}

static bool executable(const char *p)
{
        struct stat st;
        return stat(p, &st) == 0 && S_ISREG(st.st_mode) && faccessat(AT_FDCWD, p, X_OK, AT_EACCESS) == 0;
}

static int resolve_exe(struct proc_plan *pl, struct err *e)
{
        const char *a0 = pl->args[0];
        if (strchr(a0, '/')) {
                errno = 0;
                if (!executable(a0))
                        return err_make(e, errno ? errno : EACCES, "exec %s", a0);
                pl->exe = xstrdup(a0);
                return 0;
        }
        const char *path = env_get(pl->env, "PATH");
        if (path == NULL)
                path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        cleanup_free char *copy = xstrdup(path);
        for (char *save = NULL, *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                cleanup_free char *p = xasprintf("%s/%s", d[0] ? d : ".", a0);
                if (executable(p)) {
                        pl->exe = steal_ptr(&p);
                        return 0;
                }
        }
        return err_set(e, ERR_NOT_FOUND, "executable file `%s` not found in $PATH (%s)", a0, path);
}

static void add_group(gid_t *v, size_t *n, gid_t g)
{
        for (size_t i = 0; i < *n; i++)
                if (v[i] == g)
                        return;
        v[(*n)++] = g;
}

int proc_identity(struct proc_plan *pl, struct err *e)
{
        const struct rt_spec *s = pl->spec;
        cleanup_free uint32_t *extra = NULL;
        size_t n_extra = 0;

        if (pl->username && pl->username[0]) {
                uint32_t gid;
                if (rt_resolve_user("/", pl->username, &pl->uid, &gid, pl->strict_groups ? NULL : &extra,
                                    &n_extra, e) < 0)
                        return -1;
                if (!pl->group_set)
                        pl->gid = gid;
        }
        if (caps_drop_bounding(pl->caps, s->privileged, e) < 0)
                return -1;
        /* Without no_new_privs a filter needs CAP_SYS_ADMIN: load it while
         * we still are root (the profile must then allow what follows). */
        if (!pl->no_new_privs && pl->bpf && seccomp_install(pl->bpf, pl->bpf_len, e) < 0)
                return -1;
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return err_make(e, errno, "PR_SET_KEEPCAPS");
        /* The gid first (containerd and CRI-O list it among the groups
         * too), then the CRI's, then the image's; each once. */
        gid_t *groups = xcalloc(1 + pl->n_gids + n_extra, sizeof(gid_t));
        size_t ng = 0;
        add_group(groups, &ng, pl->gid);
        for (size_t i = 0; i < pl->n_gids; i++)
                add_group(groups, &ng, pl->gids[i]);
        for (size_t i = 0; i < n_extra; i++)
                add_group(groups, &ng, extra[i]);
        int r = setgroups(ng, groups);
        free(groups);
        /* Where setgroups is denied (a user namespace) nobody asked for
         * more than the gid. */
        if (r < 0 && !(errno == EPERM && pl->n_gids + n_extra == 0))
                return err_make(e, errno, "setgroups");
        if (setresgid(pl->gid, pl->gid, pl->gid) < 0)
                return err_make(e, errno, "setgid %u", pl->gid);
        if (setresuid(pl->uid, pl->uid, pl->uid) < 0)
                return err_make(e, errno, "setuid %u", pl->uid);
        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
                return err_make(e, errno, "PR_SET_KEEPCAPS");
        if (caps_apply(pl->caps, s->privileged, e) < 0)
                return -1;
        if (pl->no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return err_make(e, errno, "set no_new_privs");
        const char *cwd = pl->cwd && pl->cwd[0] ? pl->cwd : "/";
        if (chdir(cwd) < 0)
                return err_make(e, errno, "chdir to %s", cwd);
        return resolve_exe(pl, e);
}

int proc_exec(struct proc_plan *pl, struct err *e)
{
        if (pl->no_new_privs && pl->bpf && seccomp_install(pl->bpf, pl->bpf_len, e) < 0)
                return -1;
        /* The container outlives its shim if it must (no pdeathsig after exec). */
        (void)prctl(PR_SET_PDEATHSIG, 0, 0, 0, 0);
        /* No fd of the caller (shim logs, epoll, ...) may reach the container. */
        (void)syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC);
        /* A caller that blocks signals (the shim's signalfd, corrald's sigwait)
         * must not hand that mask to the container: execve keeps it. */
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        char *empty[] = {NULL};
        execve(pl->exe, pl->args, pl->env ? pl->env : empty);
        return err_make(e, errno, "exec %s", pl->exe);
}
