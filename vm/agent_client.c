/* The host side of the agent protocol: one request at a time, answered by
 * id; stream frames that arrive meanwhile go to the output callback. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>

#include "vm/frame-internal.h"
#include "vm/vm.h"

/* A call sent with vm_agent_*_async whose reply is still owed. */
struct pending {
        uint64_t id;
        int body_case; /* the reply body expected */
        vm_reply_fn *fn;
        void *arg;
        struct pending *next;
};

struct vm_agent {
        int fd;
        uint64_t next_id;
        bool broken;
        struct frame_reader rd;
        vm_output_fn *out_fn;
        void *out_arg;
        vm_conn_fn *conn_fn;
        void *conn_arg;
        vm_credit_fn *credit_fn;
        void *credit_arg;
        struct pending *pending;
};

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

struct vm_agent *vm_agent_from_fd(int fd)
{
        struct vm_agent *a = xzalloc(sizeof(*a));
        a->fd = fd;
        a->next_id = 1;
        return a;
}

int vm_agent_connect(const char *path, int timeout_ms, struct vm_agent **out, struct err *e)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(path) >= sizeof(sa.sun_path))
                return err_set(e, ERR_INVALID, "agent socket path %s is too long", path);
        memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked above */
        int64_t deadline = now_ms() + timeout_ms;
        for (;;) {
                cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return err_make(e, errno, "socket");
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        *out = vm_agent_from_fd(steal_fd(&fd));
                        return 0;
                }
                int er = errno;
                if (now_ms() >= deadline)
                        return err_set(e, ERR_DEADLINE, "connect to agent at %s: %s (after %d ms)", path,
                                       strerror(er), timeout_ms);
                struct timespec ts = {0, 10 * 1000000};
                nanosleep(&ts, NULL);
        }
}

void vm_agent_free(struct vm_agent *a)
{
        if (!a)
                return;
        if (a->fd >= 0)
                close(a->fd);
        frame_reader_free(&a->rd);
        while (a->pending) {
                struct pending *p = a->pending;
                a->pending = p->next;
                free(p);
        }
        free(a);
}

int vm_agent_fd(const struct vm_agent *a)
{
        return a->fd;
}

void vm_agent_set_output(struct vm_agent *a, vm_output_fn *fn, void *arg)
{
        a->out_fn = fn;
        a->out_arg = arg;
}

void vm_agent_set_conn_output(struct vm_agent *a, vm_conn_fn *fn, void *arg)
{
        a->conn_fn = fn;
        a->conn_arg = arg;
}

static void deliver(struct vm_agent *a, const AgStream *s)
{
        if (s->credit && a->credit_fn)
                a->credit_fn(a->credit_arg, s->container_id, s->exec_id, s->conn_id, s->credit);
        if (s->credit && !s->data.len && !s->eof && !s->reset)
                return; /* a credit alone */
        if (s->conn_id) {
                if (a->conn_fn)
                        a->conn_fn(a->conn_arg, s->conn_id, s->data.data, s->data.len, s->eof, s->reset);
                return;
        }
        if (a->out_fn)
                a->out_fn(a->out_arg, s->container_id, s->exec_id, (int)s->kind, s->data.data, s->data.len,
                          s->eof);
}

static int broken(struct vm_agent *a, struct err *e)
{
        (void)a;
        return err_set(e, ERR_UNAVAILABLE, "agent connection is broken after an earlier error");
}

/* A reply to an async call: hand it to its callback. True when it was one. */
static bool deliver_async(struct vm_agent *a, const AgResponse *r)
{
        for (struct pending **pp = &a->pending; *pp; pp = &(*pp)->next) {
                struct pending *p = *pp;
                if (p->id != r->id)
                        continue;
                *pp = p->next;
                struct vm_agent_reply rep = {.error_kind = r->error_kind, .error = r->error};
                if (!r->error_kind && (int)r->body_case != p->body_case) {
                        rep.error_kind = ERR_DATA_LOSS;
                        rep.error = "malformed agent frame: reply without its body";
                } else if (!r->error_kind && r->body_case == CORRAL__AGENT__V1__RESPONSE__BODY_WAIT) {
                        rep.exit_code = r->wait->exit_code;
                        rep.signal = r->wait->signal;
                        rep.finished_ns = r->wait->finished_ns;
                        rep.oom_killed = r->wait->oom_killed;
                } else if (!r->error_kind && r->body_case == CORRAL__AGENT__V1__RESPONSE__BODY_EXEC) {
                        rep.exit_code = r->exec->exit_code;
                        rep.out = r->exec->stdout.data;
                        rep.out_len = r->exec->stdout.len;
                        rep.err = r->exec->stderr.data;
                        rep.err_len = r->exec->stderr.len;
                        rep.timed_out = r->exec->timed_out;
                }
                if (p->fn)
                        p->fn(p->arg, &rep);
                free(p);
                return true;
        }
        return false;
}

