/* corral-agent: ExecRequest. A synchronous exec collects its output into
 * the reply (capped); an interactive one streams its stdio as StreamData
 * named by (container_id, exec_id). Either way the reply goes out once the
 * process was reaped, after its last output. Runs on agent_serve's loop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>

#include "runtime/runtime.h"
#include "vm/agent/agent-internal.h"

#define EXEC_OUTPUT_MAX (4u << 20)

struct execp {
        uint64_t req_id;
        pid_t pid; /* 0 once reaped */
        int out_fd, err_fd;
        struct sbuf out, err;
        bool truncated, timed_out;
        int64_t deadline_ms; /* 0 = none */
        /* Interactive (ExecRequest.interactive): output goes out as it is
         * read; stdin comes from the host through `in`. */
        bool interactive;
        char *cid, *eid;
        struct agent_sink in;
        int pty;            /* the pty master (tty), for resizes; else -1 */
        uint32_t window;    /* flow control: 0 = none */
        uint64_t out_avail; /* output bytes the host still takes (window) */
        /* Reaped while output was held back by the window: the reply waits
         * until what the pipes held at the exit has gone out. */
        bool exited;
        int status;
};

void agent_exec_free(struct execp *x)
{
        agent_close_fd(&x->out_fd);
        agent_close_fd(&x->err_fd);
        agent_close_fd(&x->pty);
        agent_sink_close(&x->in);
        sbuf_free(&x->out);
        sbuf_free(&x->err);
        free(x->cid);
        free(x->eid);
        free(x);
}

static struct execp *exec_find(struct agent *a, const char *cid, const char *eid, size_t *idx)
{
        for (size_t i = 0; i < a->n_execs; i++) {
                struct execp *x = a->execs[i];
                if (x->interactive && strcmp(x->eid, eid) == 0 && strcmp(x->cid, cid ? cid : "") == 0) {
                        if (idx)
                                *idx = i;
                        return x;
                }
        }
        return NULL;
}

/* A pty from the container's own devpts (its /dev/pts/ptmx, reached
 * through /proc/<pid>/root), so that the process finds its terminal under
 * its /dev/pts (tty, ttyname); the slave comes from the master
 * (TIOCGPTPEER), with no path lookup. -1 when the container has none. */
static int container_pty(pid_t pid, int *master, int *slave)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/root/dev/pts/ptmx", (int)pid);
        int m = open(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (m < 0)
                return -1;
        int unlock = 0;
        int s = ioctl(m, TIOCSPTLCK, &unlock) == 0 ? ioctl(m, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC)
                                                   : -1;
        if (s < 0) {
                close(m);
                return -1;
        }
        *master = m;
        *slave = s;
        return 0;
}

/* A pty for an exec (in container pid's devpts when it has one, else the
 * guest's): master non-blocking, both cloexec, first size set. */
static int open_pty(pid_t pid, int *master, int *slave, uint32_t rows, uint32_t cols, struct err *e)
{
        if ((pid <= 0 || container_pty(pid, master, slave) < 0) &&
            openpty(master, slave, NULL, NULL, NULL) < 0)
                return err_make(e, errno, "openpty");
        (void)fcntl(*master, F_SETFD, FD_CLOEXEC);
        (void)fcntl(*slave, F_SETFD, FD_CLOEXEC);
        (void)fcntl(*master, F_SETFL, O_NONBLOCK);
        if (rows && cols) {
                struct winsize ws = {.ws_row = (unsigned short)rows, .ws_col = (unsigned short)cols};
                (void)ioctl(*master, TIOCSWINSZ, &ws);
        }
        return 0;
}

