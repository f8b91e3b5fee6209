/* exec_sync: run a process in the container with rt_exec (or, for a
 * container an OCI runtime created, `RUNTIME exec`), collect stdout and
 * stderr, reply when it exits. A timeout kills it (SIGKILL) and the reply is
 * ERR_DEADLINE with the output collected so far. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "runtime/runtime.h"
#include "shim/shim-internal.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct exec_pipe {
        struct watch w;
        struct sbuf buf;
        struct exec_proc *owner;
};

struct exec_proc {
        struct exec_proc *next;
        struct ctl_conn *conn; /* NULL once the client left */
        pid_t pid;
        struct exec_pipe out, err;
        struct watch timer;
        int64_t timeout_ms;
        bool timed_out;
        bool truncated;
        char *pidfile; /* OCI runtime: where it wrote the command's pid (pid is the runtime's) */
};

/* SIGKILL the command; under an OCI runtime the command itself too (the
 * runtime is only its parent). */
static void exec_kill(struct exec_proc *x)
{
        if (x->pidfile) {
                cleanup_free char *txt = NULL;
                int inner = file_read_all(x->pidfile, &txt, NULL, 64, NULL) == 0 ? atoi(txt) : 0;
                if (inner > 0)
                        (void)kill(inner, SIGKILL);
        }
        (void)kill(x->pid, SIGKILL);
}

/* false at EOF or error (the pipe is closed then). */
static bool pipe_read(struct shim *s, struct exec_pipe *p)
{
        char buf[8192];
        ssize_t n = read(p->w.fd, buf, sizeof(buf));
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return errno == EINTR;
        if (n <= 0) {
                shim_watch_close(s, &p->w);
                return false;
        }
        size_t take = (size_t)n;
        if (p->buf.len + take > SHIM_EXEC_MAX_OUTPUT) {
                take = SHIM_EXEC_MAX_OUTPUT - p->buf.len;
                p->owner->truncated = true;
        }
        if (take)
                sbuf_append(&p->buf, buf, take);
        return true;
}

static void on_pipe(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        (void)pipe_read(s, container_of(w, struct exec_pipe, w));
}

static void on_timer(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        struct exec_proc *x = container_of(w, struct exec_proc, timer);
        shim_watch_close(s, &x->timer);
        x->timed_out = true;
        exec_kill(x);
}

static void exec_free(struct shim *s, struct exec_proc *x)
{
        for (struct exec_proc **p = &s->execs; *p; p = &(*p)->next) {
                if (*p == x) {
                        *p = x->next;
                        break;
                }
        }
        shim_watch_close(s, &x->out.w);
        shim_watch_close(s, &x->err.w);
        shim_watch_close(s, &x->timer);
        sbuf_free(&x->out.buf);
        sbuf_free(&x->err.buf);
        if (x->pidfile) {
                /* and the process file next to it (oci.c names both) */
                size_t n = strlen(x->pidfile);
                cleanup_free char *json = xasprintf("%.*sjson", (int)(n - 3), x->pidfile);
                (void)unlink(x->pidfile);
                (void)unlink(json);
                free(x->pidfile);
        }
        free(x);
}

static void exec_finish(struct shim *s, struct exec_proc *x, int status)
{
        /* The process is gone, so what it wrote is in the pipes now. A
         * background child may keep them open: read what is there, no more. */
        for (int i = 0; i < 4096 && x->out.w.fd >= 0 && pipe_read(s, &x->out); i++)
                ;
        for (int i = 0; i < 4096 && x->err.w.fd >= 0 && pipe_read(s, &x->err); i++)
                ;
        if (x->conn) {
                int code = WIFSIGNALED(status) ? 128 + WTERMSIG(status) : WEXITSTATUS(status);
                struct sbuf b = {0};
                proto_put_i64(&b, PF_EXIT_CODE, code);
                proto_put(&b, PF_STDOUT, x->out.buf.buf, x->out.buf.len);
                proto_put(&b, PF_STDERR, x->err.buf.buf, x->err.buf.len);
                proto_put_i64(&b, PF_TRUNCATED, x->truncated);
                proto_put_i64(&b, PF_TIMED_OUT, x->timed_out);
                cleanup_err struct err st = ERR_INIT;
                if (x->timed_out)
                        err_set(&st, ERR_DEADLINE, "exec in %s timed out after %lld ms", s->opts->id,
                                (long long)x->timeout_ms);
                struct ctl_conn *c = x->conn;
                c->pending = OP_REPLY;
                x->conn = NULL;
                shim_reply(s, c, &st, &b);
                sbuf_free(&b);
        }
        exec_free(s, x);
        shim_trim_text();
}

