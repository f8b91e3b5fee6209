/* corral-agent's protocol loop: one poll loop over the host stream, a
 * SIGCHLD self-pipe, and the stdout/stderr pipes of every container and
 * exec. Requests that finish later (Exec, Wait) are answered when their
 * process is done; container output goes out as StreamData frames as it is
 * read. Single-threaded, as runtime/ wants its callers. Exec (exec.c) and
 * port-forward (portfwd.c) are in their own files; this one keeps the
 * loop, the framing out, containers, and the small requests. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>

#include "runtime/runtime.h"
#include "vm/agent/agent-internal.h"

static int sigchld_pipe[2] = {-1, -1};

static void on_sigchld(int sig)
{
        (void)sig;
        int saved = errno;
        (void)!write(sigchld_pipe[1], "c", 1);
        errno = saved;
}

int64_t agent_now_ms(void)
{
        return time_mono_ns() / 1000000;
}

/* Beyond this much queued for the host, output sources are not read. */
#define OUTQ_HIGH (1u << 20)

static void outq_drop(struct agent *a)
{
        a->outq.len = a->out_off = 0;
}

/* Write what the host stream takes now. */
static void flush_host(struct agent *a)
{
        while (a->out_off < a->outq.len) {
                ssize_t n = write(a->fd, a->outq.buf + a->out_off, a->outq.len - a->out_off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        /* The host is gone: reading says so (EOF, or away). */
                        log_warn("agent", "write to the host: %s", n < 0 ? strerror(errno) : "closed");
                        outq_drop(a);
                        return;
                }
                a->out_off += (size_t)n;
        }
        if (a->out_off >= a->outq.len)
                outq_drop(a);
        else
                agent_compact(&a->outq, &a->out_off);
}

bool agent_host_busy(const struct agent *a)
{
        return a->outq.len - a->out_off > OUTQ_HIGH;
}

void agent_send_frame(struct agent *a, AgFrame *f)
{
        if (a->host_away)
                return;
        size_t n = corral__agent__v1__frame__get_packed_size(f);
        if (n > FRAME_MAX) {
                log_warn("agent", "frame of %zu bytes not sent (over %u)", n, FRAME_MAX);
                return;
        }
        cleanup_free uint8_t *p = xmalloc(n + 4);
        p[0] = (uint8_t)(n >> 24);
        p[1] = (uint8_t)(n >> 16);
        p[2] = (uint8_t)(n >> 8);
        p[3] = (uint8_t)n;
        corral__agent__v1__frame__pack(f, p + 4);
        sbuf_append(&a->outq, p, n + 4);
        flush_host(a);
}

/* Before pid 1 powers off or the test loop returns: what is queued (the
 * Shutdown reply) goes out, for up to 10 s. */
static void flush_host_wait(struct agent *a)
{
        int64_t end = agent_now_ms() + 10000;
        while (!a->host_away && a->out_off < a->outq.len && agent_now_ms() < end) {
                struct pollfd p = {.fd = a->fd, .events = POLLOUT};
                if (poll(&p, 1, 100) < 0 && errno != EINTR)
                        break;
                flush_host(a);
        }
}

void agent_reply(struct agent *a, AgResponse *r)
{
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_RESPONSE;
        f.response = r;
        agent_send_frame(a, &f);
}

void agent_reply_err(struct agent *a, uint64_t id, const struct err *e)
{
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.error_kind = e && e->msg ? (int32_t)(e->kind ? e->kind : ERR_INTERNAL) : 0;
        r.error = e && e->msg ? e->msg : "";
        agent_reply(a, &r);
}

void agent_send_stream(struct agent *a, const char *ctr, const char *exec, int kind, const void *data,
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
        agent_send_frame(a, &f);
}

