/* corral-agent's protocol loop: one poll loop over the host stream, a
 * SIGCHLD self-pipe, and the stdout/stderr pipes of every container and
 * exec. Requests that finish later (Exec, Wait) are answered when their
 * process is done; container output goes out as StreamData frames as it is
 * read. Single-threaded, as runtime/ wants its callers. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>

#include "runtime/runtime.h"
#include "vm/agent/agent-internal.h"

#define EXEC_OUTPUT_MAX (4u << 20)
#define MAX_WATCHED     1024

enum ctr_state { CTR_CREATED, CTR_RUNNING, CTR_EXITED };

struct ctr {
        char *id;
        struct rt_spec *spec;
        struct rt_container *rc;
        pid_t pid;
        int out_fd, err_fd; /* read ends of its stdout/stderr pipes */
        enum ctr_state state;
        int status;
        int64_t finished_ns;
        uint64_t *waiters; /* request ids of pending Waits */
        size_t n_waiters;
};

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

/* Stdin the process has not read yet; beyond this it is killed. */
#define EXEC_IN_MAX (16u << 20)

/* A port-forward connection: a TCP socket to the guest's loopback. */
#define PF_BUF_MAX (16u << 20)
struct pfconn {
        uint64_t id;
        int fd;
        struct sbuf wbuf; /* host -> socket, not yet written */
        size_t woff;      /* written part of wbuf */
        bool rd_eof;      /* the socket said EOF (sent on to the host) */
        bool wr_eof;      /* the host said EOF: shut down writing once wbuf is out */
        bool wr_shut;
};

struct agent {
        int fd;
        bool reconnect, is_pid1;
        bool host_away;
        int64_t away_until_ms;
        struct frame_reader rd;
        struct ctr **ctrs;
        size_t n_ctrs;
        struct execp **execs;
        size_t n_execs;
        struct pfconn **pfs;
        size_t n_pfs;
        bool shutdown;
};

static int sigchld_pipe[2] = {-1, -1};

static void on_sigchld(int sig)
{
        (void)sig;
        int saved = errno;
        (void)!write(sigchld_pipe[1], "c", 1);
        errno = saved;
}

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

static void send_frame(struct agent *a, AgFrame *f)
{
        cleanup_err struct err e = ERR_INIT;
        if (a->host_away)
                return;
        /* A host that stops reading must not wedge pid 1 forever. */
        if (frame_write(a->fd, f, 10000, &e) < 0)
                log_warn("agent", "send frame failed: %s", e.msg);
}

static void reply(struct agent *a, AgResponse *r)
{
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_RESPONSE;
        f.response = r;
        send_frame(a, &f);
}

static void reply_err(struct agent *a, uint64_t id, const struct err *e)
{
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.error_kind = e && e->msg ? (int32_t)(e->kind ? e->kind : ERR_INTERNAL) : 0;
        r.error = e && e->msg ? e->msg : "";
        reply(a, &r);
}

static void send_stream(struct agent *a, const char *ctr, const char *exec, int kind, const void *data,
                        size_t n, bool eof)
{
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = (char *)ctr;
        s.exec_id = (char *)exec;
        s.kind = kind;
        s.data.data = (uint8_t *)data;
        s.data.len = n;
        s.eof = eof;
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_STREAM;
        f.stream = &s;
        send_frame(a, &f);
}

