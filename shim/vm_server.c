/* corral-shim vm: one process per VM pod sandbox (see shim.h).
 *
 * Boot: read <state>/vm.json, boot the VM (vm/: QEMU, KVM or TCG) with the
 * share <state>/share and the pod's tap, mount the share in the guest, give
 * the guest the pod's network, then report the VMM pid to shim_spawn.
 * Then one epoll loop, single-threaded (struct vm wants one thread):
 *   - the VM socket <state>/ctl: create container, info, stats, shutdown
 *   - one socket per container, <container state>/ctl: the container
 *     shim's requests, so corrald's container code works unchanged
 *   - the agent connection: container output (StreamData) into each
 *     container's CRI log (log.c), replies of async Wait / Exec
 *   - <state>/pf.sock and <state>/exec.sock: port-forward (vm_pf.c) and
 *     interactive exec (vm_exec.c) relayed through the agent; each
 *     container's <container state>/attach (vm_attach.c)
 *   - the VMM's pidfd: a VM that dies ends every container with reason
 *     VMDied (exit files written), <state>/vm-exit says why, and a wait
 *     pending on the VM socket (corrald's exit monitor keeps one) is
 *     answered: the pod's death reaches corrald as an event
 * Agent calls that are quick (create, start, signal, stats) are made
 * synchronously; Wait and Exec, which last, asynchronously. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <yajl/yajl_tree.h>

#include "runtime/runtime.h"
#include "shim/shim-internal.h"
#include "shim/vm-internal.h"
#include "vm/vm.h"

#define AGENT_CALL_MS 30000
#define RECV_MS       5000

struct vctr;

struct vconn {
        struct vwatch w;
        struct vctr *ctr;      /* NULL: the VM socket */
        enum proto_op pending; /* OP_WAIT / OP_EXEC owed, else OP_REPLY */
        int64_t deadline_ms;   /* pending wait: 0 = none */
        struct vconn *next;
};

struct vshim;

struct vctr {
        struct vshim *s;
        char *id, *state_dir;
        struct vwatch listen;
        struct vm_ctr_files files;
        struct vm_attach *att; /* its attach socket (vm_attach.c) */
        struct shim_log log;
        struct shim_state st;
        bool recorded;
        struct vctr *next;
};

struct vshim {
        const struct shim_opts *o;
        int ep;
        struct vwatch sig, listen, agentw, vmmw;
        struct vm *vm;
        struct vm_agent *a; /* NULL once the connection broke */
        struct vm_pf *pf;   /* port-forward relay (vm_pf.c) */
        struct vm_exec *ex; /* interactive exec relay (vm_exec.c) */
        char *share;
        char *kernel_release;
        struct vctr *ctrs;
        struct vconn *conns;
        bool vm_dead, quit;
        char vm_reason[160];
};

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

static int watch_add(struct vshim *s, struct vwatch *w)
{
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
        return epoll_ctl(s->ep, EPOLL_CTL_ADD, w->fd, &ev);
}

int vm_watch_listen(int ep, const char *dir, const char *name, struct vwatch *w, struct err *e)
{
        int fd = proto_listen_stream(dir, name, e);
        if (fd < 0)
                return -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int saved = errno;
                close(fd);
                return err_make(e, saved, "epoll");
        }
        w->fd = fd;
        return 0;
}

void vm_watch_mod(int ep, struct vwatch *w, uint32_t *cur, uint32_t events)
{
        if (events == *cur)
                return;
        struct epoll_event ev = {.events = events, .data.ptr = w};
        (void)epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
        *cur = events;
}

static void watch_del(struct vshim *s, struct vwatch *w)
{
        if (w->fd >= 0)
                (void)epoll_ctl(s->ep, EPOLL_CTL_DEL, w->fd, NULL);
}

/* ---------- replies ---------- */

static void reply(struct vconn *c, const struct err *status, const struct sbuf *body)
{
        cleanup_err struct err e = ERR_INIT;
        if (proto_send(c->w.fd, OP_REPLY, status, body, &e) < 0)
                shutdown(c->w.fd, SHUT_RDWR); /* closed on its next event */
}

static void reply_state(struct vconn *c)
{
        struct sbuf b = {0};
        shim_state_put(&b, &c->ctr->st);
        reply(c, NULL, &b);
        sbuf_free(&b);
}