/* Dispatch every whole frame already in the buffer: stream data to the
 * output callbacks, replies to async calls. */
static int drain(struct vm_agent *a, struct err *e)
{
        for (;;) {
                AgFrame *f = NULL;
                cleanup_err struct err fe = ERR_INIT;
                int r = frame_reader_next(&a->rd, &f, &fe);
                if (r < 0) {
                        a->broken = true;
                        err_move(e, &fe);
                        return -1;
                }
                if (r == 0)
                        return 0;
                if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM)
                        deliver(a, f->stream);
                else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_RESPONSE && f->response->id)
                        (void)deliver_async(a, f->response); /* else a late answer: drop */
                frame_free(f);
        }
}

/* Read frames until one is a response to `id` (returned), or the deadline. */
static AgFrame *wait_response(struct vm_agent *a, uint64_t id, int64_t deadline, struct err *e)
{
        for (;;) {
                AgFrame *f = NULL;
                cleanup_err struct err fe = ERR_INIT;
                int r = frame_reader_next(&a->rd, &f, &fe);
                if (r < 0) {
                        a->broken = true;
                        err_move(e, &fe);
                        return NULL;
                }
                if (r > 0) {
                        if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_STREAM) {
                                deliver(a, f->stream);
                        } else if (f->kind_case == CORRAL__AGENT__V1__FRAME__KIND_RESPONSE) {
                                if (f->response->id == id)
                                        return f;
                                if (f->response->id && deliver_async(a, f->response)) {
                                        frame_free(f);
                                        continue;
                                }
                                if (f->response->id == 0 && f->response->error_kind) {
                                        /* The agent could not parse something we sent. */
                                        err_set(e, ERR_INTERNAL, "agent rejected a frame: %s",
                                                f->response->error);
                                        frame_free(f);
                                        return NULL;
                                }
                                /* A late answer to an abandoned call: drop. */
                        } else {
                                a->broken = true;
                                err_set(e, ERR_DATA_LOSS, "malformed agent frame: unexpected frame kind %d",
                                        (int)f->kind_case);
                                frame_free(f);
                                return NULL;
                        }
                        frame_free(f);
                        continue;
                }
                int left = -1;
                if (deadline >= 0) {
                        int64_t l = deadline - now_ms();
                        if (l <= 0) {
                                err_set(e, ERR_DEADLINE, "agent did not answer in time");
                                return NULL;
                        }
                        left = (int)l;
                }
                struct pollfd p = {.fd = a->fd, .events = POLLIN};
                int pr = poll(&p, 1, left);
                if (pr < 0 && errno != EINTR) {
                        err_make(e, errno, "poll agent");
                        return NULL;
                }
                if (pr <= 0)
                        continue;
                ssize_t n = frame_reader_fill(&a->rd, a->fd, e);
                if (n == 0) {
                        a->broken = true;
                        err_set(e, ERR_UNAVAILABLE, "agent closed the connection");
                        return NULL;
                }
                if (n < 0 && e && e->msg) {
                        a->broken = true;
                        return NULL;
                }
        }
}

/* Send `q` (id assigned here), wait for the matching response; the agent's
 * own error becomes ours. Caller frees the returned frame. */