void agent_exec_start(struct agent *a, uint64_t id, const Corral__Agent__V1__ExecRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1}, pty = -1;
        struct ctr *c = NULL;
        /* Before any goto: clang refuses jumps into a cleanup variable's scope. */
        cleanup_strv char **args = NULL;
        cleanup_strv char **env = NULL;
        if (r->n_args == 0 || !r->args[0][0]) {
                err_set(&e, ERR_INVALID, "exec needs args");
                goto fail;
        }
        if (r->container_id && *r->container_id) {
                c = agent_ctr_find(a, r->container_id);
                if (!c || c->state != CTR_RUNNING) {
                        err_set(&e, c ? ERR_PRECONDITION : ERR_NOT_FOUND, "container %s %s", r->container_id,
                                c ? "is not running" : "not found");
                        goto fail;
                }
        }
        if (a->n_execs >= AGENT_MAX_WATCHED) {
                err_set(&e, ERR_EXHAUSTED, "too many execs");
                goto fail;
        }
        if (r->interactive && (!r->exec_id || !*r->exec_id)) {
                err_set(&e, ERR_INVALID, "an interactive exec needs an exec id");
                goto fail;
        }
        if (r->tty && !r->interactive) {
                err_set(&e, ERR_INVALID, "a tty needs an interactive exec");
                goto fail;
        }
        if (r->interactive && exec_find(a, r->container_id, r->exec_id, NULL)) {
                err_set(&e, ERR_EXISTS, "exec %s exists", r->exec_id);
                goto fail;
        }
        if (r->tty) {
                /* The slave is its stdin, stdout and stderr; we keep the master. */
                if (open_pty(c ? c->pid : 0, &po[0], &po[1], r->rows, r->cols, &e) < 0)
                        goto fail;
                pe[1] = fcntl(po[1], F_DUPFD_CLOEXEC, 3);
                pi[0] = fcntl(po[1], F_DUPFD_CLOEXEC, 3);
                pi[1] = fcntl(po[0], F_DUPFD_CLOEXEC, 3);
                pty = fcntl(po[0], F_DUPFD_CLOEXEC, 3);
                if (pe[1] < 0 || pi[0] < 0 || pi[1] < 0 || pty < 0) {
                        err_make(&e, errno, "dup pty");
                        goto fail;
                }
        } else {
                if (agent_make_pipe(po, &e) < 0 || agent_make_pipe(pe, &e) < 0)
                        goto fail;
                if (pipe2(pi, O_CLOEXEC) < 0) {
                        err_make(&e, errno, "pipe");
                        goto fail;
                }
        }
        for (size_t i = 0; i < r->n_args; i++)
                strv_push(&args, r->args[i]);
        for (size_t i = 0; i < r->n_env; i++)
                strv_push(&env, r->env[i]);
        pid_t pid;
        if (c) {
                struct rt_process proc = {0};
                proc.args = args;
                proc.env = env;
                proc.cwd = r->cwd && *r->cwd ? r->cwd : NULL;
                proc.tty = r->tty;
                struct rt_stdio io = {.in = pi[0], .out = po[1], .err = pe[1]};
                if (rt_exec(c->pid, c->spec, &proc, &io, &pid, &e) < 0) {
                        err_wrap(&e, "exec in container %s", c->id);
                        goto fail;
                }
        } else {
                /* In the guest itself: a plain fork and exec. */
                int sync[2];
                if (pipe2(sync, O_CLOEXEC) < 0) {
                        err_make(&e, errno, "pipe");
                        goto fail;
                }
                pid = fork();
                if (pid < 0) {
                        close(sync[0]);
                        close(sync[1]);
                        err_make(&e, errno, "fork");
                        goto fail;
                }
                if (pid == 0) {
                        signal(SIGCHLD, SIG_DFL);
                        setsid();
                        dup2(pi[0], 0);
                        dup2(po[1], 1);
                        dup2(pe[1], 2);
                        if (r->tty)
                                (void)ioctl(0, TIOCSCTTY, 0);
                        if (r->cwd && *r->cwd && chdir(r->cwd) < 0) {
                                int er = errno;
                                (void)!write(sync[1], &er, sizeof(er));
                                _exit(127);
                        }
                        static char *empty[] = {
                                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", NULL};
                        execve(args[0], args, env ? env : empty);
                        int er = errno;
                        (void)!write(sync[1], &er, sizeof(er));
                        _exit(127);
                }
                close(sync[1]);
                int er = 0;
                ssize_t n = read(sync[0], &er, sizeof(er));
                close(sync[0]);
                if (n == sizeof(er)) {
                        waitpid(pid, NULL, 0);
                        err_make(&e, er, "exec %s", args[0]);
                        goto fail;
                }
        }
        /* Only the process holds its ends (a pty's EIO tells us it is gone). */
        agent_close_fd(&pi[0]);
        agent_close_fd(&po[1]);
        agent_close_fd(&pe[1]);
        (void)fcntl(pi[1], F_SETFL, O_NONBLOCK);
        struct execp *x = xzalloc(sizeof(*x));
        x->req_id = id;
        x->pid = pid;
        x->out_fd = po[0];
        x->err_fd = pe[0];
        x->pty = pty;
        x->in.fd = -1;
        if (r->interactive) {
                x->interactive = true;
                x->cid = xstrdup(r->container_id ? r->container_id : "");
                x->eid = xstrdup(r->exec_id);
                x->in.fd = pi[1];
                x->in.tty = r->tty;
                x->in.window = r->window;
                x->window = r->window;
                x->out_avail = r->window;
                pi[1] = -1;
        } else {
                if (r->stdin.len)
                        (void)!write(pi[1], r->stdin.data, r->stdin.len); /* up to a pipe's worth */
                agent_close_fd(&pi[1]);
                x->deadline_ms = r->timeout_ms ? agent_now_ms() + r->timeout_ms : 0;
        }
        a->execs = xrealloc(a->execs, (a->n_execs + 1) * sizeof(*a->execs));
        a->execs[a->n_execs++] = x;
        return;
fail:
        for (int i = 0; i < 2; i++) {
                agent_close_fd(&po[i]);
                agent_close_fd(&pe[i]);
                agent_close_fd(&pi[i]);
        }
        agent_close_fd(&pty);
        agent_reply_err(a, id, &e);
}