static void conn_close(struct vshim *s, struct vconn *c)
{
        for (struct vconn **p = &s->conns; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        if (c->pending == OP_EXEC && s->a)
                vm_agent_cancel_async(s->a, c);
        watch_del(s, &c->w);
        close(c->w.fd);
        free(c);
}

/* ---------- container exits ---------- */

static void record_exit(struct vshim *s, struct vctr *c, int code, int sig, const char *reason,
                        const char *msg)
{
        if (c->recorded)
                return;
        int64_t now = time_now_ns();
        c->st.status = SHIM_EXITED;
        c->st.exit_code = code;
        c->st.signal = sig;
        c->st.finished_ns = now;
        snprintf(c->st.reason, sizeof(c->st.reason), "%s", reason ? reason : "");
        snprintf(c->st.message, sizeof(c->st.message), "%s", msg ? msg : "");
        shim_log_eof(&c->log, SHIM_ATTACH_STDOUT, now);
        shim_log_eof(&c->log, SHIM_ATTACH_STDERR, now);
        shim_log_sync(&c->log);
        vm_attach_exit(c->att, code);
        cleanup_err struct err e = ERR_INIT;
        if (shim_exit_write(c->state_dir, &c->st, &e) < 0)
                log_error("vmshim", "container %s: exit file: %s", c->id, e.msg);
        c->recorded = true;
        for (struct vconn *k = s->conns; k; k = k->next)
                if (k->ctr == c && k->pending == OP_WAIT) {
                        k->pending = OP_REPLY;
                        reply_state(k);
                }
}

static void on_wait(void *arg, const struct vm_agent_reply *r)
{
        struct vctr *c = arg;
        if (r->error_kind) {
                log_warn("vmshim", "wait for container %s: %s", c->id, r->error);
                record_exit(c->s, c, 255, 0, "AgentError", r->error);
                return;
        }
        c->st.oom_killed = r->oom_killed;
        record_exit(c->s, c, r->exit_code, r->signal, NULL, NULL);
}

/* The VMM ended without being asked: every container with it. */
static void vm_died(struct vshim *s)
{
        if (s->vm_dead)
                return;
        struct vm_status vs;
        vm_status(s->vm, &vs); /* reaps; the pidfd is closed then */
        if (vs.state != VM_DIED && vs.state != VM_STOPPED)
                return; /* still running (a broken agent connection): the pidfd will tell */
        watch_del(s, &s->vmmw);
        s->vmmw.fd = -1;
        s->vm_dead = true;
        snprintf(s->vm_reason, sizeof(s->vm_reason), "%s", vs.reason ? vs.reason : "the VM stopped");
        log_warn("vmshim", "pod %s: VM ended: %s", s->o->id, s->vm_reason);
        if (s->agentw.fd >= 0)
                watch_del(s, &s->agentw);
        s->agentw.fd = -1;
        s->a = NULL; /* owned by the vm, gone with it */
        vm_pf_agent_gone(s->pf);
        vm_exec_agent_gone(s->ex);
        cleanup_free char *msg = xasprintf("the pod's VM ended: %s", s->vm_reason);
        for (struct vctr *c = s->ctrs; c; c = c->next)
                record_exit(s, c, 137, SIGKILL, "VMDied", msg);
        struct err ue = ERR_INIT;
        err_set(&ue, ERR_UNAVAILABLE, "%s", msg);
        for (struct vconn *k = s->conns; k; k = k->next)
                if (k->pending == OP_EXEC) {
                        k->pending = OP_REPLY;
                        reply(k, &ue, NULL);
                }
        err_clear(&ue);
        struct sbuf b = {0};
        sbuf_puts(&b, "{\"reason\":");
        json_quote(&b, s->vm_reason);
        sbuf_puts(&b, "}\n");
        cleanup_free char *p = path_join(s->o->state_dir, SHIM_VM_EXIT_FILE);
        (void)file_write_atomic(p, b.buf, b.len, 0644, NULL);
        sbuf_free(&b);
        /* After the file: whoever waited reads why from it. */
        for (struct vconn *k = s->conns; k; k = k->next)
                if (k->w.owner == NULL && k->pending == OP_WAIT) {
                        k->pending = OP_REPLY;
                        reply(k, NULL, NULL);
                }
}

/* OP_WAIT on the VM socket: answered when the VM ends (at once when it has). */
static int do_vm_wait(struct vshim *s, struct vconn *k)
{
        if (s->vm_dead)
                return 0;
        k->pending = OP_WAIT;
        k->deadline_ms = 0;
        return 1;
}

static int need_vm(struct vshim *s, struct err *e)
{
        if (s->vm_dead)
                return err_set(e, ERR_UNAVAILABLE, "the pod's VM is gone: %s", s->vm_reason);
        if (!s->a)
                return err_set(e, ERR_UNAVAILABLE, "the connection to the pod's agent is broken");
        return 0;
}

/* ---------- output ---------- */

static struct vctr *ctr_find(struct vshim *s, const char *id)
{
        for (struct vctr *c = s->ctrs; c; c = c->next)
                if (strcmp(c->id, id) == 0)
                        return c;
        return NULL;
}

/* The guest took more of what we sent: an exec's stdin, a connection's
 * bytes, or a container's stdin (exec_id ""). */
static void on_credit(void *arg, const char *cid, const char *eid, uint64_t conn_id, uint64_t credit)
{
        struct vshim *s = arg;
        if (conn_id) {
                vm_pf_on_credit(s->pf, conn_id, credit);
        } else if (eid && *eid) {
                vm_exec_on_credit(s->ex, cid, eid, credit);
        } else {
                struct vctr *c = ctr_find(s, cid);
                if (c)
                        vm_attach_on_credit(c->att, credit);
        }
}

static void on_output(void *arg, const char *cid, const char *eid, int stream, const void *data, size_t len,
                      bool eof)
{
        struct vshim *s = arg;
        if (eid && *eid) {
                /* Interactive exec output; ExecSync's comes in its reply. */
                vm_exec_on_agent(s->ex, cid, eid, stream, data, len, eof);
                return;
        }
        struct vctr *c = ctr_find(s, cid);
        if (!c || (stream != SHIM_ATTACH_STDOUT && stream != SHIM_ATTACH_STDERR))
                return;
        int64_t now = time_now_ns();
        if (len) {
                shim_log_write(&c->log, stream, data, len, now);
                vm_attach_output(c->att, stream, data, len);
        }
        if (eof)
                shim_log_eof(&c->log, stream, now);
}

/* ---------- containers ---------- */

static void ctr_free(struct vshim *s, struct vctr *c)
{
        if (s->a)
                vm_agent_cancel_async(s->a, c);
        for (struct vconn *k = s->conns; k; k = k->next)
                if (k->ctr == c)
                        k->ctr = NULL, shutdown(k->w.fd, SHUT_RDWR);
        if (c->listen.fd >= 0) {
                watch_del(s, &c->listen);
                close(c->listen.fd);
                cleanup_free char *sock = path_join(c->state_dir, SHIM_CTL_SOCKET);
                (void)unlink(sock);
        }
        vm_attach_free(c->att);
        vm_ctr_files_undo(&c->files);
        free(c->files.dir);
        shim_log_close(&c->log);
        free(c->id);
        free(c->state_dir);
        free(c);
}

static void ctr_unlink(struct vshim *s, struct vctr *c)
{
        for (struct vctr **p = &s->ctrs; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        return;
                }
}

static bool id_ok(const char *id)
{
        return id && *id && strlen(id) < 128 && !strchr(id, '/') && strcmp(id, ".") && strcmp(id, "..");
}

static int do_create(struct vshim *s, const struct proto_msg *req, struct sbuf *out, struct err *e)
{
        cleanup_free char *id = proto_get_str(req, PF_ID);
        cleanup_free char *spec_json = proto_get_str(req, PF_SPEC);
        cleanup_free char *state_dir = proto_get_str(req, PF_STATE_DIR);
        cleanup_free char *log_path = proto_get_str(req, PF_LOG_PATH);
        if (!id_ok(id) || !spec_json || !state_dir)
                return err_set(e, ERR_INVALID, "create: id, spec and state dir are required");
        if (need_vm(s, e) < 0)
                return -1;
        if (ctr_find(s, id))
                return err_set(e, ERR_EXISTS, "container %s exists in this VM", id);
        struct rt_spec *spec = rt_spec_from_json(spec_json, strlen(spec_json), e);
        if (!spec)
                return err_wrap(e, "container %s: spec", id);
        struct vctr *c = xzalloc(sizeof(*c));
        c->s = s;
        c->id = xstrdup(id);
        c->state_dir = xstrdup(state_dir);
        c->listen.fd = -1;
        c->listen.kind = W_LISTEN;
        c->listen.owner = c;
        c->log.fd = -1;
        c->files.id = c->id;
        c->files.tag = SHIM_VM_SHARE_TAG;
        c->files.dir = path_join(s->share, id);
        cleanup_free char *exitp = path_join(state_dir, SHIM_EXIT_FILE);
        bool created = false;
        char *gjson = NULL;
        int64_t flag = 0;
        if (mkdir_p(state_dir, 0700, e) < 0)
                goto fail;
        (void)unlink(exitp);
        if (vm_ctr_files_prepare(&c->files, spec, e) < 0)
                goto fail;
        gjson = rt_spec_to_json(spec);
        struct vm_attach_opts ao = {.stdin_open = proto_get_i64(req, PF_STDIN_OPEN, &flag) && flag,
                                    .tty = spec->process.tty};
        ao.stdin_once = ao.stdin_open && proto_get_i64(req, PF_STDIN_ONCE, &flag) && flag;
        if (vm_agent_create_container_stdin(s->a, id, gjson, SHIM_VM_SHARE_TAG, ao.stdin_open,
                                            ao.stdin_open ? SHIM_VM_STDIN_WINDOW : 0, AGENT_CALL_MS, e) < 0)
                goto fail;
        created = true;
        /* Waited for from now on: a container killed before it was started
         * (StopContainer, RemoveContainer, StopPodSandbox of a created one)
         * ends too, and its stop waits for that. */
        if (vm_agent_wait_async(s->a, id, on_wait, c, e) < 0)
                goto fail;
        if (vm_attach_start(s->ep, state_dir, id, &s->a, &ao, &c->att, e) < 0)
                goto fail;
        if (shim_log_open(&c->log, log_path, e) < 0)
                goto fail;
        c->listen.fd = proto_listen(state_dir, SHIM_CTL_SOCKET, e);
        if (c->listen.fd < 0 || watch_add(s, &c->listen) < 0) {
                if (c->listen.fd >= 0)
                        err_make(e, errno, "epoll");
                goto fail;
        }
        c->st.status = SHIM_CREATED;
        c->st.created_ns = time_now_ns();
        c->next = s->ctrs;
        s->ctrs = c;
        proto_put_i64(out, PF_PID, 0);
        free(gjson);
        rt_spec_free(spec);
        return 0;
fail:
        if (created && s->a)
                (void)vm_agent_remove_container(s->a, id, AGENT_CALL_MS, NULL);
        free(gjson);
        rt_spec_free(spec);
        ctr_free(s, c);
        (void)rmdir(state_dir);
        return err_wrap(e, "container %s", id);
}

static int do_start(struct vshim *s, struct vctr *c, struct err *e)
{
        if (c->st.status != SHIM_CREATED)
                return err_set(e, ERR_PRECONDITION, "container %s is not in state created", c->id);
        if (need_vm(s, e) < 0)
                return -1;
        struct vm_agent_user u;
        if (vm_agent_start_container(s->a, c->id, AGENT_CALL_MS, &u, e) < 0) {
                record_exit(s, c, 128, 0, NULL, NULL);
                return -1;
        }
        if (u.has_user)
                shim_state_set_user(&c->st, u.groups, u.n_groups, u.uid, u.gid);
        free(u.groups);
        c->st.status = SHIM_RUNNING;
        c->st.started_ns = time_now_ns();
        return 0;
}

static int do_kill(struct vshim *s, struct vctr *c, const struct proto_msg *req, struct err *e)
{
        int64_t sig = SIGTERM;
        (void)proto_get_i64(req, PF_SIGNO, &sig);
        if (c->st.status == SHIM_EXITED)
                return 0;
        if (need_vm(s, e) < 0)
                return -1;
        cleanup_err struct err ke = ERR_INIT;
        if (vm_agent_signal(s->a, c->id, (int)sig, AGENT_CALL_MS, &ke) < 0 &&
            !err_is(&ke, ERR_PRECONDITION)) {
                err_move(e, &ke);
                return -1;
        }
        return 0;
}

static void on_exec(void *arg, const struct vm_agent_reply *r)
{
        struct vconn *k = arg;
        if (k->pending != OP_EXEC)
                return;
        k->pending = OP_REPLY;
        struct err st = ERR_INIT;
        struct sbuf b = {0};
        if (r->error_kind) {
                err_set(&st, (enum err_kind)r->error_kind, "%s", r->error);
        } else {
                if (r->timed_out)
                        err_set(&st, ERR_DEADLINE, "exec timed out and was killed");
                proto_put(&b, PF_STDOUT, r->out, r->out_len);
                proto_put(&b, PF_STDERR, r->err, r->err_len);
                proto_put_i64(&b, PF_EXIT_CODE, r->exit_code);
        }
        reply(k, st.msg ? &st : NULL, &b);
        sbuf_free(&b);
        err_clear(&st);
}

static int do_exec(struct vshim *s, struct vconn *k, const struct proto_msg *req, struct err *e)
{
        struct vctr *c = k->ctr;
        if (c->st.status != SHIM_RUNNING)
                return err_set(e, ERR_PRECONDITION, "container %s is not running", c->id);
        if (need_vm(s, e) < 0)
                return -1;
        cleanup_strv char **args = NULL;
        size_t pos = 0;
        uint16_t tag;
        const char *d;
        uint32_t n;
        while (proto_next(req, &pos, &tag, &d, &n))
                if (tag == PF_ARG) {
                        char *a = xstrndup(d, n);
                        strv_push(&args, a);
                        free(a);
                }
        if (!args)
                return err_set(e, ERR_INVALID, "exec: no command");
        int64_t timeout = 0;
        (void)proto_get_i64(req, PF_TIMEOUT_MS, &timeout);
        if (vm_agent_exec_async(s->a, c->id, args, timeout > 0 ? (int)timeout : 0, on_exec, k, e) < 0)
                return -1;
        k->pending = OP_EXEC;
        return 1;
}

static int do_wait(struct vshim *s, struct vconn *k, const struct proto_msg *req, struct err *e)
{
        (void)s;
        int64_t timeout = -1;
        (void)proto_get_i64(req, PF_TIMEOUT_MS, &timeout);
        if (k->ctr->st.status == SHIM_EXITED) {
                reply_state(k);
                return 1;
        }
        if (timeout == 0)
                return err_set(e, ERR_DEADLINE, "container %s still running", k->ctr->id);
        k->pending = OP_WAIT;
        k->deadline_ms = timeout > 0 ? now_ms() + timeout : 0;
        return 1;
}

/* UpdateContainerResources: the container's cgroup is in the guest; the
 * agent applies the resources of the spec (as the container shim does). */
static int do_update(struct vshim *s, struct vctr *c, const struct proto_msg *req, struct err *e)
{
        const char *d;
        uint32_t n;
        if (!proto_get(req, PF_RESOURCES, &d, &n))
                return err_set(e, ERR_INVALID, "update %s: no spec", c->id);
        if (c->st.status == SHIM_EXITED)
                return err_set(e, ERR_PRECONDITION, "container %s has exited", c->id);
        if (need_vm(s, e) < 0)
                return -1;
        cleanup_free char *json = xstrndup(d, n);
        return vm_agent_update_resources(s->a, c->id, json, AGENT_CALL_MS, e);
}

/* Container removal (the container shim's shutdown): the container leaves
 * the guest and the host, its socket goes; the VM stays. */
static int do_ctr_shutdown(struct vshim *s, struct vctr *c, struct err *e)
{
        if (c->st.status == SHIM_RUNNING)
                return err_set(e, ERR_PRECONDITION, "container %s is running: kill it first", c->id);
        if (c->st.status == SHIM_CREATED)
                record_exit(s, c, 137, SIGKILL, NULL, NULL);
        if (s->a) {
                cleanup_err struct err re = ERR_INIT;
                if (vm_agent_remove_container(s->a, c->id, AGENT_CALL_MS, &re) < 0)
                        log_warn("vmshim", "remove container %s in the guest: %s", c->id, re.msg);
        }
        return 0;
}

/* ---------- the VM socket ---------- */

static int do_info(struct vshim *s, struct sbuf *b)
{
        proto_put_i64(b, PF_PID, s->vm_dead ? 0 : vm_pid(s->vm));
        proto_put_i64(b, PF_SHIM_PID, getpid());
        proto_put_i64(b, PF_VM_STATE, s->vm_dead ? VM_DIED : VM_RUNNING);
        if (s->vm_dead)
                proto_put_str(b, PF_REASON_MSG, s->vm_reason);
        const char *accel = vm_accel_used(s->vm);
        proto_put_str(b, PF_ACCEL, accel ? accel : "");
        proto_put_str(b, PF_CONSOLE, vm_console_log(s->vm));
        proto_put_str(b, PF_KERNEL, s->kernel_release ? s->kernel_release : "");
        struct vm_stats vs;
        cleanup_err struct err e = ERR_INIT;
        if (!s->vm_dead && vm_stats(s->vm, &vs, &e) == 0) {
                proto_put_i64(b, PF_BOOT_MS, (int64_t)vs.boot_ms);
                proto_put_i64(b, PF_RSS, (int64_t)vs.rss_bytes);
        }
        return 0;
}

static int do_stats(struct vshim *s, const struct proto_msg *req, struct sbuf *b, struct err *e)
{
        if (need_vm(s, e) < 0)
                return -1;
        cleanup_free char *id = proto_get_str(req, PF_ID);
        struct vm_agent_stats st;
        if (vm_agent_stats(s->a, id && *id ? id : NULL, AGENT_CALL_MS, &st, e) < 0)
                return -1;
        proto_put_i64(b, PF_CPU_NS, (int64_t)st.cpu_usage_ns);
        proto_put_i64(b, PF_MEM, (int64_t)st.memory_usage);
        proto_put_i64(b, PF_MEM_TOTAL, (int64_t)st.memory_total);
        proto_put_i64(b, PF_MEM_AVAIL, (int64_t)st.memory_available);
        proto_put_i64(b, PF_PIDS, st.pids);
        const uint64_t cgm[] = {st.cpu_user_ns, st.cpu_system_ns,   st.mem_usage,     st.mem_rss,
                                st.mem_cache,   st.mem_mapped_file, st.mem_max_usage, st.mem_failcnt,
                                st.mem_limit,   st.oom_kills,       st.processes,     st.threads};
        for (size_t i = 0; i < ARRAY_SIZE(cgm); i++)
                proto_put_i64(b, (uint16_t)(PF_VM_CGM + i), (int64_t)cgm[i]);
        return 0;
}

/* Stop the VM; containers still running end with it. */
static void vm_stop(struct vshim *s)
{
        for (struct vctr *c = s->ctrs; c; c = c->next)
                record_exit(s, c, 137, SIGKILL, "SandboxStopped", "the pod's VM was shut down");
        if (!s->vm_dead) {
                watch_del(s, &s->vmmw);
                watch_del(s, &s->agentw);
                s->vmmw.fd = s->agentw.fd = -1;
                cleanup_err struct err e = ERR_INIT;
                vm_pf_agent_gone(s->pf);
                vm_exec_agent_gone(s->ex);
                (void)vm_shutdown(s->vm, 10000, &e);
                s->a = NULL;
        }
        while (s->ctrs) {
                struct vctr *c = s->ctrs;
                s->ctrs = c->next;
                ctr_free(s, c);
        }
}

/* ---------- requests ---------- */

static void handle(struct vshim *s, struct vconn *k, const struct proto_msg *req)
{
        cleanup_err struct err e = ERR_INIT;
        struct sbuf b = {0};
        int r = 0;
        struct vctr *c = k->ctr;
        bool vm_sock = k->w.owner == NULL;
        if (!vm_sock && !c) {
                err_set(&e, ERR_NOT_FOUND, "container removed");
                r = -1;
                goto out;
        }
        switch (req->hdr.op) {
        case OP_VM_CREATE:
                r = vm_sock ? do_create(s, req, &b, &e) : err_set(&e, ERR_INVALID, "not a VM socket");
                break;
        case OP_VM_INFO:
                r = vm_sock ? do_info(s, &b) : err_set(&e, ERR_INVALID, "not a VM socket");
                break;
        case OP_VM_STATS:
                r = vm_sock ? do_stats(s, req, &b, &e) : err_set(&e, ERR_INVALID, "not a VM socket");
                break;
        case OP_SHUTDOWN:
                if (vm_sock) {
                        vm_stop(s);
                        s->quit = true;
                } else if ((r = do_ctr_shutdown(s, c, &e)) == 0) {
                        reply(k, NULL, NULL);
                        ctr_unlink(s, c);
                        ctr_free(s, c);
                        sbuf_free(&b);
                        return;
                }
                break;
        case OP_START:
                r = vm_sock ? err_set(&e, ERR_INVALID, "not a container socket") : do_start(s, c, &e);
                break;
        case OP_STATE:
                if (vm_sock) {
                        r = err_set(&e, ERR_INVALID, "not a container socket");
                        break;
                }
                shim_state_put(&b, &c->st);
                break;
        case OP_KILL:
                r = vm_sock ? err_set(&e, ERR_INVALID, "not a container socket") : do_kill(s, c, req, &e);
                break;
        case OP_WAIT:
                r = vm_sock ? do_vm_wait(s, k) : do_wait(s, k, req, &e);
                break;
        case OP_EXEC:
                r = vm_sock ? err_set(&e, ERR_INVALID, "not a container socket") : do_exec(s, k, req, &e);
                break;
        case OP_REOPEN_LOG:
                r = vm_sock ? err_set(&e, ERR_INVALID, "not a container socket")
                            : shim_log_reopen(&c->log, &e);
                break;
        case OP_UPDATE:
                r = vm_sock ? err_set(&e, ERR_INVALID, "not a container socket") : do_update(s, c, req, &e);
                break;
        default:
                r = err_set(&e, ERR_UNIMPLEMENTED, "unknown request %u", req->hdr.op);
        }
out:
        if (r <= 0)
                reply(k, r < 0 ? &e : NULL, &b);
        sbuf_free(&b);
}

static void on_conn(struct vshim *s, struct vconn *k)
{
        struct proto_msg req;
        cleanup_err struct err e = ERR_INIT;
        if (k->pending != OP_REPLY) {
                /* Nothing may come while a reply is owed: EOF means the client left. */
                char buf[1];
                if (recv(k->w.fd, buf, 1, MSG_PEEK | MSG_DONTWAIT) <= 0)
                        conn_close(s, k);
                return;
        }
        if (proto_recv(k->w.fd, RECV_MS, &req, &e) < 0) {
                conn_close(s, k);
                return;
        }
        handle(s, k, &req);
        proto_msg_clear(&req);
}

static void on_accept(struct vshim *s, struct vwatch *lw)
{
        for (;;) {
                int fd = accept4(lw->fd, NULL, NULL, SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                struct vconn *k = xzalloc(sizeof(*k));
                k->w.fd = fd;
                k->w.kind = W_CONN;
                k->w.owner = lw->owner; /* the container, or NULL */
                k->ctr = lw->owner;
                k->pending = OP_REPLY;
                k->next = s->conns;
                s->conns = k;
                if (watch_add(s, &k->w) < 0)
                        conn_close(s, k);
        }
}

/* Pending waits whose time has come: ERR_DEADLINE, as the container shim. */
static int expire_waits(struct vshim *s)
{
        int64_t now = now_ms(), next = -1;
        for (struct vconn *k = s->conns; k; k = k->next) {
                if (k->pending != OP_WAIT || !k->deadline_ms)
                        continue;
                if (k->deadline_ms <= now) {
                        k->pending = OP_REPLY;
                        struct err e = ERR_INIT;
                        err_set(&e, ERR_DEADLINE, "container %s still running", k->ctr ? k->ctr->id : "");
                        reply(k, &e, NULL);
                        err_clear(&e);
                } else if (next < 0 || k->deadline_ms - now < next) {
                        next = k->deadline_ms - now;
                }
        }
        return (int)next;
}

/* ---------- boot ---------- */

static int load_config(struct vshim *s, yajl_val *out, struct err *e)
{
        cleanup_free char *p = path_join(s->o->bundle, SHIM_VM_CONFIG);
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(p, &buf, &len, 1 << 20, e) < 0)
                return -1;
        *out = json_parse(buf, len, p, e);
        return *out ? 0 : -1;
}

static uint32_t get_u32(yajl_val j, const char *k)
{
        int64_t v = 0;
        return json_get_int(j, k, &v) && v > 0 ? (uint32_t)v : 0;
}

static int boot(struct vshim *s, yajl_val j, struct err *e)
{
        s->share = path_join(s->o->state_dir, SHIM_VM_SHARE_DIR);
        if (mkdir_p(s->share, 0755, e) < 0)
                return -1;
        cleanup_free char *qdir = path_join(s->o->state_dir, "q");
        struct vm_config vc = {
                .vmm = (enum vm_vmm)get_u32(j, "vmm"),
                .vmm_path = json_get_str(j, "vmm_path"),
                .kernel = json_get_str(j, "kernel"),
                .initrd = json_get_str(j, "initrd"),
                .cpus = get_u32(j, "cpus"),
                .memory_mib = get_u32(j, "memory_mib"),
                .agent_timeout_ms = get_u32(j, "agent_timeout_ms"),
                .state_dir = qdir,
                .netns = json_get_str(j, "netns"),
                .share = (enum vm_share_type)get_u32(j, "share"),
                .virtiofsd_path = json_get_str(j, "virtiofsd_path"),
        };
        /* corrald's verdict from an earlier pod: KVM opens but boots no guest here. */
        const char *verdict = json_get_str(j, "kvm_verdict");
        if (verdict && *verdict && access(verdict, F_OK) == 0)
                vc.accel = VM_ACCEL_TCG;
        if (vm_create(&vc, &s->vm, e) < 0)
                return -1;
        const char *tap = json_get_str(j, "tap"), *mac = json_get_str(j, "mac");
        if (vm_add_share(s->vm, &(struct vm_share){.tag = SHIM_VM_SHARE_TAG, .path = s->share}, e) < 0)
                return -1;
        if (tap && vm_add_net(s->vm, &(struct vm_net){.tap = tap, .mac = mac}, e) < 0)
                return -1;
        if (vm_boot(s->vm, e) < 0)
                return -1;
        const char *broken = vm_kvm_broken_reason();
        if (broken && verdict && *verdict && vc.accel != VM_ACCEL_TCG) {
                cleanup_err struct err ve = ERR_INIT;
                (void)file_write_atomic(verdict, broken, strlen(broken), 0644, &ve);
        }
        s->a = vm_agent(s->vm);
        vm_agent_set_output(s->a, on_output, s);
        struct vm_agent_info info = {0};
        if (vm_agent_ping(s->a, AGENT_CALL_MS, &info, e) < 0)
                return err_wrap(e, "agent ping");
        s->kernel_release = steal_ptr(&info.kernel_release);
        vm_agent_info_clear(&info);
        if (vm_mount_share(s->vm, SHIM_VM_SHARE_TAG, false, AGENT_CALL_MS, e) < 0)
                return err_wrap(e, "mount the pod share in the guest");
        if (tap) {
                cleanup_strv char **addrs = NULL;
                yajl_val a = json_get(j, "addresses");
                for (size_t i = 0; a && YAJL_IS_ARRAY(a) && i < a->u.array.len; i++)
                        if (YAJL_IS_STRING(a->u.array.values[i]))
                                strv_push(&addrs, a->u.array.values[i]->u.string);
                yajl_val r = json_get(j, "routes");
                size_t nr = r && YAJL_IS_ARRAY(r) ? r->u.array.len : 0;
                cleanup_free struct vm_route *routes = xcalloc(nr + 1, sizeof(*routes));
                for (size_t i = 0; i < nr; i++) {
                        routes[i].dst = json_get_str(r->u.array.values[i], "dst");
                        routes[i].gw = json_get_str(r->u.array.values[i], "gw");
                }
                struct vm_net_config nc = {.mac = mac,
                                           .addresses = (const char *const *)addrs,
                                           .routes = routes,
                                           .n_routes = nr,
                                           .mtu = get_u32(j, "mtu"),
                                           .hostname = json_get_str(j, "hostname")};
                if (vm_agent_setup_network(s->a, &nc, AGENT_CALL_MS, e) < 0)
                        return err_wrap(e, "set up the guest network");
        }
        yajl_val sc = json_get(j, "sysctls");
        if (sc && YAJL_IS_OBJECT(sc) && sc->u.object.len) {
                cleanup_strv char **vals = NULL;
                for (size_t i = 0; i < sc->u.object.len; i++)
                        strv_push(&vals, YAJL_IS_STRING(sc->u.object.values[i])
                                                 ? sc->u.object.values[i]->u.string
                                                 : "");
                if (vm_agent_sysctls(s->a, (char *const *)sc->u.object.keys, vals, sc->u.object.len,
                                     AGENT_CALL_MS, e) < 0)
                        return err_wrap(e, "the pod's sysctls");
        }
        return 0;
}

static void report(int fd, const struct vshim *s, const struct err *status)
{
        if (fd < 0)
                return;
        struct sbuf body = {0}, msg = {0};
        if (!status) {
                proto_put_i64(&body, PF_PID, vm_pid(s->vm));
                proto_put_i64(&body, PF_SHIM_PID, getpid());
        }
        proto_serialize(&msg, OP_REPORT, status, &body);
        (void)fd_write_all(fd, msg.buf, msg.len);
        sbuf_free(&body);
        sbuf_free(&msg);
        close(fd);
}

static int setup(struct vshim *s, struct err *e)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
                return err_make(e, errno, "sigprocmask");
        signal(SIGPIPE, SIG_IGN);
        s->ep = epoll_create1(EPOLL_CLOEXEC);
        s->sig = (struct vwatch){.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK), .kind = W_SIG};
        if (s->ep < 0 || s->sig.fd < 0 || watch_add(s, &s->sig) < 0)
                return err_make(e, errno, "epoll/signalfd");
        cleanup_free char *pidfile = path_join(s->o->state_dir, SHIM_PID_FILE);
        cleanup_free char *pid = xasprintf("%d\n", (int)getpid());
        return file_write_atomic(pidfile, pid, strlen(pid), 0644, e);
}