int agent_exit_code(int status)
{
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct ctr *agent_ctr_find(struct agent *a, const char *id)
{
        for (size_t i = 0; i < a->n_ctrs; i++)
                if (id && strcmp(a->ctrs[i]->id, id) == 0)
                        return a->ctrs[i];
        return NULL;
}

void agent_close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* A pipe whose read end is ours (non-blocking, cloexec). */
int agent_make_pipe(int p[2], struct err *e)
{
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        (void)fcntl(p[0], F_SETFL, O_NONBLOCK);
        return 0;
}

/* ---------- stdin sinks and credits ---------- */

#define SINK_LEGACY_MAX (16u << 20)

void agent_compact(struct sbuf *b, size_t *off)
{
        if (*off < 65536)
                return;
        memmove(b->buf, b->buf + *off, b->len - *off);
        b->len -= *off;
        *off = 0;
}

bool agent_sink_put(struct agent_sink *k, const void *data, size_t len, bool eof)
{
        if (k->fd < 0 || k->eof) {
                /* Closed: dropped, as a closed stdin would; still credited,
                 * or the host's window would shrink for good. */
                k->uncredited += len;
                return true;
        }
        if (len) {
                if (!k->window && k->buf.len - k->off + len > SINK_LEGACY_MAX)
                        return false;
                sbuf_append(&k->buf, data, len);
        }
        if (eof)
                k->eof = true;
        agent_sink_flush(k);
        return true;
}

void agent_sink_flush(struct agent_sink *k)
{
        while (k->fd >= 0 && k->off < k->buf.len) {
                ssize_t n = write(k->fd, k->buf.buf + k->off, k->buf.len - k->off);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        agent_compact(&k->buf, &k->off);
                        return;
                }
                if (n <= 0) {
                        /* EPIPE/EIO: it closed its stdin; the rest is dropped. */
                        k->uncredited += k->buf.len - k->off;
                        agent_close_fd(&k->fd);
                        break;
                }
                k->off += (size_t)n;
                k->uncredited += (size_t)n;
        }
        k->buf.len = k->off = 0;
        if (k->eof && k->fd >= 0) {
                if (k->tty) {
                        /* A terminal has no half-close: ^D, as a terminal would send. */
                        struct termios t;
                        char c = tcgetattr(k->fd, &t) == 0 ? (char)t.c_cc[VEOF] : 4;
                        (void)!write(k->fd, &c, 1);
                }
                agent_close_fd(&k->fd);
        }
}

bool agent_sink_pending(const struct agent_sink *k)
{
        return k->fd >= 0 && k->off < k->buf.len;
}

void agent_sink_close(struct agent_sink *k)
{
        agent_close_fd(&k->fd);
        sbuf_free(&k->buf);
        k->off = 0;
}