static AgFrame *call(struct vm_agent *a, AgRequest *q, int timeout_ms, const char *what, struct err *e)
{
        if (a->broken) {
                broken(a, e);
                return NULL;
        }
        int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
        q->id = a->next_id++;
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_REQUEST;
        f.request = q;
        if (frame_write(a->fd, &f, timeout_ms, e) < 0) {
                a->broken = true;
                err_wrap(e, "agent %s", what);
                return NULL;
        }
        AgFrame *r = wait_response(a, q->id, deadline, e);
        if (!r) {
                err_wrap(e, "agent %s", what);
                return NULL;
        }
        /* Frames that came in the same read as the reply (say, the Wait
         * reply of a container this call just killed) would otherwise sit
         * in the buffer with the fd no longer readable: a caller's epoll
         * would never see them. The reply is ours whatever a drain error. */
        cleanup_err struct err de = ERR_INIT;
        if (drain(a, &de) < 0)
                log_debug("vm", "agent: after %s: %s", what, de.msg);
        if (r->response->error_kind) {
                int k = r->response->error_kind;
                err_set(e, k > 0 && k <= ERR_UNAUTHENTICATED ? (enum err_kind)k : ERR_INTERNAL,
                        "agent %s: %s", what, r->response->error);
                frame_free(r);
                return NULL;
        }
        return r;
}

static int call_void(struct vm_agent *a, AgRequest *q, int timeout_ms, const char *what, struct err *e)
{
        AgFrame *r = call(a, q, timeout_ms, what, e);
        if (!r)
                return -1;
        frame_free(r);
        return 0;
}

static AgFrame *expect(AgFrame *r, int body_case, const char *what, struct err *e)
{
        if (r && (int)r->response->body_case != body_case) {
                frame_free(r);
                err_set(e, ERR_DATA_LOSS, "malformed agent frame: %s reply without its body", what);
                return NULL;
        }
        return r;
}

int vm_agent_ping(struct vm_agent *a, int timeout_ms, struct vm_agent_info *out, struct err *e)
{
        Corral__Agent__V1__PingRequest p = CORRAL__AGENT__V1__PING_REQUEST__INIT;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_PING;
        q.ping = &p;
        AgFrame *r =
                expect(call(a, &q, timeout_ms, "ping", e), CORRAL__AGENT__V1__RESPONSE__BODY_PING, "ping", e);
        if (!r)
                return -1;
        if (r->response->ping == NULL) {
                frame_free(r);
                return err_set(e, ERR_DATA_LOSS, "malformed agent frame: empty ping reply");
        }
        if (out) {
                out->agent_version = xstrdup(r->response->ping->agent_version);
                out->kernel_release = xstrdup(r->response->ping->kernel_release);
                out->uptime_ms = r->response->ping->uptime_ms;
        }
        frame_free(r);
        return 0;
}

void vm_agent_info_clear(struct vm_agent_info *i)
{
        free(i->agent_version);
        free(i->kernel_release);
        memset(i, 0, sizeof(*i));
}

int vm_agent_setup_network(struct vm_agent *a, const struct vm_net_config *n, int timeout_ms, struct err *e)
{
        Corral__Agent__V1__SetupNetworkRequest s = CORRAL__AGENT__V1__SETUP_NETWORK_REQUEST__INIT;
        s.interface = (char *)(n->ifname ? n->ifname : "eth0");
        s.mac = (char *)(n->mac ? n->mac : "");
        s.hostname = (char *)(n->hostname ? n->hostname : "");
        s.mtu = n->mtu;
        s.n_addresses = n->addresses ? strv_len((char *const *)n->addresses) : 0;
        s.addresses = (char **)n->addresses;
        cleanup_free Corral__Agent__V1__Route *routes = xcalloc(n->n_routes + 1, sizeof(*routes));
        cleanup_free Corral__Agent__V1__Route **rp = xcalloc(n->n_routes + 1, sizeof(*rp));
        for (size_t i = 0; i < n->n_routes; i++) {
                corral__agent__v1__route__init(&routes[i]);
                routes[i].destination = (char *)(n->routes[i].dst ? n->routes[i].dst : "");
                routes[i].gateway = (char *)(n->routes[i].gw ? n->routes[i].gw : "");
                rp[i] = &routes[i];
        }
        s.n_routes = n->n_routes;
        s.routes = rp;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_SETUP_NETWORK;
        q.setup_network = &s;
        return call_void(a, &q, timeout_ms, "setup network", e);
}

