/* The container through an OCI runtime binary (runc, crun), the way conmon
 * drives one: the shim writes config.json next to spec.json, mounts the
 * rootfs, and runs `RUNTIME create` with the container's stdio as its own
 * (pass-through: the container inherits the pipes) or, for a tty, a console
 * socket on which the runtime hands back the pty master. The shim is a
 * subreaper, so the container's init becomes its child when the runtime
 * exits: waiting, signals, logs, attach and the exit record then work as
 * for runtime/'s containers. `start` and `delete --force` complete the
 * life; the runtime's state lives under its --root (shim_opts.runtime_root). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shim/shim-internal.h"

#define OCI_CONFIG  "config.json"
#define RUNTIME_LOG "runtime.log"

static char *log_path(const struct shim *s)
{
        return path_join(s->opts->state_dir, RUNTIME_LOG);
}

/* The last line the runtime logged: its error. Caller frees. */
static char *last_log_line(const struct shim *s)
{
        cleanup_free char *p = log_path(s);
        cleanup_free char *buf = NULL;
        size_t len = 0;
        if (file_read_all(p, &buf, &len, 1 << 20, NULL) < 0 || len == 0)
                return xstrdup("(no message)");
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
                buf[--len] = '\0';
        char *nl = strrchr(buf, '\n');
        return xstrdup(nl ? nl + 1 : buf);
}

/* crun refuses a v1 host whose hybrid v2 hierarchy has a controller
 * enabled ("cgroups in hybrid mode not supported", whatever its cgroup
 * manager), while the containers' controllers are all v1 here: it runs in a
 * mount namespace of its own without /sys/fs/cgroup/unified, where the host
 * looks v1-only to it. Only that mount is made private there, so volumes
 * keep their propagation to and from the host. */
static bool hide_unified(const struct shim *s)
{
        const char *base = strrchr(s->opts->runtime_path, '/');
        base = base ? base + 1 : s->opts->runtime_path;
        return strcmp(base, "crun") == 0 && rt_cgroup_mode() == RT_CGROUP_V1_HYBRID;
}

/* argv for `RUNTIME --root R --log L [--systemd-cgroup] VERB ...`. */
static char **runtime_argv(const struct shim *s, const char *verb)
{
        char **v = NULL;
        strv_push(&v, s->opts->runtime_path);
        strv_push(&v, "--root");
        strv_push(&v, s->opts->runtime_root);
        cleanup_free char *lp = log_path(s);
        strv_push(&v, "--log");
        strv_push(&v, lp);
        if (s->spec && s->spec->cgroup_path && strchr(s->spec->cgroup_path, ':'))
                strv_push(&v, "--systemd-cgroup");
        strv_push(&v, verb);
        return v;
}

/* Fork and exec the runtime with stdio (each -1 = /dev/null). */
static pid_t spawn(const struct shim *s, char **argv, const int stdio[3], struct err *e)
{
        bool hide = hide_unified(s);
        shim_fork_window_open();
        pid_t pid = fork();
        if (pid == 0) {
                if (hide && (unshare(CLONE_NEWNS) < 0 ||
                             mount(NULL, "/sys/fs/cgroup", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
                             umount2("/sys/fs/cgroup/unified", MNT_DETACH) < 0))
                        _exit(126);
                int nul = open("/dev/null", O_RDWR | O_CLOEXEC);
                int fds[3];
                for (int i = 0; i < 3; i++) {
                        fds[i] = stdio && stdio[i] >= 0 ? stdio[i] : nul;
                        /* Out of 0..2 first: one may sit where another goes. */
                        fds[i] = fcntl(fds[i], F_DUPFD, 10);
                }
                for (int i = 0; i < 3; i++)
                        if (fds[i] < 0 || dup2(fds[i], i) < 0)
                                _exit(127);
                (void)syscall(SYS_close_range, 3, ~0U, 0);
                sigset_t none;
                sigemptyset(&none);
                (void)sigprocmask(SIG_SETMASK, &none, NULL);
                execv(argv[0], argv);
                _exit(127);
        }
        int saved = errno;
        shim_fork_window_close();
        if (pid < 0)
                err_make(e, saved, "fork %s", argv[0]);
        return pid;
}

static int wait_exit(pid_t pid, const char *what, const struct shim *s, struct err *e)
{
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return err_make(e, errno, "wait for %s", what);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        cleanup_free char *msg = last_log_line(s);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
                return err_set(e, ERR_INTERNAL, "%s: cannot hide the hybrid cgroup v2 mount", what);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return err_set(e, ERR_INTERNAL, "%s: cannot run %s", what, s->opts->runtime_path);
        return err_set(e, ERR_INTERNAL, "%s: %s exited %d: %s", what, s->opts->runtime_path,
                       WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), msg);
}