static int exit_code(int status)
{
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static struct ctr *ctr_find(struct agent *a, const char *id)
{
        for (size_t i = 0; i < a->n_ctrs; i++)
                if (id && strcmp(a->ctrs[i]->id, id) == 0)
                        return a->ctrs[i];
        return NULL;
}

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* A pipe whose read end is ours (non-blocking, cloexec). */
static int make_pipe(int p[2], struct err *e)
{
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        (void)fcntl(p[0], F_SETFL, O_NONBLOCK);
        return 0;
}

/* ---------- containers ---------- */

static void ctr_free(struct ctr *c)
{
        if (!c)
                return;
        rt_container_free(c->rc); /* before start: kills and reaps the child */
        if (c->spec && c->spec->cgroup_path && c->state != CTR_CREATED)
                (void)rt_cgroup_remove(c->spec->cgroup_path, 1000, NULL);
        rt_spec_free(c->spec);
        close_fd(&c->out_fd);
        close_fd(&c->err_fd);
        free(c->waiters);
        free(c->id);
        free(c);
}

/* Prefix a relative path inside the share; refuse ".." escapes. */
static char *share_path(const char *tag, const char *p, struct err *e)
{
        if (!p)
                return NULL;
        if (strstr(p, "..")) {
                err_set(e, ERR_INVALID, "path %s leaves share %s", p, tag);
                return NULL;
        }
        return xasprintf("%s/%s/%s", AGENT_SHARES_DIR, tag, p[0] == '/' ? p + 1 : p);
}

static bool name_ok(const char *s)
{
        return s && *s && strlen(s) < 128 && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

static void do_create(struct agent *a, uint64_t id, const Corral__Agent__V1__CreateContainerRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        if (!name_ok(r->container_id)) {
                err_set(&e, ERR_INVALID, "bad container id");
                goto fail;
        }
        if (ctr_find(a, r->container_id)) {
                err_set(&e, ERR_EXISTS, "container %s already exists", r->container_id);
                goto fail;
        }
        if (a->n_ctrs >= MAX_WATCHED) {
                err_set(&e, ERR_EXHAUSTED, "too many containers");
                goto fail;
        }
        struct rt_spec *spec = rt_spec_from_json(r->spec_json, strlen(r->spec_json), &e);
        if (!spec)
                goto fail;
        if (r->share_tag && *r->share_tag) {
                if (!name_ok(r->share_tag)) {
                        rt_spec_free(spec);
                        err_set(&e, ERR_INVALID, "bad share tag");
                        goto fail;
                }
                char *p = share_path(r->share_tag, spec->root.path ? spec->root.path : "", &e);
                if (!p) {
                        rt_spec_free(spec);
                        goto fail;
                }
                free(spec->root.path);
                spec->root.path = p;
        }
        struct ctr *c = xzalloc(sizeof(*c));
        c->id = xstrdup(r->container_id);
        c->spec = spec;
        c->out_fd = c->err_fd = -1;
        int po[2], pe[2];
        if (make_pipe(po, &e) < 0) {
                ctr_free(c);
                goto fail;
        }
        if (make_pipe(pe, &e) < 0) {
                close(po[0]);
                close(po[1]);
                ctr_free(c);
                goto fail;
        }
        c->out_fd = po[0];
        c->err_fd = pe[0];
        struct rt_stdio io = {.in = -1, .out = po[1], .err = pe[1]};
        int ret = rt_container_create(spec, &io, &c->rc, &e);
        close(po[1]);
        close(pe[1]);
        if (ret < 0) {
                err_wrap(&e, "create container %s", r->container_id);
                ctr_free(c);
                goto fail;
        }
        c->pid = rt_container_pid(c->rc);
        c->state = CTR_CREATED;
        a->ctrs = xrealloc(a->ctrs, (a->n_ctrs + 1) * sizeof(*a->ctrs));
        a->ctrs[a->n_ctrs++] = c;
fail:
        reply_err(a, id, &e);
}

static void do_start(struct agent *a, uint64_t id, const char *cid)
{
        cleanup_err struct err e = ERR_INIT;
        struct ctr *c = ctr_find(a, cid);
        if (!c)
                err_set(&e, ERR_NOT_FOUND, "container %s not found", cid);
        else if (c->state != CTR_CREATED)
                err_set(&e, ERR_PRECONDITION, "container %s is not in state created", cid);
        else if (rt_container_start(c->rc, &e) < 0)
                err_wrap(&e, "start container %s", cid);
        else
                c->state = CTR_RUNNING;
        reply_err(a, id, &e);
}

static void answer_wait(struct agent *a, uint64_t id, struct ctr *c)
{
        Corral__Agent__V1__WaitResponse w = CORRAL__AGENT__V1__WAIT_RESPONSE__INIT;
        w.exit_code = exit_code(c->status);
        w.signal = WIFSIGNALED(c->status) ? WTERMSIG(c->status) : 0;
        w.finished_ns = c->finished_ns;
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_WAIT;
        r.wait = &w;
        reply(a, &r);
}

static void do_wait(struct agent *a, uint64_t id, const char *cid)
{
        struct ctr *c = ctr_find(a, cid);
        if (!c) {
                struct err e = ERR_INIT;
                err_set(&e, ERR_NOT_FOUND, "container %s not found", cid);
                reply_err(a, id, &e);
                err_clear(&e);
                return;
        }
        if (c->state == CTR_EXITED) {
                answer_wait(a, id, c);
                return;
        }
        c->waiters = xrealloc(c->waiters, (c->n_waiters + 1) * sizeof(*c->waiters));
        c->waiters[c->n_waiters++] = id;
}

static void do_signal(struct agent *a, uint64_t id, const Corral__Agent__V1__SignalRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        struct ctr *c = ctr_find(a, r->container_id);
        if (!c)
                err_set(&e, ERR_NOT_FOUND, "container %s not found", r->container_id);
        else if (r->signal <= 0 || r->signal >= 65)
                err_set(&e, ERR_INVALID, "bad signal %d", r->signal);
        else if (c->state == CTR_EXITED)
                err_set(&e, ERR_PRECONDITION, "container %s has exited", r->container_id);
        else if (kill(c->pid, r->signal) < 0 && errno != ESRCH)
                err_make(&e, errno, "kill container %s", r->container_id);
        reply_err(a, id, &e);
}

static void do_remove(struct agent *a, uint64_t id, const char *cid)
{
        cleanup_err struct err e = ERR_INIT;
        for (size_t i = 0; i < a->n_ctrs; i++) {
                struct ctr *c = a->ctrs[i];
                if (strcmp(c->id, cid) != 0)
                        continue;
                if (c->state == CTR_RUNNING) {
                        err_set(&e, ERR_PRECONDITION, "container %s is running", cid);
                } else {
                        ctr_free(c);
                        a->ctrs[i] = a->ctrs[--a->n_ctrs];
                }
                reply_err(a, id, &e);
                return;
        }
        reply_err(a, id, NULL); /* already gone: idempotent */
}

/* ---------- exec ---------- */

static void exec_free(struct execp *x)
{
        close_fd(&x->out_fd);
        close_fd(&x->err_fd);
        close_fd(&x->in_fd);
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

static void do_exec(struct agent *a, uint64_t id, const Corral__Agent__V1__ExecRequest *r)
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
                c = ctr_find(a, r->container_id);
                if (!c || c->state != CTR_RUNNING) {
                        err_set(&e, c ? ERR_PRECONDITION : ERR_NOT_FOUND, "container %s %s", r->container_id,
                                c ? "is not running" : "not found");
                        goto fail;
                }
        }
        if (a->n_execs >= MAX_WATCHED) {
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
        if (make_pipe(po, &e) < 0 || make_pipe(pe, &e) < 0)
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
        close_fd(&pi[0]);
        close_fd(&po[1]);
        close_fd(&pe[1]);
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
                close_fd(&pi[1]);
                x->deadline_ms = r->timeout_ms ? now_ms() + r->timeout_ms : 0;
        }
        a->execs = xrealloc(a->execs, (a->n_execs + 1) * sizeof(*a->execs));
        a->execs[a->n_execs++] = x;
        return;
fail:
        for (int i = 0; i < 2; i++) {
                close_fd(&po[i]);
                close_fd(&pe[i]);
                close_fd(&pi[i]);
        }
        reply_err(a, id, &e);
}

static void exec_read(struct agent *a, struct execp *x, int *fd, struct sbuf *b)
{
        char buf[65536];
        int kind = b == &x->out ? CORRAL__AGENT__V1__STREAM_KIND__STDOUT
                                : CORRAL__AGENT__V1__STREAM_KIND__STDERR;
        for (;;) {
                ssize_t n = read(*fd, buf, sizeof(buf));
                if (n > 0 && x->interactive) {
                        send_stream(a, x->cid, x->eid, kind, buf, (size_t)n, false);
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
                        close_fd(fd);
                        if (x->interactive)
                                send_stream(a, x->cid, x->eid, kind, NULL, 0, true);
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
                        close_fd(&x->in_fd); /* EPIPE: it closed its stdin; the rest is dropped */
                        break;
                }
                x->in_off += (size_t)n;
        }
        x->in.len = x->in_off = 0;
        if (x->in_eof)
                close_fd(&x->in_fd);
}

/* StreamData from the host for an interactive exec. */
static void exec_input(struct agent *a, const AgStream *s)
{
        struct execp *x = exec_find(a, s->container_id, s->exec_id);
        if (!x)
                return;
        if (s->reset) {
                (void)kill(x->pid, SIGKILL); /* the reply comes when it is reaped */
                close_fd(&x->in_fd);
                return;
        }
        if (x->in_fd < 0 || x->in_eof)
                return;
        if (s->data.len) {
                if (x->in.len + s->data.len > EXEC_IN_MAX) {
                        log_warn("agent", "exec %s: the process does not read its stdin: killed", x->eid);
                        (void)kill(x->pid, SIGKILL);
                        close_fd(&x->in_fd);
                        return;
                }
                sbuf_append(&x->in, s->data.data, s->data.len);
        }
        if (s->eof)
                x->in_eof = true;
        exec_write_in(x);
}

static void exec_done(struct agent *a, size_t i, int status)
{
        struct execp *x = a->execs[i];
        if (x->out_fd >= 0)
                exec_read(a, x, &x->out_fd, &x->out);
        if (x->err_fd >= 0)
                exec_read(a, x, &x->err_fd, &x->err);
        if (x->interactive) {
                /* Children it left behind may hold the pipes: the output ends here. */
                if (x->out_fd >= 0)
                        send_stream(a, x->cid, x->eid, CORRAL__AGENT__V1__STREAM_KIND__STDOUT, NULL, 0, true);
                if (x->err_fd >= 0)
                        send_stream(a, x->cid, x->eid, CORRAL__AGENT__V1__STREAM_KIND__STDERR, NULL, 0, true);
        }
        Corral__Agent__V1__ExecResponse er = CORRAL__AGENT__V1__EXEC_RESPONSE__INIT;
        er.exit_code = exit_code(status);
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
        reply(a, &r);
        exec_free(x);
        a->execs[i] = a->execs[--a->n_execs];
}

/* ---------- container output and exits ---------- */

static void ctr_read(struct agent *a, struct ctr *c, int *fd, int kind)
{
        char buf[65536];
        for (;;) {
                ssize_t n = read(*fd, buf, sizeof(buf));
                if (n > 0) {
                        send_stream(a, c->id, "", kind, buf, (size_t)n, false);
                        continue;
                }
                if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                        close_fd(fd);
                        send_stream(a, c->id, "", kind, NULL, 0, true);
                }
                return;
        }
}