int vm_agent_mount_share(struct vm_agent *a, const char *tag, bool readonly, int timeout_ms, struct err *e)
{
        return vm_agent_mount_share_fs(a, tag, "9p", readonly, timeout_ms, e);
}

int vm_agent_mount_share_fs(struct vm_agent *a, const char *tag, const char *fstype, bool readonly,
                            int timeout_ms, struct err *e)
{
        Corral__Agent__V1__MountShareRequest m = CORRAL__AGENT__V1__MOUNT_SHARE_REQUEST__INIT;
        m.tag = (char *)tag;
        m.fstype = (char *)fstype;
        m.readonly = readonly;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_MOUNT_SHARE;
        q.mount_share = &m;
        return call_void(a, &q, timeout_ms, "mount share", e);
}

int vm_agent_create_container(struct vm_agent *a, const char *id, const char *spec_json,
                              const char *share_tag, int timeout_ms, struct err *e)
{
        return vm_agent_create_container_stdin(a, id, spec_json, share_tag, false, 0, timeout_ms, e);
}

int vm_agent_create_container_stdin(struct vm_agent *a, const char *id, const char *spec_json,
                                    const char *share_tag, bool stdin_open, uint32_t stdin_window,
                                    int timeout_ms, struct err *e)
{
        Corral__Agent__V1__CreateContainerRequest c = CORRAL__AGENT__V1__CREATE_CONTAINER_REQUEST__INIT;
        c.container_id = (char *)id;
        c.spec_json = (char *)spec_json;
        c.share_tag = (char *)(share_tag ? share_tag : "");
        c.stdin = stdin_open;
        c.stdin_window = stdin_window;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_CREATE_CONTAINER;
        q.create_container = &c;
        return call_void(a, &q, timeout_ms, "create container", e);
}

int vm_agent_update_resources(struct vm_agent *a, const char *id, const char *spec_json, int timeout_ms,
                              struct err *e)
{
        Corral__Agent__V1__UpdateResourcesRequest u = CORRAL__AGENT__V1__UPDATE_RESOURCES_REQUEST__INIT;
        u.container_id = (char *)id;
        u.spec_json = (char *)spec_json;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_UPDATE_RESOURCES;
        q.update_resources = &u;
        return call_void(a, &q, timeout_ms, "update resources", e);
}

int vm_agent_sysctls(struct vm_agent *a, char *const *keys, char *const *values, size_t n, int timeout_ms,
                     struct err *e)
{
        cleanup_free Corral__Agent__V1__Sysctl *kv = xcalloc(n + 1, sizeof(*kv));
        cleanup_free Corral__Agent__V1__Sysctl **ptrs = xcalloc(n + 1, sizeof(*ptrs));
        for (size_t i = 0; i < n; i++) {
                corral__agent__v1__sysctl__init(&kv[i]);
                kv[i].key = keys[i];
                kv[i].value = values[i];
                ptrs[i] = &kv[i];
        }
        Corral__Agent__V1__SysctlRequest s = CORRAL__AGENT__V1__SYSCTL_REQUEST__INIT;
        s.n_sysctls = n;
        s.sysctls = ptrs;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_SYSCTL;
        q.sysctl = &s;
        return call_void(a, &q, timeout_ms, "sysctls", e);
}

int vm_agent_start_container(struct vm_agent *a, const char *id, int timeout_ms, struct vm_agent_user *out,
                             struct err *e)
{
        Corral__Agent__V1__StartContainerRequest s = CORRAL__AGENT__V1__START_CONTAINER_REQUEST__INIT;
        s.container_id = (char *)id;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_START_CONTAINER;
        q.start_container = &s;
        if (out)
                memset(out, 0, sizeof(*out));
        AgFrame *r = call(a, &q, timeout_ms, "start container", e);
        if (!r)
                return -1;
        /* An older agent answers without the body. */
        const Corral__Agent__V1__StartContainerResponse *u =
                r->response->body_case == CORRAL__AGENT__V1__RESPONSE__BODY_START_CONTAINER
                        ? r->response->start_container
                        : NULL;
        if (out && u && u->has_user) {
                out->has_user = true;
                out->uid = u->uid;
                out->gid = u->gid;
                out->groups = xcalloc(u->n_groups ? u->n_groups : 1, sizeof(uint32_t));
                memcpy(out->groups, u->groups, u->n_groups * sizeof(uint32_t));
                out->n_groups = u->n_groups;
        }
        frame_free(r);
        return 0;
}

