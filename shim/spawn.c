/* shim_spawn: start corral-shim outside the caller's process tree.
 *
 * clone -> setsid -> clone again -> exec corral-shim. The middle process
 * exits once the shim has exec'd, so the shim is reparented (to init or the
 * nearest subreaper) and lives on when corrald is killed. The shim writes
 * its pid into the report pipe before exec, then its report (container pid,
 * or the create error) into the same pipe.
 *
 * Both children are vfork-like (CLONE_VM | CLONE_VFORK): they run on our
 * memory while the calling thread is stopped, until the shim execs. A
 * fork() of the multi-threaded daemon copied its page tables twice per
 * container and left every other thread taking copy-on-write faults until
 * the exec: with pods started in parallel that was the largest part of
 * corrald's CPU time. So the children make system calls only, on their
 * own stacks, with every signal blocked until the shim has reset the
 * handlers it inherited. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "runtime/runtime.h"
#include "shim/proto-internal.h"
#include "shim/shim.h"

#define REPORT_FD 3

static char **build_argv(const struct shim_opts *o)
{
        char **v = NULL;
        strv_push(&v, o->shim_path);
        if (o->mode)
                strv_push(&v, o->mode);
        strv_push(&v, "--id");
        strv_push(&v, o->id);
        strv_push(&v, "--bundle");
        strv_push(&v, o->bundle);
        strv_push(&v, "--state");
        strv_push(&v, o->state_dir);
        if (o->log_path && *o->log_path) {
                strv_push(&v, "--log");
                strv_push(&v, o->log_path);
        }
        if (o->stdin_open)
                strv_push(&v, "--stdin");
        if (o->stdin_once)
                strv_push(&v, "--stdin-once");
        if (o->tty)
                strv_push(&v, "--tty");
        if (o->runtime_path && *o->runtime_path) {
                strv_push(&v, "--runtime");
                strv_push(&v, o->runtime_path);
                strv_push(&v, "--runtime-root");
                strv_push(&v, o->runtime_root);
        }
        /* Our cgroup v1 table: the shim need not read mountinfo again. */
        cleanup_free char *cg = rt_cgroup_v1_layout();
        if (*cg) {
                strv_push(&v, "--cgroup-v1");
                strv_push(&v, cg);
        }
        strv_push(&v, "--report-fd");
        strv_push(&v, "3");
        return v;
}

/* What the two children need, prepared before the clone (they may not
 * allocate). */
struct spawn_job {
        int devnull, wfd;
        char **argv;
        char *failmsg;
        size_t faillen;
        char *shim_stack; /* the top of the grandchild's stack */
};

/* The grandchild: becomes corral-shim. System calls only. */
static int __attribute__((noreturn)) shim_child(void *arg)
{
        const struct spawn_job *j = arg;
        /* Our pid first, from us, so it always precedes our report. */
        int32_t v = (int32_t)getpid();
        if (write(j->wfd, &v, sizeof(v)) != (ssize_t)sizeof(v))
                _exit(127);
        /* Either fd may sit on 0..3 (a caller with closed stdio): move both
         * out of the way before laying out 0, 1, 2 and 3. */
        int devnull = fcntl(j->devnull, F_DUPFD, 10);
        int wfd = fcntl(j->wfd, F_DUPFD, 10);
        if (devnull < 0 || wfd < 0)
                _exit(127);
        if (dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0 || dup2(devnull, 2) < 0 || dup2(wfd, REPORT_FD) < 0)
                _exit(127);
        /* Nothing of corrald's leaks into the shim (and so the container). */
        if (syscall(SYS_close_range, REPORT_FD + 1, ~0U, 0) < 0)
                for (int fd = REPORT_FD + 1; fd < 1024; fd++)
                        (void)close(fd);
        /* Dispositions first (an ignored one would survive the exec), then
         * the mask: a handler of corrald's must never run here, on its
         * memory. */
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        for (int sig = 1; sig < NSIG; sig++)
                (void)sigaction(sig, &dfl, NULL);
        sigset_t none;
        sigemptyset(&none);
        (void)sigprocmask(SIG_SETMASK, &none, NULL);
        if (chdir("/") < 0)
                _exit(127);
        execv(j->argv[0], j->argv);
        int err = errno;
        memcpy(j->failmsg + offsetof(struct proto_hdr, errnum), &err, sizeof(err));
        (void)!write(REPORT_FD, j->failmsg, j->faillen);
        _exit(127);
}

/* The middle child: a session of its own for the shim, which it starts and
 * leaves. It returns (exits) once the shim has exec'd or died. */
static int __attribute__((noreturn)) mid_child(void *arg)
{
        struct spawn_job *j = arg;
        if (setsid() < 0)
                _exit(126);
        pid_t shim = clone(shim_child, j->shim_stack, CLONE_VM | CLONE_VFORK | SIGCHLD, j);
        _exit(shim < 0 ? 126 : 0);
}

/* Whole message (pid + header + body) in `b`? */
static bool report_complete(const struct sbuf *b)
{
        struct proto_hdr h;
        size_t pre = sizeof(int32_t) + sizeof(h);
        if (b->len < pre)
                return false;
        memcpy(&h, b->buf + sizeof(int32_t), sizeof(h));
        return b->len >= pre + h.len;
}

/* Read the pid and one report. Not to EOF: the created container (not yet
 * exec'd) holds a copy of the pipe until it starts. */