enum rd { RD_EMPTY, RD_CLOSED, RD_HELD /* the window is used up: more may be there */ };

static enum rd exec_read(struct agent *a, struct execp *x, int *fd, struct sbuf *b)
{
        char buf[65536];
        int kind = b == &x->out ? CORRAL__AGENT__V1__STREAM_KIND__STDOUT
                                : CORRAL__AGENT__V1__STREAM_KIND__STDERR;
        for (;;) {
                size_t want = sizeof(buf);
                if (x->interactive && x->window) {
                        if (!x->out_avail)
                                return RD_HELD;
                        if (want > x->out_avail)
                                want = (size_t)x->out_avail;
                }
                ssize_t n = read(*fd, buf, want);
                if (n > 0 && x->interactive) {
                        agent_send_stream(a, x->cid, x->eid, kind, buf, (size_t)n, false);
                        if (x->window)
                                x->out_avail -= (uint64_t)n;
                        continue;
                }
                if (n > 0) {
                        size_t room = b->len < EXEC_OUTPUT_MAX ? EXEC_OUTPUT_MAX - b->len : 0;
                        if ((size_t)n > room)
                                x->truncated = true;
                        sbuf_append(b, buf, (size_t)n < room ? (size_t)n : room);
                        continue;
                }
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return RD_EMPTY;
                /* EOF, or EIO from a pty master: no one holds the other end. */
                agent_close_fd(fd);
                if (x->interactive)
                        agent_send_stream(a, x->cid, x->eid, kind, NULL, 0, true);
                return RD_CLOSED;
        }
}

/* The process was reaped: once its output held back by the window has
 * gone out, the reply; x is freed then (true). */
static bool exec_finish(struct agent *a, size_t i)
{
        struct execp *x = a->execs[i];
        enum rd o = x->out_fd >= 0 ? exec_read(a, x, &x->out_fd, &x->out) : RD_CLOSED;
        enum rd r = x->err_fd >= 0 ? exec_read(a, x, &x->err_fd, &x->err) : RD_CLOSED;
        if (o == RD_HELD || r == RD_HELD)
                return false;
        if (x->interactive) {
                /* Children it left behind may hold the pipes: the output ends here. */
                if (x->out_fd >= 0)
                        agent_send_stream(a, x->cid, x->eid, CORRAL__AGENT__V1__STREAM_KIND__STDOUT, NULL, 0,
                                          true);
                if (x->err_fd >= 0)
                        agent_send_stream(a, x->cid, x->eid, CORRAL__AGENT__V1__STREAM_KIND__STDERR, NULL, 0,
                                          true);
        }
        Corral__Agent__V1__ExecResponse er = CORRAL__AGENT__V1__EXEC_RESPONSE__INIT;
        er.exit_code = agent_exit_code(x->status);
        er.stdout.data = (uint8_t *)x->out.buf;
        er.stdout.len = x->out.len;
        er.stderr.data = (uint8_t *)x->err.buf;
        er.stderr.len = x->err.len;
        er.timed_out = x->timed_out;
        er.truncated = x->truncated;
        AgResponse rp = CORRAL__AGENT__V1__RESPONSE__INIT;
        rp.id = x->req_id;
        rp.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_EXEC;
        rp.exec = &er;
        agent_reply(a, &rp);
        agent_exec_free(x);
        a->execs[i] = a->execs[--a->n_execs];
        return true;
}