static void loop(struct vshim *s)
{
        struct epoll_event evs[16];
        while (!s->quit) {
                int timeout = expire_waits(s);
                int n = epoll_wait(s->ep, evs, 16, timeout);
                if (n < 0 && errno != EINTR)
                        break;
                for (int i = 0; i < n && !s->quit; i++) {
                        struct vwatch *w = evs[i].data.ptr;
                        switch (w->kind) {
                        case W_SIG: {
                                struct signalfd_siginfo si;
                                while (read(w->fd, &si, sizeof(si)) == sizeof(si))
                                        if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
                                                vm_stop(s);
                                                s->quit = true;
                                        }
                                break;
                        }
                        case W_LISTEN:
                                on_accept(s, w);
                                break;
                        case W_CONN:
                                on_conn(s, (struct vconn *)w);
                                /* A removed container may have freed later events' owners:
                                 * start over with fresh events. */
                                i = n;
                                break;
                        case W_AGENT: {
                                cleanup_err struct err e = ERR_INIT;
                                if (s->a && vm_agent_dispatch(s->a, &e) < 0) {
                                        log_warn("vmshim", "pod %s: agent: %s", s->o->id, e.msg);
                                        watch_del(s, &s->agentw);
                                        s->agentw.fd = -1;
                                        vm_pf_agent_gone(s->pf);
                                        vm_exec_agent_gone(s->ex);
                                        vm_died(s); /* usually the VMM is on its way out */
                                }
                                i = n; /* port-forward connections may have ended */
                                break;
                        }
                        case W_VMM:
                                vm_died(s);
                                i = n; /* attach, exec and port-forward clients may be gone */
                                break;
                        case W_PF_LISTEN:
                        case W_PF_CONN:
                                vm_pf_event(s->pf, w, evs[i].events);
                                i = n; /* it may have freed later events' connections */
                                break;
                        case W_EXEC_LISTEN:
                        case W_EXEC_CONN:
                                vm_exec_event(s->ex, w, evs[i].events);
                                i = n;
                                break;
                        case W_ATTACH_LISTEN:
                        case W_ATTACH_CONN:
                                vm_attach_event(w, evs[i].events);
                                i = n; /* it may have freed later events' clients */
                                break;
                        }
                }
        }
}