int vm_agent_signal(struct vm_agent *a, const char *id, int sig, int timeout_ms, struct err *e)
{
        Corral__Agent__V1__SignalRequest s = CORRAL__AGENT__V1__SIGNAL_REQUEST__INIT;
        s.container_id = (char *)id;
        s.signal = sig;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_SIGNAL;
        q.signal = &s;
        return call_void(a, &q, timeout_ms, "signal", e);
}

int vm_agent_wait(struct vm_agent *a, const char *id, int timeout_ms, int *exit_code, struct err *e)
{
        Corral__Agent__V1__WaitRequest w = CORRAL__AGENT__V1__WAIT_REQUEST__INIT;
        w.container_id = (char *)id;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_WAIT;
        q.wait = &w;
        AgFrame *r =
                expect(call(a, &q, timeout_ms, "wait", e), CORRAL__AGENT__V1__RESPONSE__BODY_WAIT, "wait", e);
        if (!r)
                return -1;
        if (exit_code)
                *exit_code = r->response->wait ? r->response->wait->exit_code : -1;
        frame_free(r);
        return 0;
}

int vm_agent_remove_container(struct vm_agent *a, const char *id, int timeout_ms, struct err *e)
{
        Corral__Agent__V1__RemoveContainerRequest rc = CORRAL__AGENT__V1__REMOVE_CONTAINER_REQUEST__INIT;
        rc.container_id = (char *)id;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_REMOVE_CONTAINER;
        q.remove_container = &rc;
        return call_void(a, &q, timeout_ms, "remove container", e);
}

int vm_agent_exec(struct vm_agent *a, const char *id, char *const *args, int timeout_ms, char **out,
                  char **err_out, int *exit_code, struct err *e)
{
        Corral__Agent__V1__ExecRequest x = CORRAL__AGENT__V1__EXEC_REQUEST__INIT;
        x.container_id = (char *)(id ? id : "");
        x.n_args = strv_len(args);
        x.args = (char **)args;
        /* The guest kills it at the deadline; we wait a little longer for
         * the answer that says so. */
        x.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_EXEC;
        q.exec = &x;
        AgFrame *r = expect(call(a, &q, timeout_ms > 0 ? timeout_ms + 2000 : -1, "exec", e),
                            CORRAL__AGENT__V1__RESPONSE__BODY_EXEC, "exec", e);
        if (!r)
                return err_wrap(e, "%s", args && args[0] ? args[0] : "(none)");
        Corral__Agent__V1__ExecResponse *er = r->response->exec;
        if (out)
                *out = xstrndup((const char *)er->stdout.data, er->stdout.len);
        if (err_out)
                *err_out = xstrndup((const char *)er->stderr.data, er->stderr.len);
        if (exit_code)
                *exit_code = er->exit_code;
        bool timed_out = er->timed_out;
        frame_free(r);
        if (timed_out)
                return err_set(e, ERR_DEADLINE, "exec %s: timed out after %d ms (killed)", args[0],
                               timeout_ms);
        return 0;
}

int vm_agent_stats(struct vm_agent *a, const char *id, int timeout_ms, struct vm_agent_stats *out,
                   struct err *e)
{
        Corral__Agent__V1__StatsRequest s = CORRAL__AGENT__V1__STATS_REQUEST__INIT;
        s.container_id = (char *)(id ? id : "");
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_STATS;
        q.stats = &s;
        AgFrame *r = expect(call(a, &q, timeout_ms, "stats", e), CORRAL__AGENT__V1__RESPONSE__BODY_STATS,
                            "stats", e);
        if (!r)
                return -1;
        Corral__Agent__V1__StatsResponse *st = r->response->stats;
        out->cpu_usage_ns = st->cpu_usage_ns;
        out->memory_usage = st->memory_usage;
        out->memory_total = st->memory_total;
        out->memory_available = st->memory_available;
        out->pids = st->pids;
        out->cpu_user_ns = st->cpu_user_ns;
        out->cpu_system_ns = st->cpu_system_ns;
        out->mem_usage = st->mem_usage;
        out->mem_rss = st->mem_rss;
        out->mem_cache = st->mem_cache;
        out->mem_mapped_file = st->mem_mapped_file;
        out->mem_max_usage = st->mem_max_usage;
        out->mem_failcnt = st->mem_failcnt;
        out->mem_limit = st->mem_limit;
        out->oom_kills = st->oom_kills;
        out->processes = st->processes;
        out->threads = st->threads;
        frame_free(r);
        return 0;
}