static void ctr_exited(struct agent *a, struct ctr *c, int status)
{
        /* The writer is gone: what it wrote is in the pipe now. Daemons it
         * left behind may keep the pipe open; they are not waited for. */
        if (c->out_fd >= 0)
                ctr_read(a, c, &c->out_fd, CORRAL__AGENT__V1__STREAM_KIND__STDOUT);
        if (c->err_fd >= 0)
                ctr_read(a, c, &c->err_fd, CORRAL__AGENT__V1__STREAM_KIND__STDERR);
        c->state = CTR_EXITED;
        c->status = status;
        c->finished_ns = time_now_ns();
        for (size_t i = 0; i < c->n_waiters; i++)
                answer_wait(a, c->waiters[i], c);
        c->n_waiters = 0;
}

static void reap(struct agent *a)
{
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
                for (size_t i = 0; i < a->n_execs; i++)
                        if (a->execs[i]->pid == pid) {
                                exec_done(a, i, status);
                                goto next;
                        }
                for (size_t i = 0; i < a->n_ctrs; i++)
                        if (a->ctrs[i]->pid == pid && a->ctrs[i]->state != CTR_EXITED) {
                                if (a->ctrs[i]->state == CTR_CREATED) {
                                        /* rt_container_free must not kill a reused pid. */
                                        rt_container_free(a->ctrs[i]->rc);
                                        a->ctrs[i]->rc = NULL;
                                }
                                ctr_exited(a, a->ctrs[i], status);
                                break;
                        }
        next:;
        }
}