void agent_credit(struct agent *a, const char *cid, const char *eid, uint64_t conn, size_t *uncredited,
                  uint32_t window)
{
        if (!window || !*uncredited)
                return;
        size_t step = window / 4;
        if (*uncredited < step && *uncredited < window)
                return;
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = (char *)(cid ? cid : "");
        s.exec_id = (char *)(eid ? eid : "");
        s.conn_id = conn;
        s.credit = *uncredited;
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_STREAM;
        f.stream = &s;
        agent_send_frame(a, &f);
        *uncredited = 0;
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
        agent_close_fd(&c->out_fd);
        agent_close_fd(&c->err_fd);
        agent_close_fd(&c->pty);
        agent_sink_close(&c->in);
        free(c->waiters);
        free(c->cgroup);
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

/* The main process's stdio: pipes, or a pty (spec process.tty) as all
 * three; with r->stdin a stdin fed by the host. The child's ends go in
 * *io (the caller closes them once the container holds them). */
static int ctr_stdio(struct ctr *c, const Corral__Agent__V1__CreateContainerRequest *r, struct rt_stdio *io,
                     struct err *e)
{
        c->in.window = r->stdin_window;
        if (c->spec->process.tty) {
                int master, slave;
                if (openpty(&master, &slave, NULL, NULL, NULL) < 0)
                        return err_make(e, errno, "openpty");
                (void)fcntl(master, F_SETFD, FD_CLOEXEC);
                (void)fcntl(slave, F_SETFD, FD_CLOEXEC);
                (void)fcntl(master, F_SETFL, O_NONBLOCK);
                c->out_fd = master;
                io->in = slave;
                io->out = fcntl(slave, F_DUPFD_CLOEXEC, 3);
                io->err = fcntl(slave, F_DUPFD_CLOEXEC, 3);
                c->pty = fcntl(master, F_DUPFD_CLOEXEC, 3);
                if (r->stdin) {
                        c->in.fd = fcntl(master, F_DUPFD_CLOEXEC, 3);
                        c->in.tty = true;
                }
                if (io->out < 0 || io->err < 0 || c->pty < 0 || (r->stdin && c->in.fd < 0))
                        return err_make(e, errno, "dup pty");
                return 0;
        }
        int po[2], pe[2];
        if (agent_make_pipe(po, e) < 0)
                return -1;
        c->out_fd = po[0];
        io->out = po[1];
        if (agent_make_pipe(pe, e) < 0)
                return -1;
        c->err_fd = pe[0];
        io->err = pe[1];
        if (r->stdin) {
                int pi[2];
                if (pipe2(pi, O_CLOEXEC) < 0)
                        return err_make(e, errno, "pipe");
                io->in = pi[0];
                c->in.fd = pi[1];
                (void)fcntl(c->in.fd, F_SETFL, O_NONBLOCK);
        }
        return 0;
}

/* StreamData from the host for a container's main process (exec_id ""). */
static void ctr_input(struct agent *a, const AgStream *s)
{
        struct ctr *c = agent_ctr_find(a, s->container_id);
        if (!c)
                return;
        if (s->rows && s->cols && c->pty >= 0) {
                struct winsize ws = {.ws_row = (unsigned short)s->rows, .ws_col = (unsigned short)s->cols};
                (void)ioctl(c->pty, TIOCSWINSZ, &ws);
        }
        if (s->data.len || s->eof) {
                if (!agent_sink_put(&c->in, s->data.data, s->data.len, s->eof)) {
                        log_warn("agent", "container %s does not read its stdin: closed", c->id);
                        agent_sink_close(&c->in);
                }
                agent_credit(a, c->id, "", 0, &c->in.uncredited, c->in.window);
        }
}

static void do_create(struct agent *a, uint64_t id, const Corral__Agent__V1__CreateContainerRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        if (!name_ok(r->container_id)) {
                err_set(&e, ERR_INVALID, "bad container id");
                goto fail;
        }
        if (agent_ctr_find(a, r->container_id)) {
                err_set(&e, ERR_EXISTS, "container %s already exists", r->container_id);
                goto fail;
        }
        if (a->n_ctrs >= AGENT_MAX_WATCHED) {
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
        c->out_fd = c->err_fd = c->pty = c->in.fd = -1;
        struct rt_stdio io = {.in = -1, .out = -1, .err = -1};
        if (ctr_stdio(c, r, &io, &e) < 0) {
                ctr_free(c);
                goto fail;
        }
        int ret = agent_pod_pidns(a, spec, &e);
        if (ret == 0)
                ret = rt_container_create(spec, &io, &c->rc, &e);
        /* Only the container holds its ends now. */
        agent_close_fd(&io.in);
        agent_close_fd(&io.out);
        agent_close_fd(&io.err);
        if (ret < 0) {
                err_wrap(&e, "create container %s", r->container_id);
                ctr_free(c);
                goto fail;
        }
        c->pid = rt_container_pid(c->rc);
        c->state = CTR_CREATED;
        agent_ctr_oom_base(c);
        a->ctrs = xrealloc(a->ctrs, (a->n_ctrs + 1) * sizeof(*a->ctrs));
        a->ctrs[a->n_ctrs++] = c;
fail:
        agent_reply_err(a, id, &e);
}

static void do_start(struct agent *a, uint64_t id, const char *cid)
{
        cleanup_err struct err e = ERR_INIT;
        struct ctr *c = agent_ctr_find(a, cid);
        if (!c)
                err_set(&e, ERR_NOT_FOUND, "container %s not found", cid);
        else if (c->state != CTR_CREATED)
                err_set(&e, ERR_PRECONDITION, "container %s is not in state created", cid);
        else if (rt_container_start(c->rc, &e) < 0)
                err_wrap(&e, "start container %s", cid);
        else {
                c->state = CTR_RUNNING;
                c->started_ms = agent_now_ms();
        }
        if (e.msg) {
                agent_reply_err(a, id, &e);
                return;
        }
        /* Not reaped yet (only the agent's loop reaps): readable even if gone. */
        struct rt_user u = {0};
        Corral__Agent__V1__StartContainerResponse sr = CORRAL__AGENT__V1__START_CONTAINER_RESPONSE__INIT;
        if (rt_proc_user(c->pid, &u, NULL) == 0) {
                sr.has_user = true;
                sr.uid = u.uid;
                sr.gid = u.gid;
                sr.groups = u.groups;
                sr.n_groups = u.n_groups;
        }
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_START_CONTAINER;
        r.start_container = &sr;
        agent_reply(a, &r);
        rt_user_clear(&u);
}

static void answer_wait(struct agent *a, uint64_t id, struct ctr *c)
{
        Corral__Agent__V1__WaitResponse w = CORRAL__AGENT__V1__WAIT_RESPONSE__INIT;
        w.exit_code = agent_exit_code(c->status);
        w.signal = WIFSIGNALED(c->status) ? WTERMSIG(c->status) : 0;
        w.finished_ns = c->finished_ns;
        w.oom_killed = c->oom_killed;
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_WAIT;
        r.wait = &w;
        agent_reply(a, &r);
}

static void do_wait(struct agent *a, uint64_t id, const char *cid)
{
        struct ctr *c = agent_ctr_find(a, cid);
        if (!c) {
                struct err e = ERR_INIT;
                err_set(&e, ERR_NOT_FOUND, "container %s not found", cid);
                agent_reply_err(a, id, &e);
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
        struct ctr *c = agent_ctr_find(a, r->container_id);
        if (!c)
                err_set(&e, ERR_NOT_FOUND, "container %s not found", r->container_id);
        else if (r->signal <= 0 || r->signal >= 65)
                err_set(&e, ERR_INVALID, "bad signal %d", r->signal);
        else if (c->state == CTR_EXITED)
                err_set(&e, ERR_PRECONDITION, "container %s has exited", r->container_id);
        else
                (void)agent_ctr_signal(c, r->signal, &e);
        agent_reply_err(a, id, &e);
}

static void do_update(struct agent *a, uint64_t id, const Corral__Agent__V1__UpdateResourcesRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        struct ctr *c = agent_ctr_find(a, r->container_id);
        struct rt_spec *spec = NULL;
        char *cg = NULL;
        if (!c)
                err_set(&e, ERR_NOT_FOUND, "container %s not found", r->container_id);
        else if (c->state == CTR_EXITED)
                err_set(&e, ERR_PRECONDITION, "container %s has exited", r->container_id);
        else if (!c->spec->cgroup_path)
                err_set(&e, ERR_PRECONDITION, "container %s has no cgroup", r->container_id);
        else if ((spec = rt_spec_from_json(r->spec_json, strlen(r->spec_json), &e)) != NULL &&
                 rt_cgroup_resolve(c->spec->cgroup_path, &cg, &e) == 0)
                (void)rt_cgroup_update(cg, &spec->resources, &e);
        if (e.msg)
                err_wrap(&e, "update container %s", r->container_id);
        free(cg);
        rt_spec_free(spec);
        agent_reply_err(a, id, &e);
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
                agent_reply_err(a, id, &e);
                return;
        }
        agent_reply_err(a, id, NULL); /* already gone: idempotent */
}

/* ---------- container output and exits ---------- */

/* Read a container's output and send it on: until the pipe is empty when
 * `drain` (its writer exited), else while the host keeps up. */
static void ctr_read(struct agent *a, struct ctr *c, int *fd, int kind, bool drain)
{
        char buf[65536];
        for (;;) {
                if (!drain && agent_host_busy(a))
                        return; /* polled again once the queue drained */
                ssize_t n = read(*fd, buf, sizeof(buf));
                if (n > 0) {
                        agent_send_stream(a, c->id, "", kind, buf, (size_t)n, false);
                        continue;
                }
                if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                        agent_close_fd(fd);
                        agent_send_stream(a, c->id, "", kind, NULL, 0, true);
                }
                return;
        }
}

static void ctr_exited(struct agent *a, struct ctr *c, int status)
{
        /* The writer is gone: what it wrote is in the pipe now. Daemons it
         * left behind may keep the pipe open; they are not waited for. */
        if (c->out_fd >= 0)
                ctr_read(a, c, &c->out_fd, CORRAL__AGENT__V1__STREAM_KIND__STDOUT, true);
        if (c->err_fd >= 0)
                ctr_read(a, c, &c->err_fd, CORRAL__AGENT__V1__STREAM_KIND__STDERR, true);
        c->state = CTR_EXITED;
        c->status = status;
        c->oom_killed = agent_ctr_oom_killed(c);
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
                ssize_t xi = agent_exec_index(a, pid);
                if (xi >= 0) {
                        agent_exec_done(a, (size_t)xi, status);
                        continue;
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
        }
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
        agent_reply(a, &r);
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
                struct ctr *c = agent_ctr_find(a, cid);
                struct rt_cgroup_metrics cs = {0};
                if (!c) {
                        err_set(&e, ERR_NOT_FOUND, "container %s not found", cid);
                } else if (!c->spec->cgroup_path) {
                        err_set(&e, ERR_PRECONDITION, "container %s has no cgroup", cid);
                } else if (rt_cgroup_metrics(c->spec->cgroup_path, &cs, &e) == 0) {
                        s.cpu_usage_ns = cs.cpu_usage_ns;
                        s.memory_usage = cs.mem_working_set;
                        s.pids = (uint32_t)cs.threads;
                        s.cpu_user_ns = cs.cpu_user_ns;
                        s.cpu_system_ns = cs.cpu_system_ns;
                        s.mem_usage = cs.mem_usage;
                        s.mem_rss = cs.mem_rss;
                        s.mem_cache = cs.mem_cache;
                        s.mem_mapped_file = cs.mem_mapped_file;
                        s.mem_max_usage = cs.mem_max_usage;
                        s.mem_failcnt = cs.mem_failcnt;
                        s.mem_limit = cs.mem_limit;
                        s.oom_kills = cs.oom_kills;
                        s.processes = cs.processes;
                        s.threads = cs.threads;
                }
                rt_cgroup_metrics_clear(&cs);
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
                agent_reply_err(a, id, &e);
                return;
        }
        AgResponse r = CORRAL__AGENT__V1__RESPONSE__INIT;
        r.id = id;
        r.body_case = CORRAL__AGENT__V1__RESPONSE__BODY_STATS;
        r.stats = &s;
        agent_reply(a, &r);
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
        agent_reply_err(a, id, &e);
}