static int read_report(int fd, int64_t timeout_ms, struct sbuf *out, struct err *e)
{
        int64_t deadline = time_mono_ns() + timeout_ms * 1000000;
        char buf[4096];
        for (;;) {
                int64_t left = deadline - time_mono_ns();
                if (left <= 0)
                        return err_set(e, ERR_DEADLINE, "corral-shim did not report within %lld ms",
                                       (long long)timeout_ms);
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, (int)((left + 999999) / 1000000));
                if (r < 0 && errno != EINTR)
                        return err_make(e, errno, "poll report pipe");
                if (r <= 0)
                        continue;
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return err_make(e, errno, "read report pipe");
                }
                if (n == 0)
                        return 0;
                sbuf_append(out, buf, (size_t)n);
                if (report_complete(out))
                        return 0;
                if (out->len > (1u << 20))
                        return err_set(e, ERR_INTERNAL, "corral-shim report too long");
        }
}

static int parse_report(const struct shim_opts *o, const char *buf, size_t len, struct shim_info *out,
                        struct err *e)
{
        if (len == 0)
                return err_set(e, ERR_INTERNAL, "corral-shim %s exited without reporting", o->shim_path);
        struct proto_msg m;
        if (proto_parse(buf, len, &m, e) < 0)
                return err_wrap(e, "corral-shim report");
        int r = proto_reply_status(&m, e);
        if (r < 0 && e && e->errnum && m.hdr.op == OP_REPORT) {
                /* The exec failure message is built before fork, without strerror. */
                const char *d;
                uint32_t n;
                if (proto_get(&m, PF_SHIM_PID, &d, &n))
                        err_make(e, e->errnum, "exec %s", o->shim_path);
        }
        if (r == 0) {
                int64_t pid = 0;
                (void)proto_get_i64(&m, PF_PID, &pid);
                out->pid = (pid_t)pid;
                if (pid <= 0)
                        r = err_set(e, ERR_INTERNAL, "corral-shim reported no container pid");
        }
        proto_msg_clear(&m);
        return r;
}

int shim_spawn(const struct shim_opts *o, struct shim_info *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        if (!o->id || !o->bundle || !o->state_dir || !o->shim_path)
                return err_set(e, ERR_INVALID,
                               "shim_spawn: id, bundle, state_dir and shim_path are required");
        if (mkdir_p(o->state_dir, 0700, e) < 0)
                return -1;
        /* A stale exit file from an earlier attempt would lie about this one. */
        cleanup_free char *exit_path = path_join(o->state_dir, SHIM_EXIT_FILE);
        if (unlink(exit_path) < 0 && errno != ENOENT)
                return err_make(e, errno, "remove %s", exit_path);

        cleanup_strv char **argv = build_argv(o);
        /* The exec-failure report, ready before fork (the child may not malloc).
         * PF_SHIM_PID marks it as coming from the exec step. */
        struct sbuf failmsg = {0}, fbody = {0};
        proto_put_i64(&fbody, PF_SHIM_PID, 0);
        struct err ferr = {ERR_INTERNAL, 0, (char *)"exec corral-shim failed"};
        proto_serialize(&failmsg, OP_REPORT, &ferr, &fbody);
        sbuf_free(&fbody);

        cleanup_close int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) {
                sbuf_free(&failmsg);
                return err_make(e, errno, "open /dev/null");
        }
        int p[2];
        if (pipe2(p, O_CLOEXEC) < 0) {
                sbuf_free(&failmsg);
                return err_make(e, errno, "pipe");
        }
        cleanup_close int rfd = p[0];
        int wfd = p[1];

        enum { STACK = 64 << 10 };
        cleanup_free char *stacks = xmalloc(2 * STACK);
        struct spawn_job job = {.devnull = devnull,
                                .wfd = wfd,
                                .argv = argv,
                                .failmsg = failmsg.buf,
                                .faillen = failmsg.len,
                                .shim_stack = stacks + 2 * STACK};
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        /* CLONE_VFORK: back here once the shim has exec'd (or failed). */
        pid_t mid = clone(mid_child, stacks + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &job);
        int saved = errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        close(wfd);
        sbuf_free(&failmsg);
        if (mid < 0)
                return err_make(e, saved, "clone");
        int status = 0;
        while (waitpid(mid, &status, 0) < 0) {
                if (errno == ECHILD) { /* the caller ignores SIGCHLD: reaped already */
                        status = 0;
                        break;
                }
                if (errno != EINTR)
                        break;
        }
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return err_set(e, ERR_INTERNAL, "spawn corral-shim: setsid or clone failed (status %d)",
                               status);

        struct sbuf rep = {0};
        int64_t timeout = o->timeout_ms > 0 ? o->timeout_ms : 60000;
        int r = read_report(rfd, timeout, &rep, e);
        int32_t shim_pid = 0;
        if (rep.len >= sizeof(shim_pid))
                memcpy(&shim_pid, rep.buf, sizeof(shim_pid));
        if (r == 0) {
                r = parse_report(o, rep.len >= 4 ? rep.buf + 4 : "", rep.len >= 4 ? rep.len - 4 : 0, out, e);
        } else if (shim_pid > 0) {
                /* Wedged: it is not ours to wait for, but it must not linger. */
                (void)kill(shim_pid, SIGKILL);
        }
        sbuf_free(&rep);
        if (r < 0)
                return err_wrap(e, "start shim for %s", o->id);
        out->shim_pid = shim_pid;
        return 0;
}