int vm_agent_shutdown(struct vm_agent *a, int timeout_ms, struct err *e)
{
        Corral__Agent__V1__ShutdownRequest s = CORRAL__AGENT__V1__SHUTDOWN_REQUEST__INIT;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_SHUTDOWN;
        q.shutdown = &s;
        return call_void(a, &q, timeout_ms, "shutdown", e);
}

int vm_agent_poll(struct vm_agent *a, int timeout_ms, struct err *e)
{
        if (a->broken)
                return broken(a, e);
        /* An id no request has: only stream frames get through. */
        cleanup_err struct err pe = ERR_INIT;
        AgFrame *f = wait_response(a, UINT64_MAX, timeout_ms < 0 ? -1 : now_ms() + timeout_ms, &pe);
        frame_free(f);
        if (err_is(&pe, ERR_DEADLINE))
                return 0;
        err_move(e, &pe);
        return -1;
}

/* ---------- asynchronous calls ---------- */

/* One StreamData frame out; a failed write breaks the connection. */
static int send_stream(struct vm_agent *a, AgStream *s, const char *what, struct err *e)
{
        if (a->broken)
                return broken(a, e);
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_STREAM;
        f.stream = s;
        if (frame_write(a->fd, &f, 10000, e) < 0) {
                a->broken = true;
                return err_wrap(e, "agent %s", what);
        }
        return 0;
}

static int send_async(struct vm_agent *a, AgRequest *q, int body_case, vm_reply_fn *fn, void *arg,
                      const char *what, struct err *e)
{
        if (a->broken)
                return broken(a, e);
        q->id = a->next_id++;
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_REQUEST;
        f.request = q;
        if (frame_write(a->fd, &f, 10000, e) < 0) {
                a->broken = true;
                return err_wrap(e, "agent %s", what);
        }
        struct pending *p = xzalloc(sizeof(*p));
        p->id = q->id;
        p->body_case = body_case;
        p->fn = fn;
        p->arg = arg;
        p->next = a->pending;
        a->pending = p;
        return 0;
}

int vm_agent_wait_async(struct vm_agent *a, const char *id, vm_reply_fn *fn, void *arg, struct err *e)
{
        Corral__Agent__V1__WaitRequest w = CORRAL__AGENT__V1__WAIT_REQUEST__INIT;
        w.container_id = (char *)id;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_WAIT;
        q.wait = &w;
        return send_async(a, &q, CORRAL__AGENT__V1__RESPONSE__BODY_WAIT, fn, arg, "wait", e);
}

int vm_agent_exec_async(struct vm_agent *a, const char *id, char *const *args, int timeout_ms,
                        vm_reply_fn *fn, void *arg, struct err *e)
{
        Corral__Agent__V1__ExecRequest x = CORRAL__AGENT__V1__EXEC_REQUEST__INIT;
        x.container_id = (char *)(id ? id : "");
        x.n_args = strv_len(args);
        x.args = (char **)args;
        x.timeout_ms = timeout_ms > 0 ? (uint32_t)timeout_ms : 0;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_EXEC;
        q.exec = &x;
        return send_async(a, &q, CORRAL__AGENT__V1__RESPONSE__BODY_EXEC, fn, arg, "exec", e);
}

int vm_agent_portforward_async(struct vm_agent *a, uint64_t conn_id, uint16_t port, uint32_t window,
                               vm_reply_fn *fn, void *arg, struct err *e)
{
        Corral__Agent__V1__PortForwardRequest pf = CORRAL__AGENT__V1__PORT_FORWARD_REQUEST__INIT;
        pf.conn_id = conn_id;
        pf.port = port;
        pf.window = window;
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_PORT_FORWARD;
        q.port_forward = &pf;
        return send_async(a, &q, CORRAL__AGENT__V1__RESPONSE__BODY__NOT_SET, fn, arg, "port-forward", e);
}