/* Sysctls of the pod: keys are dotted (or slashed) names under /proc/sys,
 * never a path that could climb out of it. */
static int write_sysctl(const char *key, const char *value, struct err *e)
{
        if (!key || !*key || key[0] == '.' || key[0] == '/' || strstr(key, "..") ||
            strspn(key, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-/") != strlen(key))
                return err_set(e, ERR_INVALID, "sysctl \"%s\": not a sysctl name", key ? key : "");
        cleanup_free char *path = xasprintf("/proc/sys/%s", key);
        /* "a.b.c" -> a/b/c; with '/' as the separator a '.' is part of a name (net/ipv4/conf/eth0.100/...).
         */
        if (!strchr(key, '/'))
                for (char *c = path + strlen("/proc/sys/"); *c; c++)
                        if (*c == '.')
                                *c = '/';
        cleanup_close int fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "sysctl %s", key);
        size_t n = strlen(value ? value : "");
        if (write(fd, value ? value : "", n) != (ssize_t)n)
                return err_make(e, errno, "sysctl %s=%s", key, value ? value : "");
        return 0;
}

static void do_sysctl(struct agent *a, uint64_t id, const Corral__Agent__V1__SysctlRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        for (size_t i = 0; i < r->n_sysctls && !e.msg; i++)
                (void)write_sysctl(r->sysctls[i]->key, r->sysctls[i]->value, &e);
        agent_reply_err(a, id, &e);
}

static void do_shutdown(struct agent *a, uint64_t id)
{
        for (size_t i = 0; i < a->n_ctrs; i++)
                if (a->ctrs[i]->state != CTR_EXITED)
                        (void)kill(a->ctrs[i]->pid, SIGKILL);
        agent_reply_err(a, id, NULL);
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
                agent_reply_err(a, id, &e);
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
                agent_exec_start(a, id, q->exec);
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
        case CORRAL__AGENT__V1__REQUEST__BODY_UPDATE_RESOURCES:
                do_update(a, id, q->update_resources);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_SYSCTL:
                do_sysctl(a, id, q->sysctl);
                return;
        case CORRAL__AGENT__V1__REQUEST__BODY_PORT_FORWARD:
                agent_pf_start(a, id, q->port_forward);
                return;
        default: {
                struct err e = ERR_INIT;
                err_set(&e, ERR_UNIMPLEMENTED, "unknown or empty request (body %d)", (int)q->body_case);
                agent_reply_err(a, id, &e);
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
                a->away_until_ms = agent_now_ms() + 50;
                return true;
        }
        if (n < 0 && e.msg) {
                log_warn("agent", "read: %s", e.msg);
                if (!a->reconnect)
                        return false;
                a->host_away = true;
                a->away_until_ms = agent_now_ms() + 50;
                return true;
        }
        for (;;) {
                AgFrame *f = NULL;
                err_clear(&e);
                int r = frame_reader_next(&a->rd, &f, &e);
                if (r == 0)
                        break;
                if (r < 0) {
                        agent_reply_err(a, 0, &e);
                        continue;
                }
                if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_REQUEST) {
                        handle_request(a, f->request);
                } else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM && f->stream->conn_id) {
                        agent_pf_input(a, f->stream);
                } else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM && f->stream->exec_id &&
                           *f->stream->exec_id) {
                        agent_exec_input(a, f->stream);
                } else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM && f->stream->container_id &&
                           *f->stream->container_id) {
                        ctr_input(a, f->stream);
                } else if (f->kind_case != CORRAL__AGENT__V1__FRAME__KIND_STREAM) {
                        struct err e2 = ERR_INIT;
                        err_set(&e2, ERR_INVALID, "malformed agent frame: expected a request");
                        agent_reply_err(a, 0, &e2);
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
                size_t want = 2 + 3 * a.n_ctrs + 3 * a.n_execs + a.n_pfs;
                if (want > cap) {
                        cap = want * 2;
                        pfd = xrealloc(pfd, cap * sizeof(*pfd));
                        pfids = xrealloc(pfids, cap * sizeof(*pfids));
                }
                int64_t now = agent_now_ms();
                int timeout = -1;
                if (a.host_away && now >= a.away_until_ms)
                        a.host_away = false;
                if (a.host_away)
                        timeout = (int)(a.away_until_ms - now);
                int sig_t = agent_ctr_signals_due(&a, now);
                if (sig_t >= 0 && (timeout < 0 || sig_t < timeout))
                        timeout = sig_t;
                pfd[n++] = (struct pollfd){.fd = sigchld_pipe[0], .events = POLLIN};
                if (a.host_away)
                        outq_drop(&a); /* no one to take it */
                short hev = (short)(POLLIN | (a.out_off < a.outq.len ? POLLOUT : 0));
                pfd[n++] = (struct pollfd){.fd = a.host_away ? -1 : fd, .events = hev};
                bool busy = agent_host_busy(&a);
                for (size_t i = 0; i < a.n_ctrs; i++) {
                        pfd[n++] = (struct pollfd){.fd = busy ? -1 : a.ctrs[i]->out_fd, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = busy ? -1 : a.ctrs[i]->err_fd, .events = POLLIN};
                        pfd[n++] = (struct pollfd){.fd = agent_sink_pending(&a.ctrs[i]->in) ? a.ctrs[i]->in.fd
                                                                                            : -1,
                                                   .events = POLLOUT};
                }
                size_t ex0 = n;
                n += agent_exec_poll_fds(&a, pfd + n, now, &timeout);
                size_t pf0 = n, n_pf = agent_pf_poll_fds(&a, pfd + n, pfids);
                n += n_pf;
                int r = poll(pfd, n, timeout);
                if (r < 0 && errno != EINTR) {
                        ret = -1;
                        break;
                }
                /* Output before exits, so a process's last words precede its end. */
                size_t k = 2;
                for (size_t i = 0; i < a.n_ctrs; i++, k += 3) {
                        struct ctr *c = a.ctrs[i];
                        if (r > 0 && c->out_fd >= 0 && pfd[k].revents)
                                ctr_read(&a, c, &c->out_fd, CORRAL__AGENT__V1__STREAM_KIND__STDOUT, false);
                        if (r > 0 && c->err_fd >= 0 && pfd[k + 1].revents)
                                ctr_read(&a, c, &c->err_fd, CORRAL__AGENT__V1__STREAM_KIND__STDERR, false);
                        if (r > 0 && pfd[k + 2].fd >= 0 && pfd[k + 2].revents) {
                                agent_sink_flush(&c->in);
                                agent_credit(&a, c->id, "", 0, &c->in.uncredited, c->in.window);
                        }
                }
                agent_exec_poll_events(&a, pfd + ex0, r > 0);
                if (r > 0)
                        agent_pf_poll_events(&a, pfd + pf0, pfids, n_pf);
                if (r > 0 && pfd[0].revents) {
                        char buf[64];
                        while (read(sigchld_pipe[0], buf, sizeof(buf)) > 0)
                                ;
                }
                reap(&a);
                if (r > 0 && pfd[1].fd >= 0 && (pfd[1].revents & POLLOUT))
                        flush_host(&a);
                if (r > 0 && pfd[1].fd >= 0 && (pfd[1].revents & ~POLLOUT)) {
                        if (pfd[1].revents & (POLLIN | POLLERR)) {
                                if (!read_host(&a))
                                        break;
                        } else if (reconnect) {
                                a.host_away = true;
                                a.away_until_ms = agent_now_ms() + 50;
                        } else {
                                break;
                        }
                }
        }
        flush_host_wait(&a);
        if (a.shutdown)
                ret = 1;
        for (size_t i = 0; i < a.n_ctrs; i++)
                if (a.ctrs[i]->state != CTR_EXITED)
                        (void)kill(a.ctrs[i]->pid, SIGKILL);
        agent_exec_kill_all(&a);
        for (size_t i = 0; i < a.n_ctrs; i++)
                ctr_free(a.ctrs[i]);
        while (a.n_pfs)
                agent_pf_free(&a, a.pfs[0]);
        free(a.pfs);
        free(pfids);
        free(a.ctrs);
        free(a.execs);
        free(pfd);
        frame_reader_free(&a.rd);
        sbuf_free(&a.outq);
        close(sigchld_pipe[0]);
        close(sigchld_pipe[1]);
        return ret;
}
