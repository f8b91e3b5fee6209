/* corral-shim's life: create the container, report to shim_spawn, then one
 * epoll loop (single thread) over the signalfd, the control and attach
 * sockets, the container's stdio, exec pipes and timers. All state lives in
 * one `struct shim`. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <link.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

#include "runtime/runtime.h"
#include "shim/shim-internal.h"

/* A peer that stops reading a reply for this long is dropped. */
#define REPLY_SEND_TIMEOUT_S    5
#define REQUEST_RECV_TIMEOUT_MS 5000

int shim_watch_add(struct shim *s, struct watch *w, uint32_t events)
{
        struct epoll_event ev = {.events = events, .data.ptr = w};
        if (epoll_ctl(s->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0)
                return 0;
        if (errno == EEXIST)
                return epoll_ctl(s->epfd, EPOLL_CTL_MOD, w->fd, &ev);
        return -1;
}

int shim_watch_mod(struct shim *s, struct watch *w, uint32_t events)
{
        struct epoll_event ev = {.events = events, .data.ptr = w};
        return epoll_ctl(s->epfd, EPOLL_CTL_MOD, w->fd, &ev);
}

void shim_watch_del(struct shim *s, struct watch *w)
{
        if (w && w->fd >= 0)
                (void)epoll_ctl(s->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void shim_watch_close(struct shim *s, struct watch *w)
{
        if (w == NULL || w->fd < 0)
                return;
        shim_watch_del(s, w);
        close(w->fd);
        w->fd = -1;
}

/* ---------- state ---------- */

void shim_state_fill(const struct shim *s, struct shim_state *st)
{
        memset(st, 0, sizeof(*st));
        st->pid = s->pid;
        st->status = s->status;
        st->exit_code = s->exit_code;
        st->signal = s->exit_signal;
        st->created_ns = s->created_ns;
        st->started_ns = s->started_ns;
        st->finished_ns = s->finished_ns;
        st->oom_killed = s->oom_killed;
        if (s->has_user)
                shim_state_set_user(st, s->user.groups, s->user.n_groups, s->user.uid, s->user.gid);
}

void shim_state_put(struct sbuf *b, const struct shim_state *st)
{
        proto_put_i64(b, PF_PID, st->pid);
        proto_put_i64(b, PF_STATUS, st->status);
        proto_put_i64(b, PF_EXIT_CODE, st->exit_code);
        proto_put_i64(b, PF_SIGNAL, st->signal);
        proto_put_i64(b, PF_CREATED, st->created_ns);
        proto_put_i64(b, PF_STARTED, st->started_ns);
        proto_put_i64(b, PF_FINISHED, st->finished_ns);
        proto_put_i64(b, PF_OOM, st->oom_killed);
        if (st->reason[0])
                proto_put_str(b, PF_REASON, st->reason);
        if (st->message[0])
                proto_put_str(b, PF_REASON_MSG, st->message);
        if (st->has_user) {
                proto_put_i64(b, PF_UID, st->uid);
                proto_put_i64(b, PF_GID, st->gid);
                struct sbuf g = {0};
                for (uint32_t i = 0; i < st->n_groups; i++)
                        sbuf_printf(&g, "%s%u", i ? "," : "", st->groups[i]);
                proto_put(b, PF_GROUPS, g.buf ? g.buf : "", g.len);
                sbuf_free(&g);
        }
}

void shim_state_set_user(struct shim_state *st, const uint32_t *groups, size_t n, uint32_t uid, uint32_t gid)
{
        st->has_user = true;
        st->uid = uid;
        st->gid = gid;
        st->n_groups = 0;
        for (size_t i = 0; i < n && st->n_groups < 64; i++)
                st->groups[st->n_groups++] = groups[i];
}

/* ---------- control connections ---------- */

static void conn_close(struct shim *s, struct ctl_conn *c)
{
        for (struct ctl_conn **p = &s->conns; *p; p = &(*p)->next) {
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        }
        if (c->pending == OP_EXEC)
                shim_exec_abandon(s, c);
        shim_watch_close(s, &c->timer);
        shim_watch_close(s, &c->w);
        free(c);
}

void shim_reply(struct shim *s, struct ctl_conn *c, const struct err *status, const struct sbuf *body)
{
        (void)s;
        cleanup_err struct err e = ERR_INIT;
        if (proto_send(c->w.fd, OP_REPLY, status, body, &e) < 0) {
                log_debug("shim", "reply: %s", e.msg);
                /* Closed on its next event (EPOLLHUP); not here, callers still hold c. */
                shutdown(c->w.fd, SHUT_RDWR);
        }
}

static void reply_state(struct shim *s, struct ctl_conn *c)
{
        struct shim_state st;
        shim_state_fill(s, &st);
        struct sbuf b = {0};
        shim_state_put(&b, &st);
        shim_reply(s, c, NULL, &b);
        sbuf_free(&b);
}

void shim_exited(struct shim *s)
{
        for (struct ctl_conn *c = s->conns; c; c = c->next) {
                if (c->pending != OP_WAIT)
                        continue;
                shim_watch_close(s, &c->timer);
                c->pending = OP_REPLY;
                reply_state(s, c);
        }
        if (s->shutdown)
                s->quit = true;
}

static void on_wait_timer(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        struct ctl_conn *c = (struct ctl_conn *)((char *)w - offsetof(struct ctl_conn, timer));
        shim_watch_close(s, &c->timer);
        c->pending = OP_REPLY;
        cleanup_err struct err st = ERR_INIT;
        err_set(&st, ERR_DEADLINE, "container %s still running", s->opts->id);
        shim_reply(s, c, &st, NULL);
}

static int do_start(struct shim *s, struct sbuf *out, struct err *e)
{
        if (s->status != SHIM_CREATED || (s->ctr == NULL && !s->oci_created))
                return err_set(e, ERR_PRECONDITION, "container %s is %s, not created", s->opts->id,
                               s->status == SHIM_RUNNING ? "running" : "exited");
        if ((s->ctr ? rt_container_start(s->ctr, e) : shim_oci_start(s, e)) < 0)
                return err_wrap(e, "start %s", s->opts->id);
        s->started_ns = time_now_ns();
        /* Not yet reaped (only our loop reaps it), so even a process that
         * is already gone can be read. */
        cleanup_err struct err ue = ERR_INIT;
        if (rt_proc_user(s->pid, &s->user, &ue) == 0)
                s->has_user = true;
        else
                log_debug("shim", "container %s: identity: %s", s->opts->id, ue.msg);
        /* It may already have exited and been reaped inside the call. */
        if (s->status == SHIM_CREATED)
                s->status = SHIM_RUNNING;
        proto_put_i64(out, PF_PID, s->pid);
        shim_trim_text();
        return 0;
}

/* How often, and for how long after a dropped signal, the shim looks for
 * the handler: a workload installs it within milliseconds of its exec, and
 * one that never does (`sleep` as pid 1) is killed at the stop's timeout. */
#define REDELIVER_POLL_MS 5
#define REDELIVER_FOR_MS  3000

static void redeliver_stop(struct shim *s)
{
        shim_watch_close(s, &s->redeliver);
        s->redeliver_sig = 0;
}

static void on_redeliver_timer(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        uint64_t ticks;
        (void)!read(w->fd, &ticks, sizeof(ticks));
        if (s->status != SHIM_RUNNING) {
                redeliver_stop(s);
                return;
        }
        if (!rt_signal_dropped(s->pid, s->redeliver_sig)) {
                log_info("shim", "signal %d sent again to %s: it has a handler now", s->redeliver_sig,
                         s->opts->id);
                (void)kill(s->pid, s->redeliver_sig);
                redeliver_stop(s);
        } else if (time_mono_ns() >= s->redeliver_until_ns) {
                redeliver_stop(s);
        }
}

static void redeliver_arm(struct shim *s, int sig)
{
        s->redeliver_sig = sig;
        s->redeliver_until_ns = time_mono_ns() + (int64_t)REDELIVER_FOR_MS * 1000000;
        if (s->redeliver.fd >= 0)
                return;
        s->redeliver.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        s->redeliver.fn = on_redeliver_timer;
        struct itimerspec its = {.it_interval = {0, REDELIVER_POLL_MS * 1000000L},
                                 .it_value = {0, REDELIVER_POLL_MS * 1000000L}};
        if (s->redeliver.fd < 0 || timerfd_settime(s->redeliver.fd, 0, &its, NULL) < 0 ||
            shim_watch_add(s, &s->redeliver, EPOLLIN) < 0)
                redeliver_stop(s); /* best effort: the stop's timeout still applies */
}

static int do_kill(struct shim *s, const struct proto_msg *req, struct err *e)
{
        int64_t signo = SIGKILL, all = 0;
        (void)proto_get_i64(req, PF_SIGNO, &signo);
        (void)proto_get_i64(req, PF_ALL, &all);
        if (signo <= 0 || signo >= NSIG)
                return err_set(e, ERR_INVALID, "bad signal %lld", (long long)signo);
        if (s->status == SHIM_EXITED)
                return 0; /* nothing to do, and the pid may be reused */
        /* The pid cannot be reused: the process is our child, reaped only by us. */
        if (all && s->cgroup) {
                if (rt_cgroup_kill_all(s->cgroup, (int)signo, e) < 0)
                        return err_wrap(e, "kill %s", s->opts->id);
                return 0;
        }
        /* Asked before the kill: a handler installed in between only makes
         * the signal arrive twice, which a handler must bear anyway. */
        bool dropped = rt_signal_dropped(s->pid, (int)signo);
        if (kill(s->pid, (int)signo) < 0 && errno != ESRCH)
                return err_make(e, errno, "kill %s (pid %d)", s->opts->id, (int)s->pid);
        if (dropped)
                redeliver_arm(s, (int)signo);
        else if (signo == SIGKILL)
                redeliver_stop(s);
        return 0;
}

static int do_wait(struct shim *s, struct ctl_conn *c, const struct proto_msg *req, struct err *e)
{
        int64_t timeout_ms = -1;
        (void)proto_get_i64(req, PF_TIMEOUT_MS, &timeout_ms);
        if (s->status == SHIM_EXITED) {
                reply_state(s, c);
                return 0;
        }
        if (timeout_ms == 0)
                return err_set(e, ERR_DEADLINE, "container %s still running", s->opts->id);
        if (timeout_ms > 0) {
                c->timer.fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
                c->timer.fn = on_wait_timer;
                struct itimerspec its = {
                        .it_value = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000}};
                if (c->timer.fd < 0 || timerfd_settime(c->timer.fd, 0, &its, NULL) < 0 ||
                    shim_watch_add(s, &c->timer, EPOLLIN) < 0) {
                        int saved = errno;
                        shim_watch_close(s, &c->timer);
                        return err_make(e, saved, "wait timer");
                }
        }
        c->pending = OP_WAIT;
        return 0;
}

static int do_update(struct shim *s, const struct proto_msg *req, struct err *e)
{
        const char *d;
        uint32_t n;
        if (!proto_get(req, PF_RESOURCES, &d, &n))
                return err_set(e, ERR_INVALID, "update %s: no spec", s->opts->id);
        if (s->cgroup == NULL)
                return err_set(e, ERR_PRECONDITION, "container %s has no cgroup", s->opts->id);
        struct rt_spec *spec = rt_spec_from_json(d, n, e);
        if (spec == NULL)
                return err_wrap(e, "update %s", s->opts->id);
        int r = rt_cgroup_update(s->cgroup, &spec->resources, e);
        rt_spec_free(spec);
        return r < 0 ? err_wrap(e, "update %s", s->opts->id) : 0;
}

/* A created container that never ran: kill it and record that. */
static void discard_created(struct shim *s)
{
        if (s->status != SHIM_CREATED)
                return;
        /* rt_container_free kills, reaps and removes the cgroup itself;
         * an OCI runtime's delete --force kills. */
        rt_container_free(steal_ptr(&s->ctr));
        shim_oci_delete(s);
        free(steal_ptr(&s->cgroup));
        shim_exit_record(s, SIGKILL); /* a wait status: killed by SIGKILL */
}

static int do_shutdown(struct shim *s, struct err *e)
{
        if (s->status == SHIM_RUNNING)
                return err_set(e, ERR_PRECONDITION, "container %s is still running", s->opts->id);
        s->shutdown = true;
        return 0;
}

static void dispatch(struct shim *s, struct ctl_conn *c, const struct proto_msg *req)
{
        cleanup_err struct err e = ERR_INIT;
        struct sbuf out = {0};
        int r = 0;
        switch (req->hdr.op) {
        case OP_START:
                r = do_start(s, &out, &e);
                break;
        case OP_STATE:
                reply_state(s, c);
                return;
        case OP_KILL:
                r = do_kill(s, req, &e);
                break;
        case OP_WAIT:
                r = do_wait(s, c, req, &e);
                if (r == 0)
                        return; /* replied, or pending */
                break;
        case OP_REOPEN_LOG:
                r = shim_log_reopen(&s->log, &e);
                break;
        case OP_EXEC:
                r = shim_exec_begin(s, c, req, &e);
                if (r == 0)
                        return; /* the reply comes when it exits */
                break;
        case OP_UPDATE:
                r = do_update(s, req, &e);
                break;
        case OP_SHUTDOWN:
                r = do_shutdown(s, &e);
                if (r == 0) {
                        shim_reply(s, c, NULL, NULL);
                        if (s->status == SHIM_CREATED)
                                discard_created(s);
                        if (s->status == SHIM_EXITED)
                                s->quit = true;
                        return;
                }
                break;
        default:
                r = err_set(&e, ERR_UNIMPLEMENTED, "shim: unknown request %u", req->hdr.op);
                break;
        }
        shim_reply(s, c, r < 0 ? &e : NULL, &out);
        sbuf_free(&out);
}

static void on_conn(struct shim *s, struct watch *w, uint32_t events)
{
        struct ctl_conn *c = (struct ctl_conn *)w;
        if (!(events & EPOLLIN)) {
                conn_close(s, c);
                return;
        }
        struct proto_msg req;
        cleanup_err struct err e = ERR_INIT;
        if (proto_recv(c->w.fd, REQUEST_RECV_TIMEOUT_MS, &req, &e) < 0) {
                conn_close(s, c); /* EOF: the client left */
                return;
        }
        if (c->pending != OP_REPLY) {
                err_set(&e, ERR_UNAVAILABLE, "shim connection busy with another request");
                shim_reply(s, c, &e, NULL);
        } else {
                dispatch(s, c, &req);
        }
        proto_msg_clear(&req);
}

static void on_ctl_accept(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        for (;;) {
                int fd = accept4(w->fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                struct timeval tv = {.tv_sec = REPLY_SEND_TIMEOUT_S};
                (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                /* Blocking for sends (bounded above); reads happen only when epoll says so. */
                struct ctl_conn *c = xzalloc(sizeof(*c));
                c->w.fd = fd;
                c->w.fn = on_conn;
                c->timer.fd = -1;
                c->pending = OP_REPLY;
                c->next = s->conns;
                s->conns = c;
                if (shim_watch_add(s, &c->w, EPOLLIN) < 0)
                        conn_close(s, c);
                /* The listening socket is non-blocking: accept4 ends with EAGAIN. */
        }
}

/* ---------- signals ---------- */

#define SHIM_SIGNALS_INIT(set)                                                                               \
        do {                                                                                                 \
                sigemptyset(set);                                                                            \
                sigaddset(set, SIGCHLD);                                                                     \
                sigaddset(set, SIGTERM);                                                                     \
                sigaddset(set, SIGINT);                                                                      \
        } while (0)

/* The one piece of state outside `struct shim`: a signal handler has no
 * other place to put what it saw. Only used inside a fork window. */
static volatile sig_atomic_t window_seen[3];

static void window_handler(int sig)
{
        window_seen[sig == SIGCHLD ? 0 : sig == SIGTERM ? 1 : 2] = 1;
}

/* Children made by runtime/ inherit our signal mask across execve, and a
 * container must not start with SIGCHLD/SIGTERM/SIGINT blocked. So the
 * calls that fork run with them unblocked, caught by a handler (reset to
 * the default by execve in the child); what arrives meanwhile is raised
 * again once they are blocked, for the signalfd to see. */
void shim_fork_window_open(void)
{
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = window_handler;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        for (int i = 0; i < 3; i++)
                window_seen[i] = 0;
        (void)sigaction(SIGCHLD, &sa, NULL);
        (void)sigaction(SIGTERM, &sa, NULL);
        (void)sigaction(SIGINT, &sa, NULL);
        sigset_t set;
        SHIM_SIGNALS_INIT(&set);
        (void)sigprocmask(SIG_UNBLOCK, &set, NULL);
}

void shim_fork_window_close(void)
{
        sigset_t set;
        SHIM_SIGNALS_INIT(&set);
        (void)sigprocmask(SIG_BLOCK, &set, NULL);
        signal(SIGCHLD, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_DFL);
        const int sigs[3] = {SIGCHLD, SIGTERM, SIGINT};
        for (int i = 0; i < 3; i++)
                if (window_seen[i])
                        (void)raise(sigs[i]); /* blocked: pending for the signalfd */
}

/* The OOM counter is read as it moves, not only at exit: under the systemd
 * driver the container's scope (and its memory.events) is gone as soon as
 * systemd sees the cgroup empty, which can be before the shim reaps. */
static void on_oom_event(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        char buf[4096];
        while (read(w->fd, buf, sizeof(buf)) > 0)
                ;
        uint64_t kills = 0;
        if (s->cgroup && rt_cgroup_oom_kills(s->cgroup, &kills, NULL) == 0 && kills > s->oom_base)
                s->oom_killed = true;
}

static void on_signal(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        struct signalfd_siginfo si;
        while (read(w->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                switch (si.ssi_signo) {
                case SIGCHLD:
                        shim_reap(s);
                        break;
                case SIGTERM:
                case SIGINT:
                        /* Stop gracefully: pass it on, leave once the exit is recorded. */
                        log_info("shim", "signal %u: stopping %s", si.ssi_signo, s->opts->id);
                        s->shutdown = true;
                        if (s->status == SHIM_RUNNING)
                                (void)kill(s->pid, SIGTERM);
                        else if (s->status == SHIM_CREATED)
                                discard_created(s);
                        else
                                s->quit = true;
                        break;
                default:
                        break;
                }
        }
}

/* ---------- life ---------- */

static void report(int fd, const struct err *status, pid_t pid)
{
        if (fd < 0)
                return;
        struct sbuf body = {0}, msg = {0};
        if (status == NULL) {
                proto_put_i64(&body, PF_PID, pid);
                proto_put_i64(&body, PF_SHIM_PID, getpid());
        }
        proto_serialize(&msg, OP_REPORT, status, &body);
        (void)fd_write_all(fd, msg.buf, msg.len);
        sbuf_free(&body);
        sbuf_free(&msg);
}

static int setup(struct shim *s, struct err *e)
{
        sigset_t set;
        SHIM_SIGNALS_INIT(&set);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return err_make(e, errno, "sigprocmask");
        signal(SIGPIPE, SIG_IGN);
        /* Processes the container leaves behind (exec's children, a pid
         * namespace shared with the pod) are reparented to us and reaped. */
        (void)prctl(PR_SET_CHILD_SUBREAPER, 1);

        s->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (s->epfd < 0)
                return err_make(e, errno, "epoll_create1");
        s->sig.fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (s->sig.fd < 0)
                return err_make(e, errno, "signalfd");
        s->sig.fn = on_signal;
        if (shim_watch_add(s, &s->sig, EPOLLIN) < 0)
                return err_make(e, errno, "watch signalfd");

        if (mkdir_p(s->opts->state_dir, 0700, e) < 0)
                return -1;
        cleanup_free char *spec_path = path_join(s->opts->bundle, "spec.json");
        s->spec = rt_spec_read_file(spec_path, e);
        if (s->spec == NULL)
                return -1;
        if (shim_log_open(&s->log, s->opts->log_path, e) < 0)
                return -1;

        int child[3];
        int r = shim_io_setup(s, child, e);
        if (r == 0 && s->opts->runtime_path) {
                r = shim_oci_create(s, child, e);
        } else if (r == 0) {
                struct rt_stdio stdio = {.in = child[0], .out = child[1], .err = child[2]};
                shim_fork_window_open();
                r = rt_container_create(s->spec, &stdio, &s->ctr, e);
                shim_fork_window_close();
        }
        for (int i = 0; i < 3; i++)
                if (child[i] >= 0)
                        close(child[i]);
        if (r < 0)
                return -1;
        s->created_ns = time_now_ns();
        s->status = SHIM_CREATED;
        cleanup_free char *oci_cg = NULL;
        if (s->ctr)
                s->pid = rt_container_pid(s->ctr);
        else if (s->spec->cgroup_path)
                (void)rt_cgroup_resolve(s->spec->cgroup_path, &oci_cg, NULL);
        const char *cg = s->ctr ? rt_container_cgroup(s->ctr) : oci_cg;
        if (cg) {
                s->cgroup = xstrdup(cg);
                if (rt_cgroup_oom_kills(s->cgroup, &s->oom_base, NULL) < 0)
                        s->oom_base = 0;
                s->oom.fd = rt_cgroup_oom_fd(s->cgroup, NULL);
                s->oom.fn = on_oom_event;
                if (s->oom.fd >= 0 && shim_watch_add(s, &s->oom, EPOLLIN) < 0) {
                        close(s->oom.fd);
                        s->oom.fd = -1;
                }
        }

        s->ctl.fd = proto_listen(s->opts->state_dir, SHIM_CTL_SOCKET, e);
        if (s->ctl.fd < 0)
                return -1;
        s->ctl.fn = on_ctl_accept;
        if (shim_watch_add(s, &s->ctl, EPOLLIN) < 0)
                return err_make(e, errno, "watch control socket");
        if (shim_attach_listen(s, e) < 0)
                return -1;
        if (shim_io_watch(s, e) < 0)
                return -1;

        cleanup_free char *pidfile = path_join(s->opts->state_dir, SHIM_PID_FILE);
        cleanup_free char *pidtxt = xasprintf("%d\n", (int)getpid());
        cleanup_close int pfd = open(pidfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (pfd >= 0)
                (void)fd_write_all(pfd, pidtxt, strlen(pidtxt));
        return 0;
}

/* The shim idles for days in a few pages of code, but the kernel maps
 * file pages around every fault (fault-around, 64 KiB), so most of the
 * binary ends up counted in its RSS after set-up. Read-only segments can be
 * unmapped and faulted back in on use: do that after the one-time work
 * (create, start). Only this process's page-table entries go; the page
 * cache and all data stay. */
static int trim_segments(struct dl_phdr_info *info, size_t size, void *data)
{
        (void)size;
        (void)data;
        long pg = sysconf(_SC_PAGESIZE);
        for (int i = 0; i < info->dlpi_phnum; i++) {
                const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
                if (ph->p_type != PT_LOAD || (ph->p_flags & PF_W))
                        continue;
                uintptr_t start = (info->dlpi_addr + ph->p_vaddr) & ~(uintptr_t)(pg - 1);
                uintptr_t end = (info->dlpi_addr + ph->p_vaddr + ph->p_memsz + (uintptr_t)pg - 1) &
                                ~(uintptr_t)(pg - 1);
                (void)madvise((void *)start, end - start, MADV_DONTNEED);
        }
        return 1; /* the main program only */
}

void shim_trim_text(void)
{
        (void)dl_iterate_phdr(trim_segments, NULL);
}

static void loop(struct shim *s)
{
        while (!s->quit) {
                /* One event at a time: a handler may free another watch
                 * (a dropped attach client, a finished exec), and a second
                 * event from the same batch would then point at freed memory. */
                struct epoll_event ev;
                int n = epoll_wait(s->epfd, &ev, 1, -1);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error("shim", "epoll_wait: %s", strerror(errno));
                        return;
                }
                if (n == 1) {
                        struct watch *w = ev.data.ptr;
                        w->fn(s, w, ev.events);
                }
        }
}

static void unlink_sockets(const struct shim *s)
{
        const char *names[] = {SHIM_CTL_SOCKET, SHIM_ATTACH_SOCKET};
        for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
                cleanup_free char *p = path_join(s->opts->state_dir, names[i]);
                (void)unlink(p);
        }
}

static void teardown(struct shim *s)
{
        shim_exec_cleanup(s);
        shim_attach_cleanup(s);
        while (s->conns)
                conn_close(s, s->conns);
        shim_watch_close(s, &s->ctl);
        unlink_sockets(s);
        shim_oci_delete(s);
        if (s->cgroup) {
                cleanup_err struct err e = ERR_INIT;
                if (rt_cgroup_remove(s->cgroup, 2000, &e) < 0)
                        log_warn("shim", "remove cgroup %s: %s", s->cgroup, e.msg);
        }
        /* Before start this kills the child; after, it frees the handle. */
        rt_container_free(steal_ptr(&s->ctr));
        free(steal_ptr(&s->cgroup));
        rt_user_clear(&s->user);
        shim_io_cleanup(s);
        shim_log_close(&s->log);
        rt_spec_free(steal_ptr(&s->spec));
        shim_watch_close(s, &s->redeliver);
        shim_watch_close(s, &s->oom);
        shim_watch_close(s, &s->sig);
        if (s->epfd >= 0)
                close(s->epfd);
        s->epfd = -1;
}

int shim_run(const struct shim_opts *opts, int report_fd)
{
        struct shim s;
        memset(&s, 0, sizeof(s));
        s.opts = opts;
        s.epfd = -1;
        s.sig.fd = s.ctl.fd = s.attach.fd = s.redeliver.fd = s.oom.fd = -1;
        s.out.w.fd = s.err.w.fd = s.in.fd = -1;
        s.pty = -1;
        s.log.fd = -1;
        s.pid = -1;

        /* The report pipe must not leak into the container: shim_spawn reads it to EOF. */
        if (report_fd >= 0)
                (void)fcntl(report_fd, F_SETFD, FD_CLOEXEC);
        cleanup_err struct err e = ERR_INIT;
        if (setup(&s, &e) < 0) {
                report(report_fd, &e, -1);
                if (report_fd >= 0)
                        close(report_fd);
                log_error("shim", "%s", e.msg);
                teardown(&s);
                return 1;
        }
        report(report_fd, NULL, s.pid);
        if (report_fd >= 0)
                close(report_fd);
        log_debug("shim", "serving id=%s pid=%d", opts->id, (int)s.pid);
        shim_trim_text();
        loop(&s);
        teardown(&s);
        return 0;
}
