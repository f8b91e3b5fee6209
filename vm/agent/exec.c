/* corral-agent: ExecRequest. A synchronous exec collects its output into
 * the reply (capped); an interactive one streams its stdio as StreamData
 * named by (container_id, exec_id). Either way the reply goes out once the
 * process was reaped, after its last output. Runs on agent_serve's loop. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>

#include "runtime/runtime.h"
#include "vm/agent/agent-internal.h"

#define EXEC_OUTPUT_MAX (4u << 20)
/* Stdin the process has not read yet; beyond this it is killed. */
#define EXEC_IN_MAX (16u << 20)

struct execp {
        uint64_t req_id;
        pid_t pid;
        int out_fd, err_fd;
        struct sbuf out, err;
        bool truncated, timed_out;
        int64_t deadline_ms; /* 0 = none */
        /* Interactive (ExecRequest.interactive): output goes out as it is
         * read; stdin comes from the host into in (written as the pipe
         * takes it), closed after its eof. */
        bool interactive;
        char *cid, *eid;
        int in_fd;
        struct sbuf in;
        size_t in_off;
        bool in_eof;
};

void agent_exec_free(struct execp *x)
{
        agent_close_fd(&x->out_fd);
        agent_close_fd(&x->err_fd);
        agent_close_fd(&x->in_fd);
        sbuf_free(&x->out);
        sbuf_free(&x->err);
        sbuf_free(&x->in);
        free(x->cid);
        free(x->eid);
        free(x);
}

static struct execp *exec_find(struct agent *a, const char *cid, const char *eid)
{
        for (size_t i = 0; i < a->n_execs; i++) {
                struct execp *x = a->execs[i];
                if (x->interactive && strcmp(x->eid, eid) == 0 && strcmp(x->cid, cid ? cid : "") == 0)
                        return x;
        }
        return NULL;
}

void agent_exec_start(struct agent *a, uint64_t id, const Corral__Agent__V1__ExecRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        int po[2] = {-1, -1}, pe[2] = {-1, -1}, pi[2] = {-1, -1};
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
        if (r->interactive && exec_find(a, r->container_id, r->exec_id)) {
                err_set(&e, ERR_EXISTS, "exec %s exists", r->exec_id);
                goto fail;
        }
        if (agent_make_pipe(po, &e) < 0 || agent_make_pipe(pe, &e) < 0)
                goto fail;
        if (pipe2(pi, O_CLOEXEC) < 0) {
                err_make(&e, errno, "pipe");
                goto fail;
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
        agent_close_fd(&pi[0]);
        agent_close_fd(&po[1]);
        agent_close_fd(&pe[1]);
        (void)fcntl(pi[1], F_SETFL, O_NONBLOCK);
        struct execp *x = xzalloc(sizeof(*x));
        x->req_id = id;
        x->pid = pid;
        x->out_fd = po[0];
        x->err_fd = pe[0];
        x->in_fd = -1;
        if (r->interactive) {
                x->interactive = true;
                x->cid = xstrdup(r->container_id ? r->container_id : "");
                x->eid = xstrdup(r->exec_id);
                x->in_fd = pi[1];
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
        agent_reply_err(a, id, &e);
}

static void exec_read(struct agent *a, struct execp *x, int *fd, struct sbuf *b)
{
        char buf[65536];
        int kind = b == &x->out ? CORRAL__AGENT__V1__STREAM_KIND__STDOUT
                                : CORRAL__AGENT__V1__STREAM_KIND__STDERR;
        for (;;) {
                ssize_t n = read(*fd, buf, sizeof(buf));
                if (n > 0 && x->interactive) {
                        agent_send_stream(a, x->cid, x->eid, kind, buf, (size_t)n, false);
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
                if (n == 0 || errno != EAGAIN) {
                        agent_close_fd(fd);
                        if (x->interactive)
                                agent_send_stream(a, x->cid, x->eid, kind, NULL, 0, true);
                }
                return;
        }
}

/* Write the host's stdin bytes the pipe takes; close it after the eof (or
 * when the process stopped reading for good). */
static void exec_write_in(struct execp *x)
{
        while (x->in_fd >= 0 && x->in_off < x->in.len) {
                ssize_t n = write(x->in_fd, x->in.buf + x->in_off, x->in.len - x->in_off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return;
                if (n <= 0) {
                        agent_close_fd(&x->in_fd); /* EPIPE: it closed its stdin; the rest is dropped */
                        break;
                }
                x->in_off += (size_t)n;
        }
        x->in.len = x->in_off = 0;
        if (x->in_eof)
                agent_close_fd(&x->in_fd);
}

/* StreamData from the host for an interactive exec. */
void agent_exec_input(struct agent *a, const AgStream *s)
{
        struct execp *x = exec_find(a, s->container_id, s->exec_id);
        if (!x)
                return;
        if (s->reset) {
                (void)kill(x->pid, SIGKILL); /* the reply comes when it is reaped */
                agent_close_fd(&x->in_fd);
                return;
        }
        if (x->in_fd < 0 || x->in_eof)
                return;
        if (s->data.len) {
                if (x->in.len + s->data.len > EXEC_IN_MAX) {
                        log_warn("agent", "exec %s: the process does not read its stdin: killed", x->eid);
                        (void)kill(x->pid, SIGKILL);
                        agent_close_fd(&x->in_fd);
                        return;
                }
                sbuf_append(&x->in, s->data.data, s->data.len);
        }
        if (s->eof)
                x->in_eof = true;
        exec_write_in(x);
}

void agent_exec_done(struct agent *a, size_t i, int status)
{
        struct execp *x = a->execs[i];
        if (x->out_fd >= 0)
                exec_read(a, x, &x->out_fd, &x->out);
        if (x->err_fd >= 0)
                exec_read(a, x, &x->err_fd, &x->err);
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
        er.exit_code = agent_exit_code(status);
        er.stdout.data = (uint8_t *)x->out.buf;
        er.stdout.len = x->out.len;
        er.stderr.data = (uint8_t *)x->err.buf;
        er.stderr.len = x->err.len;
        er.timed_out = x->timed_out;
        er.truncated = x->truncated;
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = x->req_id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_EXEC;
        r.exec = &er;
        agent_reply(a, &r);
        agent_exec_free(x);
        a->execs[i] = a->execs[--a->n_execs];
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
                pfd[n++] = (struct pollfd){.fd = x->out_fd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = x->err_fd, .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = x->in_off < x->in.len ? x->in_fd : -1, .events = POLLOUT};
                if (x->deadline_ms && !x->timed_out) {
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
                if (ready && x->out_fd >= 0 && pfd[k].revents)
                        exec_read(a, x, &x->out_fd, &x->out);
                if (ready && x->err_fd >= 0 && pfd[k + 1].revents)
                        exec_read(a, x, &x->err_fd, &x->err);
                if (ready && x->in_fd >= 0 && pfd[k + 2].fd >= 0 && pfd[k + 2].revents)
                        exec_write_in(x);
                if (x->deadline_ms && !x->timed_out && agent_now_ms() >= x->deadline_ms) {
                        x->timed_out = true;
                        (void)kill(x->pid, SIGKILL);
                }
        }
}

void agent_exec_kill_all(struct agent *a)
{
        for (size_t i = 0; i < a->n_execs; i++) {
                (void)kill(a->execs[i]->pid, SIGKILL);
                (void)waitpid(a->execs[i]->pid, NULL, 0);
                agent_exec_free(a->execs[i]);
        }
        a->n_execs = 0;
}