/* ---------- the console socket (tty) ---------- */

static int recv_fd(int sock)
{
        char data[256];
        struct iovec iov = {.iov_base = data, .iov_len = sizeof(data)};
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u;
        struct msghdr m = {
                .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
        ssize_t n;
        do
                n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        int fd;
                        memcpy(&fd, CMSG_DATA(c), sizeof(fd));
                        return fd;
                }
        errno = EPROTO;
        return -1;
}

/* Wait for the runtime to exit, taking the pty master it sends meanwhile. */
static int wait_with_console(pid_t pid, int lsock, int *master, const struct shim *s, struct err *e)
{
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pfd < 0)
                return err_make(e, errno, "pidfd_open");
        for (;;) {
                struct pollfd p[2] = {{.fd = pfd, .events = POLLIN},
                                      {.fd = *master < 0 ? lsock : -1, .events = POLLIN}};
                int r = poll(p, 2, -1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        close(pfd);
                        return err_make(e, errno, "poll");
                }
                if (p[1].revents & POLLIN) {
                        int c = accept4(lsock, NULL, NULL, SOCK_CLOEXEC);
                        if (c >= 0) {
                                *master = recv_fd(c);
                                close(c);
                        }
                }
                if (p[0].revents & POLLIN)
                        break;
        }
        close(pfd);
        int r = wait_exit(pid, "create", s, e);
        if (r == 0 && *master < 0)
                return err_set(e, ERR_INTERNAL, "create: %s sent no terminal", s->opts->runtime_path);
        return r;
}

static int console_listen(char **dir, char **path, struct err *e)
{
        /* sun_path has 108 bytes: the state dir may be longer. */
        char tmpl[] = "/tmp/corral-console-XXXXXX";
        if (mkdtemp(tmpl) == NULL)
                return err_make(e, errno, "console socket dir");
        *dir = xstrdup(tmpl);
        *path = path_join(tmpl, "s");
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "console socket");
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof(a.sun_path), "%s", *path);
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0) {
                int saved = errno;
                close(fd);
                return err_make(e, saved, "console socket %s", *path);
        }
        return fd;
}

/* ---------- create / start / delete ---------- */