int vm_agent_conn_send(struct vm_agent *a, uint64_t conn_id, const void *data, size_t len, bool eof,
                       bool reset, struct err *e)
{
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = "";
        s.exec_id = "";
        s.conn_id = conn_id;
        s.data.data = (uint8_t *)data;
        s.data.len = len;
        s.eof = eof;
        s.reset = reset;
        return send_stream(a, &s, "stream data", e);
}

int vm_agent_exec_stream_async(struct vm_agent *a, const char *id, const char *exec_id, char *const *args,
                               const struct vm_stream_opts *o, vm_reply_fn *fn, void *arg, struct err *e)
{
        Corral__Agent__V1__ExecRequest x = CORRAL__AGENT__V1__EXEC_REQUEST__INIT;
        x.container_id = (char *)(id ? id : "");
        x.n_args = strv_len(args);
        x.args = (char **)args;
        x.interactive = true;
        x.exec_id = (char *)exec_id;
        if (o) {
                x.tty = o->tty;
                x.rows = o->rows;
                x.cols = o->cols;
                x.window = o->window;
        }
        AgRequest q = CORRAL__AGENT__V1__REQUEST__INIT;
        q.body_case = CORRAL__AGENT__V1__REQUEST__BODY_EXEC;
        q.exec = &x;
        return send_async(a, &q, CORRAL__AGENT__V1__RESPONSE__BODY_EXEC, fn, arg, "exec", e);
}

int vm_agent_exec_send(struct vm_agent *a, const char *id, const char *exec_id, const void *data, size_t len,
                       bool eof, bool kill, struct err *e)
{
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = (char *)(id ? id : "");
        s.exec_id = (char *)exec_id;
        s.kind = CORRAL__AGENT__V1__STREAM_KIND__STDIN;
        s.data.data = (uint8_t *)data;
        s.data.len = len;
        s.eof = eof;
        s.reset = kill;
        return send_stream(a, &s, "exec stdin", e);
}

void vm_agent_cancel_async(struct vm_agent *a, void *arg)
{
        for (struct pending *p = a->pending; p; p = p->next)
                if (p->arg == arg)
                        p->fn = NULL; /* the reply is still read, and dropped */
}

int vm_agent_dispatch(struct vm_agent *a, struct err *e)
{
        if (a->broken)
                return broken(a, e);
        cleanup_err struct err fe = ERR_INIT;
        ssize_t n = frame_reader_fill(&a->rd, a->fd, &fe);
        if (n == 0) {
                a->broken = true;
                return err_set(e, ERR_UNAVAILABLE, "agent closed the connection");
        }
        if (n < 0 && fe.msg) {
                a->broken = true;
                err_move(e, &fe);
                return -1;
        }
        return drain(a, e);
}

/* ---------- resizes and flow control ---------- */

int vm_agent_resize(struct vm_agent *a, const char *id, const char *exec_id, uint16_t rows, uint16_t cols,
                    struct err *e)
{
        if (!rows || !cols)
                return 0; /* no size to set */
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = (char *)(id ? id : "");
        s.exec_id = (char *)(exec_id ? exec_id : "");
        s.kind = CORRAL__AGENT__V1__STREAM_KIND__STDIN;
        s.rows = rows;
        s.cols = cols;
        return send_stream(a, &s, "resize", e);
}

int vm_agent_credit(struct vm_agent *a, const char *id, const char *exec_id, uint64_t conn_id,
                    uint64_t credit, struct err *e)
{
        if (!credit)
                return 0;
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = (char *)(id ? id : "");
        s.exec_id = (char *)(exec_id ? exec_id : "");
        s.conn_id = conn_id;
        s.credit = credit;
        return send_stream(a, &s, "credit", e);
}

void vm_agent_set_credit(struct vm_agent *a, vm_credit_fn *fn, void *arg)
{
        a->credit_fn = fn;
        a->credit_arg = arg;
}