bool shim_exec_reaped(struct shim *s, pid_t pid, int status)
{
        for (struct exec_proc *x = s->execs; x; x = x->next) {
                if (x->pid == pid) {
                        exec_finish(s, x, status);
                        return true;
                }
        }
        return false;
}

static int pipe_nb(int p[2], struct err *e)
{
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        int fl = fcntl(p[0], F_GETFL);
        (void)fcntl(p[0], F_SETFL, fl | O_NONBLOCK);
        return 0;
}

int shim_exec_begin(struct shim *s, struct ctl_conn *conn, const struct proto_msg *req, struct err *e)
{
        if (s->status != SHIM_RUNNING)
                return err_set(e, ERR_PRECONDITION, "container %s is not running", s->opts->id);
        cleanup_strv char **args = NULL;
        cleanup_strv char **env = NULL;
        size_t pos = 0;
        uint16_t tag;
        const char *d;
        uint32_t n;
        while (proto_next(req, &pos, &tag, &d, &n)) {
                if (tag == PF_ARG || tag == PF_ENV) {
                        cleanup_free char *v = xstrndup(d, n);
                        strv_push(tag == PF_ARG ? &args : &env, v);
                }
        }
        if (args == NULL || args[0] == NULL || args[0][0] == '\0')
                return err_set(e, ERR_INVALID, "exec in %s: no command", s->opts->id);
        int64_t timeout_ms = 0;
        (void)proto_get_i64(req, PF_TIMEOUT_MS, &timeout_ms);

        int po[2], pe[2];
        if (pipe_nb(po, e) < 0)
                return -1;
        if (pipe_nb(pe, e) < 0) {
                close(po[0]);
                close(po[1]);
                return -1;
        }
        struct rt_process proc;
        memset(&proc, 0, sizeof(proc));
        proc.args = args;
        proc.env = env;
        struct rt_stdio stdio = {.in = -1, .out = po[1], .err = pe[1]};
        pid_t pid = -1;
        cleanup_free char *pidfile = NULL;
        int r;
        if (s->opts->runtime_path) {
                r = shim_oci_exec(s, args, env, &stdio, &pid, &pidfile, e);
        } else {
                shim_fork_window_open();
                r = rt_exec(s->pid, s->spec, &proc, &stdio, &pid, e);
                shim_fork_window_close();
        }
        close(po[1]);
        close(pe[1]);
        if (r < 0) {
                close(po[0]);
                close(pe[0]);
                return err_wrap(e, "container %s", s->opts->id);
        }

        struct exec_proc *x = xzalloc(sizeof(*x));
        x->conn = conn;
        x->pid = pid;
        x->timeout_ms = timeout_ms;
        x->pidfile = steal_ptr(&pidfile);
        x->out.owner = x->err.owner = x;
        x->out.w.fd = po[0];
        x->err.w.fd = pe[0];
        x->out.w.fn = x->err.w.fn = on_pipe;
        x->timer.fd = -1;
        x->timer.fn = on_timer;
        x->next = s->execs;
        s->execs = x;
        (void)shim_watch_add(s, &x->out.w, EPOLLIN);
        (void)shim_watch_add(s, &x->err.w, EPOLLIN);
        if (timeout_ms > 0) {
                x->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
                struct itimerspec its = {
                        .it_value = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000}};
                if (x->timer.fd < 0 || timerfd_settime(x->timer.fd, 0, &its, NULL) < 0 ||
                    shim_watch_add(s, &x->timer, EPOLLIN) < 0) {
                        /* No timer means no timeout: refuse rather than hang. */
                        exec_kill(x);
                        x->conn = NULL;
                        return err_make(e, errno, "exec timer");
                }
        }
        conn->pending = OP_EXEC;
        return 0;
}

void shim_exec_abandon(struct shim *s, struct ctl_conn *conn)
{
        for (struct exec_proc *x = s->execs; x; x = x->next) {
                if (x->conn == conn) {
                        x->conn = NULL;
                        exec_kill(x);
                }
        }
}

void shim_exec_cleanup(struct shim *s)
{
        while (s->execs) {
                exec_kill(s->execs);
                exec_free(s, s->execs);
        }
}