/* ---------- port-forward ---------- */

static void send_conn(struct agent *a, uint64_t id, const void *data, size_t n, bool eof, bool reset)
{
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = "";
        s.exec_id = "";
        s.conn_id = id;
        s.data.data = (uint8_t *)data;
        s.data.len = n;
        s.eof = eof;
        s.reset = reset;
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_STREAM;
        f.stream = &s;
        send_frame(a, &f);
}

static struct pfconn *pf_find(struct agent *a, uint64_t id, size_t *idx)
{
        for (size_t i = 0; i < a->n_pfs; i++)
                if (a->pfs[i]->id == id) {
                        if (idx)
                                *idx = i;
                        return a->pfs[i];
                }
        return NULL;
}

static void pf_free(struct agent *a, struct pfconn *p)
{
        size_t i;
        if (pf_find(a, p->id, &i) == p)
                a->pfs[i] = a->pfs[--a->n_pfs];
        close_fd(&p->fd);
        sbuf_free(&p->wbuf);
        free(p);
}

/* Done both ways: nothing more to read nor write. */
static void pf_maybe_done(struct agent *a, struct pfconn *p)
{
        if (p->rd_eof && p->wr_shut)
                pf_free(a, p);
}

static void pf_reset(struct agent *a, struct pfconn *p)
{
        send_conn(a, p->id, NULL, 0, false, true);
        pf_free(a, p);
}