int shim_vm_run(const struct shim_opts *o, int report_fd)
{
        struct vshim s = {.o = o, .ep = -1};
        s.sig.fd = -1;
        s.listen = (struct vwatch){.fd = -1, .kind = W_LISTEN};
        s.agentw = (struct vwatch){.fd = -1, .kind = W_AGENT};
        s.vmmw = (struct vwatch){.fd = -1, .kind = W_VMM};
        yajl_val j = NULL;
        cleanup_err struct err e = ERR_INIT;
        int ret = 1;
        if (setup(&s, &e) < 0 || load_config(&s, &j, &e) < 0 || boot(&s, j, &e) < 0)
                goto fail;
        s.listen.fd = proto_listen(o->state_dir, SHIM_CTL_SOCKET, &e);
        if (s.listen.fd < 0)
                goto fail;
        if (vm_pf_start(s.ep, o->state_dir, &s.a, &s.pf, &e) < 0)
                goto fail;
        vm_agent_set_conn_output(s.a, vm_pf_on_agent, s.pf);
        vm_agent_set_credit(s.a, on_credit, &s);
        if (vm_exec_start(s.ep, o->state_dir, &s.a, &s.ex, &e) < 0)
                goto fail;
        s.agentw.fd = vm_agent_fd(s.a);
        s.vmmw.fd = vm_pidfd(s.vm);
        if (watch_add(&s, &s.listen) < 0 || watch_add(&s, &s.agentw) < 0 ||
            (s.vmmw.fd >= 0 && watch_add(&s, &s.vmmw) < 0)) {
                err_make(&e, errno, "epoll");
                goto fail;
        }
        yajl_tree_free(j);
        j = NULL;
        report(report_fd, &s, NULL);
        shim_trim_text();
        loop(&s);
        ret = 0;
        goto out;
fail:
        report(report_fd, &s, &e);
out:
        if (!s.quit)
                vm_stop(&s);
        while (s.conns)
                conn_close(&s, s.conns);
        vm_exec_free(s.ex);
        s.ex = NULL;
        vm_pf_free(s.pf);
        s.pf = NULL;
        vm_free(s.vm);
        if (s.listen.fd >= 0) {
                close(s.listen.fd);
                cleanup_free char *sock = path_join(o->state_dir, SHIM_CTL_SOCKET);
                (void)unlink(sock);
        }
        if (s.share)
                (void)rmdir(s.share);
        cleanup_free char *pidfile = path_join(o->state_dir, SHIM_PID_FILE);
        (void)unlink(pidfile);
        if (j)
                yajl_tree_free(j);
        free(s.share);
        free(s.kernel_release);
        if (s.ep >= 0)
                close(s.ep);
        return ret;
}