/* StreamData from the host for an interactive exec. */
void agent_exec_input(struct agent *a, const AgStream *s)
{
        size_t i;
        struct execp *x = exec_find(a, s->container_id, s->exec_id, &i);
        if (!x)
                return;
        if (s->reset) {
                if (x->pid > 0)
                        (void)kill(x->pid, SIGKILL); /* the reply comes when it is reaped */
                agent_sink_close(&x->in);
                if (x->exited)
                        x->out_avail = UINT64_MAX / 2; /* no one reads: let it end */
        }
        if (s->rows && s->cols && x->pty >= 0) {
                struct winsize ws = {.ws_row = (unsigned short)s->rows, .ws_col = (unsigned short)s->cols};
                (void)ioctl(x->pty, TIOCSWINSZ, &ws);
        }
        if (s->data.len || s->eof) {
                if (!agent_sink_put(&x->in, s->data.data, s->data.len, s->eof)) {
                        log_warn("agent", "exec %s: the process does not read its stdin: killed", x->eid);
                        if (x->pid > 0)
                                (void)kill(x->pid, SIGKILL);
                        agent_sink_close(&x->in);
                }
                agent_credit(a, x->cid, x->eid, 0, &x->in.uncredited, x->in.window);
        }
        if (s->credit)
                x->out_avail += s->credit;
        if (x->exited && (s->credit || s->reset))
                (void)exec_finish(a, i);
}

void agent_exec_done(struct agent *a, size_t i, int status)
{
        struct execp *x = a->execs[i];
        x->pid = 0; /* reaped: the number may be reused */
        x->exited = true;
        x->status = status;
        (void)exec_finish(a, i);
}

ssize_t agent_exec_index(struct agent *a, pid_t pid)
{
        for (size_t i = 0; i < a->n_execs; i++)
                if (a->execs[i]->pid == pid)
                        return (ssize_t)i;
        return -1;
}

/* ---------- the poll loop's part ---------- */

size_t agent_exec_poll_fds(struct agent *a, struct pollfd *pfd, int64_t now, int *timeout)
{
        size_t n = 0;
        for (size_t i = 0; i < a->n_execs; i++) {
                struct execp *x = a->execs[i];
                /* An exited one waits for credit, not for its pipes. */
                bool rd = !x->exited && (!x->interactive || !x->window || x->out_avail > 0) &&
                          !(x->interactive && agent_host_busy(a));
                pfd[n++] = (struct pollfd){.fd = rd ? x->out_fd : -1, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = rd ? x->err_fd : -1, .events = POLLIN};
                pfd[n++] =
                        (struct pollfd){.fd = agent_sink_pending(&x->in) ? x->in.fd : -1, .events = POLLOUT};
                if (x->deadline_ms && !x->timed_out && !x->exited) {
                        int64_t l = x->deadline_ms - now;
                        if (l < 0)
                                l = 0;
                        if (*timeout < 0 || l < *timeout)
                                *timeout = (int)l;
                }
        }
        return n;
}

void agent_exec_poll_events(struct agent *a, const struct pollfd *pfd, bool ready)
{
        size_t k = 0;
        for (size_t i = 0; i < a->n_execs; i++, k += 3) {
                struct execp *x = a->execs[i];
                if (ready && pfd[k].fd >= 0 && x->out_fd >= 0 && pfd[k].revents)
                        (void)exec_read(a, x, &x->out_fd, &x->out);
                if (ready && pfd[k + 1].fd >= 0 && x->err_fd >= 0 && pfd[k + 1].revents)
                        (void)exec_read(a, x, &x->err_fd, &x->err);
                if (ready && pfd[k + 2].fd >= 0 && pfd[k + 2].revents) {
                        agent_sink_flush(&x->in);
                        agent_credit(a, x->cid, x->eid, 0, &x->in.uncredited, x->in.window);
                }
                if (x->deadline_ms && !x->timed_out && !x->exited && agent_now_ms() >= x->deadline_ms) {
                        x->timed_out = true;
                        (void)kill(x->pid, SIGKILL);
                }
        }
}

void agent_exec_kill_all(struct agent *a)
{
        for (size_t i = 0; i < a->n_execs; i++) {
                if (a->execs[i]->pid > 0) {
                        (void)kill(a->execs[i]->pid, SIGKILL);
                        (void)waitpid(a->execs[i]->pid, NULL, 0);
                }
                agent_exec_free(a->execs[i]);
        }
        a->n_execs = 0;
}