/* Write what the host sent; false when the connection was reset. */
static bool pf_flush(struct agent *a, struct pfconn *p)
{
        while (p->woff < p->wbuf.len) {
                ssize_t n = send(p->fd, p->wbuf.buf + p->woff, p->wbuf.len - p->woff, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                if (n <= 0) {
                        pf_reset(a, p);
                        return false;
                }
                p->woff += (size_t)n;
        }
        p->wbuf.len = p->woff = 0;
        if (p->wr_eof && !p->wr_shut) {
                (void)shutdown(p->fd, SHUT_WR);
                p->wr_shut = true;
        }
        return true;
}

static void pf_read(struct agent *a, struct pfconn *p)
{
        char buf[65536];
        ssize_t n = recv(p->fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n < 0) {
                pf_reset(a, p);
                return;
        }
        if (n == 0) {
                p->rd_eof = true;
                send_conn(a, p->id, NULL, 0, true, false);
                pf_maybe_done(a, p);
                return;
        }
        send_conn(a, p->id, buf, (size_t)n, false, false);
}

/* StreamData from the host for a connection. */
static void pf_input(struct agent *a, const AgStream *s)
{
        struct pfconn *p = pf_find(a, s->conn_id, NULL);
        if (!p)
                return;
        if (s->reset) {
                pf_free(a, p);
                return;
        }
        if (s->data.len) {
                if (p->wbuf.len + s->data.len > PF_BUF_MAX) {
                        log_warn("agent", "port-forward %llu: the guest side does not read: reset",
                                 (unsigned long long)p->id);
                        pf_reset(a, p);
                        return;
                }
                sbuf_append(&p->wbuf, s->data.data, s->data.len);
        }
        if (s->eof)
                p->wr_eof = true;
        if (pf_flush(a, p))
                pf_maybe_done(a, p);
}

static int pf_connect(uint16_t port, struct err *e)
{
        int saved = ECONNREFUSED;
        for (int fam = 0; fam < 2; fam++) {
                int fd = socket(fam ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        if (fam == 0)
                                saved = errno;
                        continue;
                }
                int r;
                if (fam == 0) {
                        struct sockaddr_in sa = {.sin_family = AF_INET,
                                                 .sin_port = htons(port),
                                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                } else {
                        struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                                  .sin6_port = htons(port),
                                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
                        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                }
                if (r == 0) {
                        (void)fcntl(fd, F_SETFL, O_NONBLOCK);
                        return fd;
                }
                if (fam == 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
                        saved = errno;
                close(fd);
        }
        return err_make(e, saved, "connect to port %u in the guest", (unsigned)port);
}

static void do_port_forward(struct agent *a, uint64_t id, const Corral__Agent__V1__PortForwardRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        if (!r->conn_id || !r->port || r->port > 65535) {
                err_set(&e, ERR_INVALID, "port-forward needs a connection id and a port");
        } else if (pf_find(a, r->conn_id, NULL)) {
                err_set(&e, ERR_EXISTS, "port-forward connection %llu exists",
                        (unsigned long long)r->conn_id);
        } else if (a->n_pfs >= MAX_WATCHED) {
                err_set(&e, ERR_EXHAUSTED, "too many port-forward connections");
        } else {
                int fd = pf_connect((uint16_t)r->port, &e);
                if (fd >= 0) {
                        struct pfconn *p = xzalloc(sizeof(*p));
                        p->id = r->conn_id;
                        p->fd = fd;
                        a->pfs = xrealloc(a->pfs, (a->n_pfs + 1) * sizeof(*a->pfs));
                        a->pfs[a->n_pfs++] = p;
                }
        }
        reply_err(a, id, &e);
}

/* ---------- ping, stats, shares, shutdown ---------- */

static void do_ping(struct agent *a, uint64_t id)
{
        struct utsname u;
        uname(&u);
        struct timespec ts;
        clock_gettime(CLOCK_BOOTTIME, &ts);
        Corral__Agent__V1__PingResponse p = CORRAL__AGENT__V1__PING_RESPONSE__INIT;
        p.agent_version = CORRAL_VERSION;
        p.kernel_release = u.release;
        p.uptime_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_PING;
        r.ping = &p;
        reply(a, &r);
}

static uint64_t meminfo(const char *buf, const char *key)
{
        const char *p = strstr(buf, key);
        return p ? strtoull(p + strlen(key), NULL, 10) * 1024 : 0;
}

static void do_stats(struct agent *a, uint64_t id, const char *cid)
{
        cleanup_err struct err e = ERR_INIT;
        Corral__Agent__V1__StatsResponse s = CORRAL__AGENT__V1__STATS_RESPONSE__INIT;
        if (cid && *cid) {
                struct ctr *c = ctr_find(a, cid);
                struct rt_cgroup_stats cs;
                if (!c) {
                        err_set(&e, ERR_NOT_FOUND, "container %s not found", cid);
                } else if (!c->spec->cgroup_path) {
                        err_set(&e, ERR_PRECONDITION, "container %s has no cgroup", cid);
                } else if (rt_cgroup_stats(c->spec->cgroup_path, &cs, &e) == 0) {
                        s.cpu_usage_ns = cs.cpu_usage_ns;
                        s.memory_usage = cs.memory_working_set;
                        s.pids = (uint32_t)cs.pids_current;
                }
        } else {
                cleanup_free char *mi = NULL, *st = NULL;
                if (file_read_all("/proc/meminfo", &mi, NULL, 0, &e) == 0) {
                        s.memory_total = meminfo(mi, "MemTotal:");
                        s.memory_available = meminfo(mi, "MemAvailable:");
                        s.memory_usage = s.memory_total - s.memory_available;
                }
                if (!e.msg && file_read_all("/proc/stat", &st, NULL, 0, &e) == 0) {
                        unsigned long long v[3] = {0};
                        if (sscanf(st, "cpu %llu %llu %llu", &v[0], &v[1], &v[2]) == 3)
                                s.cpu_usage_ns = (v[0] + v[1] + v[2]) *
                                                 (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
                        const char *p = strstr(st, "processes ");
                        (void)p;
                }
                cleanup_dir DIR *d = opendir("/proc");
                struct dirent *de;
                while (d && (de = readdir(d)))
                        if (de->d_name[0] >= '1' && de->d_name[0] <= '9')
                                s.pids++;
        }
        if (e.msg) {
                reply_err(a, id, &e);
                return;
        }
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_STATS;
        r.stats = &s;
        reply(a, &r);
}

static void do_mount_share(struct agent *a, uint64_t id, const Corral__Agent__V1__MountShareRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        const char *fs = r->fstype && *r->fstype ? r->fstype : "9p";
        if (!name_ok(r->tag)) {
                err_set(&e, ERR_INVALID, "bad share tag");
        } else if (strcmp(fs, "9p") && strcmp(fs, "virtiofs")) {
                err_set(&e, ERR_INVALID, "share %s: unknown fstype %s", r->tag, fs);
        } else {
                cleanup_free char *dst = path_join(AGENT_SHARES_DIR, r->tag);
                (void)mkdir_p(dst, 0755, NULL);
                unsigned long fl = MS_NODEV | (r->readonly ? MS_RDONLY : 0);
                const char *data = strcmp(fs, "9p") == 0
                                           ? "trans=virtio,version=9p2000.L,msize=262144,cache=mmap"
                                           : NULL;
                if (mount(r->tag, dst, fs, fl, data) < 0)
                        err_make(&e, errno, "mount share %s (%s) on %s", r->tag, fs, dst);
        }
        reply_err(a, id, &e);
}

static void do_shutdown(struct agent *a, uint64_t id)
{
        for (size_t i = 0; i < a->n_ctrs; i++)
                if (a->ctrs[i]->state != CTR_EXITED)
                        (void)kill(a->ctrs[i]->pid, SIGKILL);
        reply_err(a, id, NULL);
        a->shutdown = true;
}

static void handle_request(struct agent *a, const AgRequest *q)
{
        uint64_t id = q->id;
        switch (q->body_case) {
        case CORRAL__AGENT__V1__REQUEST__BODY_PING:
                do_ping(a, id);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_SETUP_NETWORK: {
                cleanup_err struct err e = ERR_INIT;
                (void)agent_net_setup(q->setup_network, &e);
                reply_err(a, id, &e);
                return;
        }
        case CORRAL__AGENT__V1__REQUEST__BODY_MOUNT_SHARE:
                do_mount_share(a, id, q->mount_share);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_CREATE_CONTAINER:
                do_create(a, id, q->create_container);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_START_CONTAINER:
                do_start(a, id, q->start_container->container_id);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_EXEC:
                do_exec(a, id, q->exec);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_SIGNAL:
                do_signal(a, id, q->signal);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_WAIT:
                do_wait(a, id, q->wait->container_id);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_STATS:
                do_stats(a, id, q->stats->container_id);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_REMOVE_CONTAINER:
                do_remove(a, id, q->remove_container->container_id);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_SHUTDOWN:
                do_shutdown(a, id);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_PORT_FORWARD:
                do_port_forward(a, id, q->port_forward);
                return;
        default: {
                struct err e = ERR_INIT;
                err_set(&e, ERR_UNIMPLEMENTED, "unknown or empty request (body %d)", (int)q->body_case);
                reply_err(a, id, &e);
                err_clear(&e);
        }
        }
}

/* Returns false when the stream ended (EOF without reconnect). */
static bool read_host(struct agent *a)
{
        cleanup_err struct err e = ERR_INIT;
        ssize_t n = frame_reader_fill(&a->rd, a->fd, &e);
        if (n == 0) {
                frame_reader_reset(&a->rd);
                if (!a->reconnect)
                        return false;
                /* virtio-serial: no host on the other end right now. */
                a->host_away = true;
                a->away_until_ms = now_ms() + 50;
                return true;
        }
        if (n < 0 && e.msg) {
                log_warn("agent", "read: %s", e.msg);
                if (!a->reconnect)
                        return false;
                a->host_away = true;
                a->away_until_ms = now_ms() + 50;
                return true;
        }
        for (;;) {
                AgFrame *f = NULL;
                err_clear(&e);
                int r = frame_reader_next(&a->rd, &f, &e);
                if (r == 0)
                        break;
                if (r < 0) {
                        reply_err(a, 0, &e);
                        continue;
                }
                if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_REQUEST) {
                        handle_request(a, f->request);
                } else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM && f->stream->conn_id) {
                        pf_input(a, f->stream);
                } else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM && f->stream->exec_id &&
                           *f->stream->exec_id) {
                        exec_input(a, f->stream);
                } else if (f->kind_case != CORRAL__AGENT__V1__FRAME__KIND_STREAM) {
                        struct err e2 = ERR_INIT;
                        err_set(&e2, ERR_INVALID, "malformed agent frame: expected a request");
                        reply_err(a, 0, &e2);
                        err_clear(&e2);
                }
                frame_free(f);
        }
        return true;
}

int agent_serve(int fd, bool reconnect, bool is_pid1)
{
        struct agent a = {.fd = fd, .reconnect = reconnect, .is_pid1 = is_pid1};
        if (pipe2(sigchld_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
                return -1;
        struct sigaction sa = {0};
        sa.sa_handler = on_sigchld;
        sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
        sigaction(SIGCHLD, &sa, NULL);
        signal(SIGPIPE, SIG_IGN);
        (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
        size_t cap = 0;
        struct pollfd *pfd = NULL;
        uint64_t *pfids = NULL; /* the connections polled this round */
        int ret = 0;
        while (!a.shutdown) {
                size_t n = 0;
                size_t want = 2 + 2 * a.n_ctrs + 3 * a.n_execs + a.n_pfs;
                if (want > cap) {
                        cap = want * 2;
                        pfd = xrealloc(pfd, cap * sizeof(*pfd));
                        pfids = xrealloc(pfids, cap * sizeof(*pfids));
                }
                int64_t now = now_ms();
                int timeout = -1;
                if (a.host_away && now >= a.away_until_ms)
                        a.host_away = false;
                if (a.host_away)
                        timeout = (int)(a.away_until_ms - now);
                pfd[n++] = (struct pollfd){.fd = sigchld_pipe[0], .events = POLLIN};
                pfd[n++] = (struct pollfd){.fd = a.host_away ? -1 : fd, .events = POLLIN};
                for (size_t i = 0; i < a.n_ctrs; i++) {
                        pfd[n++] = (struct pollfd){.fd = a.ctrs[i]->out_fd, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = a.ctrs[i]->err_fd, .events = POLLIN};
                }
                for (size_t i = 0; i < a.n_execs; i++) {
                        struct execp *x = a.execs[i];
                        pfd[n++] = (struct pollfd){.fd = x->out_fd, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = x->err_fd, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = x->in_off < x->in.len ? x->in_fd : -1,
                                                   .events = POLLOUT};
                        if (x->deadline_ms && !x->timed_out) {
                                int64_t l = x->deadline_ms - now;
                                if (l < 0)
                                        l = 0;
                                if (timeout < 0 || l < timeout)
                                        timeout = (int)l;
                        }
                }
                size_t n_pf = a.n_pfs, pf0 = n;
                for (size_t i = 0; i < n_pf; i++) {
                        struct pfconn *p = a.pfs[i];
                        pfids[i] = p->id;
                        short ev = (p->rd_eof ? 0 : POLLIN) | (p->woff < p->wbuf.len ? POLLOUT : 0);
                        pfd[n++] = (struct pollfd){.fd = ev ? p->fd : -1, .events = ev};
                }
                int r = poll(pfd, n, timeout);
                if (r < 0 && errno != EINTR) {
                        ret = -1;
                        break;
                }
                /* Output before exits, so a process's last words precede its end. */
                size_t k = 2;
                for (size_t i = 0; i < a.n_ctrs; i++, k += 2) {
                        struct ctr *c = a.ctrs[i];
                        if (r > 0 && c->out_fd >= 0 && pfd[k].revents)
                                ctr_read(&a, c, &c->out_fd, CORRAL__AGENT__V1__STREAM_KIND__STDOUT);
                        if (r > 0 && c->err_fd >= 0 && pfd[k + 1].revents)
                                ctr_read(&a, c, &c->err_fd, CORRAL__AGENT__V1__STREAM_KIND__STDERR);
                }
                for (size_t i = 0; i < a.n_execs; i++, k += 3) {
                        struct execp *x = a.execs[i];
                        if (r > 0 && x->out_fd >= 0 && pfd[k].revents)
                                exec_read(&a, x, &x->out_fd, &x->out);
                        if (r > 0 && x->err_fd >= 0 && pfd[k + 1].revents)
                                exec_read(&a, x, &x->err_fd, &x->err);
                        if (r > 0 && x->in_fd >= 0 && pfd[k + 2].fd >= 0 && pfd[k + 2].revents)
                                exec_write_in(x);
                        if (x->deadline_ms && !x->timed_out && now_ms() >= x->deadline_ms) {
                                x->timed_out = true;
                                (void)kill(x->pid, SIGKILL);
                        }
                }
                /* Connections may end while others are served: go by id. */
                for (size_t i = 0; r > 0 && i < n_pf; i++) {
                        short rev = pfd[pf0 + i].revents;
                        struct pfconn *p = rev ? pf_find(&a, pfids[i], NULL) : NULL;
                        if (!p)
                                continue;
                        if ((rev & POLLOUT) && !pf_flush(&a, p))
                                continue;
                        if (rev & (POLLIN | POLLHUP | POLLERR)) {
                                if (!p->rd_eof)
                                        pf_read(&a, p);
                                else if (rev & POLLERR)
                                        pf_reset(&a, p);
                        } else if (p->wr_shut) {
                                pf_maybe_done(&a, p);
                        }
                }
                if (r > 0 && pfd[0].revents) {
                        char buf[64];
                        while (read(sigchld_pipe[0], buf, sizeof(buf)) > 0)
                                ;
                }
                reap(&a);
                if (r > 0 && pfd[1].fd >= 0 && pfd[1].revents) {
                        if (pfd[1].revents & (POLLIN | POLLERR)) {
                                if (!read_host(&a))
                                        break;
                        } else if (reconnect) {
                                a.host_away = true;
                                a.away_until_ms = now_ms() + 50;
                        } else {
                                break;
                        }
                }
        }
        if (a.shutdown)
                ret = 1;
        for (size_t i = 0; i < a.n_ctrs; i++)
                if (a.ctrs[i]->state != CTR_EXITED)
                        (void)kill(a.ctrs[i]->pid, SIGKILL);
        for (size_t i = 0; i < a.n_execs; i++) {
                (void)kill(a.execs[i]->pid, SIGKILL);
                (void)waitpid(a.execs[i]->pid, NULL, 0);
                exec_free(a.execs[i]);
        }
        for (size_t i = 0; i < a.n_ctrs; i++)
                ctr_free(a.ctrs[i]);
        while (a.n_pfs)
                pf_free(&a, a.pfs[0]);
        free(a.pfs);
        free(pfids);
        free(a.ctrs);
        free(a.execs);
        free(pfd);
        frame_reader_free(&a.rd);
        close(sigchld_pipe[0]);
        close(sigchld_pipe[1]);
        return ret;
}