int shim_oci_create(struct shim *s, const int child[3], struct err *e)
{
        const struct rt_spec *spec = s->spec;
        if (rt_rootfs_mount(spec, e) < 0)
                return -1;
        s->oci_mounted = spec->root.lowerdirs != NULL;
        cleanup_free char *json = rt_spec_to_oci(spec, spec->root.path, e);
        if (json == NULL)
                return err_wrap(e, "OCI config");
        cleanup_free char *cfg = path_join(s->opts->bundle, OCI_CONFIG);
        if (file_write_atomic(cfg, json, strlen(json), 0600, e) < 0)
                return -1;
        if (mkdir_p(s->opts->runtime_root, 0700, e) < 0)
                return -1;
        cleanup_free char *pidfile = path_join(s->opts->state_dir, "oci.pid");
        (void)unlink(pidfile);
        cleanup_strv char **argv = runtime_argv(s, "create");
        strv_push(&argv, "--bundle");
        strv_push(&argv, s->opts->bundle);
        strv_push(&argv, "--pid-file");
        strv_push(&argv, pidfile);
        cleanup_free char *cdir = NULL, *cpath = NULL;
        cleanup_close int lsock = -1;
        if (s->opts->tty) {
                lsock = console_listen(&cdir, &cpath, e);
                if (lsock < 0) {
                        if (cdir)
                                (void)rmdir(cdir);
                        return -1;
                }
                strv_push(&argv, "--console-socket");
                strv_push(&argv, cpath);
        }
        strv_push(&argv, s->opts->id);
        pid_t pid = spawn(s, argv, s->opts->tty ? NULL : child, e);
        int r = pid < 0 ? -1 : 0;
        int master = -1;
        if (r == 0)
                r = s->opts->tty ? wait_with_console(pid, lsock, &master, s, e)
                                 : wait_exit(pid, "create", s, e);
        if (cpath) {
                (void)unlink(cpath);
                (void)rmdir(cdir);
        }
        if (r == 0 && master >= 0) {
                (void)fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
                s->pty = master;
                s->out.w.fd = master;
                if (s->opts->stdin_open && (s->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3)) < 0)
                        r = err_make(e, errno, "dup pty master");
        } else if (master >= 0) {
                close(master);
        }
        if (r < 0) {
                shim_oci_delete(s);
                return -1;
        }
        s->oci_created = true;
        cleanup_free char *txt = NULL;
        if (file_read_all(pidfile, &txt, NULL, 64, e) < 0)
                return err_wrap(e, "the runtime's pid file");
        s->pid = (pid_t)atoi(txt);
        if (s->pid <= 0)
                return err_set(e, ERR_INTERNAL, "the runtime's pid file %s holds no pid", pidfile);
        return 0;
}

int shim_oci_start(struct shim *s, struct err *e)
{
        cleanup_strv char **argv = runtime_argv(s, "start");
        strv_push(&argv, s->opts->id);
        pid_t pid = spawn(s, argv, NULL, e);
        if (pid < 0)
                return -1;
        return wait_exit(pid, "start", s, e);
}

int shim_oci_exec(struct shim *s, char *const *args, char *const *env, const struct rt_stdio *stdio,
                  pid_t *pid, char **pidfile, struct err *e)
{
        static unsigned seq;
        cleanup_free char *json = rt_spec_to_oci_process(s->spec, s->spec->root.path, args, env, e);
        if (json == NULL)
                return err_wrap(e, "OCI process");
        unsigned n = ++seq;
        cleanup_free char *name = xasprintf("exec-%u.json", n);
        cleanup_free char *proc = path_join(s->opts->state_dir, name);
        if (file_write_atomic(proc, json, strlen(json), 0600, e) < 0)
                return -1;
        cleanup_free char *pname = xasprintf("exec-%u.pid", n);
        *pidfile = path_join(s->opts->state_dir, pname);
        cleanup_strv char **argv = runtime_argv(s, "exec");
        strv_push(&argv, "--process");
        strv_push(&argv, proc);
        strv_push(&argv, "--pid-file");
        strv_push(&argv, *pidfile);
        strv_push(&argv, s->opts->id);
        const int fds[3] = {stdio->in, stdio->out, stdio->err};
        *pid = spawn(s, argv, fds, e);
        if (*pid < 0) {
                (void)unlink(proc);
                free(steal_ptr(pidfile));
                return -1;
        }
        /* The runtime has read it by the time it runs the command; a
         * leftover goes with the state dir. */
        return 0;
}

void shim_oci_delete(struct shim *s)
{
        if (s->oci_created) {
                cleanup_strv char **argv = runtime_argv(s, "delete");
                strv_push(&argv, "--force");
                strv_push(&argv, s->opts->id);
                cleanup_err struct err e = ERR_INIT;
                pid_t pid = spawn(s, argv, NULL, &e);
                if (pid < 0 || wait_exit(pid, "delete", s, &e) < 0)
                        log_warn("shim", "container %s: %s", s->opts->id, e.msg);
                s->oci_created = false;
        }
        if (s->oci_mounted && s->spec) {
                if (umount2(s->spec->root.path, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
                        log_warn("shim", "unmount rootfs %s: %s", s->spec->root.path, strerror(errno));
                s->oci_mounted = false;
        }
}
