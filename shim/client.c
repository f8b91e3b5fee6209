/* corrald's side of the control socket: one request, one reply. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "shim/proto-internal.h"
#include "shim/shim.h"

/* Quick requests; a shim that does not answer in this time is wedged. */
#define CALL_TIMEOUT_MS 10000
/* Added to a wait/exec timeout: the shim's own timer fires first. */
#define CALL_MARGIN_MS 5000

struct shim_conn {
        int fd; /* -1 once out of step (a reply timed out) */
        char *state_dir;
};

bool shim_pid_alive(pid_t pid)
{
        if (pid <= 0 || (kill(pid, 0) < 0 && errno == ESRCH))
                return false;
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(path, &buf, &len, 4096, NULL) < 0)
                return false;
        const char *p = strrchr(buf, ')');
        return !(p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X'));
}

pid_t shim_live_pid(const char *state_dir)
{
        if (state_dir == NULL)
                return 0;
        cleanup_free char *p = path_join(state_dir, SHIM_PID_FILE);
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(p, &buf, &len, 64, NULL) < 0)
                return 0;
        pid_t pid = (pid_t)atoi(buf);
        return shim_pid_alive(pid) ? pid : 0;
}

int shim_connect(const char *state_dir, struct shim_conn **out, struct err *e)
{
        int fd = proto_connect(state_dir, SHIM_CTL_SOCKET, e);
        if (fd < 0)
                return -1;
        struct shim_conn *c = xzalloc(sizeof(*c));
        c->fd = fd;
        c->state_dir = xstrdup(state_dir);
        *out = c;
        return 0;
}

struct shim_conn *shim_close(struct shim_conn *c)
{
        if (c == NULL)
                return NULL;
        if (c->fd >= 0)
                close(c->fd);
        free(c->state_dir);
        free(c);
        return NULL;
}

static int call(struct shim_conn *c, uint16_t op, const struct sbuf *body, int64_t timeout_ms,
                struct proto_msg *reply, struct err *e)
{
        memset(reply, 0, sizeof(*reply));
        if (c->fd < 0)
                return err_set(e, ERR_UNAVAILABLE, "shim connection to %s is broken; reconnect",
                               c->state_dir);
        if (proto_send(c->fd, op, NULL, body, e) < 0)
                return err_wrap(e, "shim %s", c->state_dir);
        if (proto_recv(c->fd, timeout_ms, reply, e) < 0) {
                /* A late reply would answer the next request: drop the connection. */
                close(c->fd);
                c->fd = -1;
                return err_wrap(e, "shim %s", c->state_dir);
        }
        if (reply->hdr.op != OP_REPLY) {
                proto_msg_clear(reply);
                return err_set(e, ERR_INTERNAL, "shim %s: unexpected message %u", c->state_dir,
                               reply->hdr.op);
        }
        return 0;
}

/* A request whose reply carries no data. */
static int simple(struct shim_conn *c, uint16_t op, const struct sbuf *body, int64_t timeout_ms,
                  struct err *e)
{
        struct proto_msg m;
        if (call(c, op, body, timeout_ms, &m, e) < 0)
                return -1;
        int r = proto_reply_status(&m, e);
        proto_msg_clear(&m);
        return r;
}

static int64_t get_i64(const struct proto_msg *m, uint16_t tag)
{
        int64_t v = 0;
        (void)proto_get_i64(m, tag, &v);
        return v;
}

static void state_from(const struct proto_msg *m, struct shim_state *st)
{
        memset(st, 0, sizeof(*st));
        st->pid = (pid_t)get_i64(m, PF_PID);
        st->status = (enum shim_status)get_i64(m, PF_STATUS);
        st->exit_code = (int)get_i64(m, PF_EXIT_CODE);
        st->signal = (int)get_i64(m, PF_SIGNAL);
        st->created_ns = get_i64(m, PF_CREATED);
        st->started_ns = get_i64(m, PF_STARTED);
        st->finished_ns = get_i64(m, PF_FINISHED);
        st->oom_killed = get_i64(m, PF_OOM) != 0;
        const char *d;
        uint32_t n;
        if (proto_get(m, PF_REASON, &d, &n))
                snprintf(st->reason, sizeof(st->reason), "%.*s", (int)n, d);
        if (proto_get(m, PF_REASON_MSG, &d, &n))
                snprintf(st->message, sizeof(st->message), "%.*s", (int)n, d);
        if (proto_get(m, PF_GROUPS, &d, &n)) {
                st->has_user = true;
                st->uid = (uint32_t)get_i64(m, PF_UID);
                st->gid = (uint32_t)get_i64(m, PF_GID);
                cleanup_free char *g = xstrndup(d, n);
                for (char *save = NULL, *t = strtok_r(g, ",", &save); t && st->n_groups < 64;
                     t = strtok_r(NULL, ",", &save))
                        st->groups[st->n_groups++] = (uint32_t)strtoul(t, NULL, 10);
        }
}

int shim_start(struct shim_conn *c, struct err *e)
{
        return simple(c, OP_START, NULL, CALL_TIMEOUT_MS * 3, e);
}

int shim_state(struct shim_conn *c, struct shim_state *st, struct err *e)
{
        struct proto_msg m;
        if (call(c, OP_STATE, NULL, CALL_TIMEOUT_MS, &m, e) < 0)
                return -1;
        int r = proto_reply_status(&m, e);
        if (r == 0)
                state_from(&m, st);
        proto_msg_clear(&m);
        return r;
}

int shim_kill(struct shim_conn *c, int signo, bool all, struct err *e)
{
        struct sbuf b = {0};
        proto_put_i64(&b, PF_SIGNO, signo);
        proto_put_i64(&b, PF_ALL, all);
        int r = simple(c, OP_KILL, &b, CALL_TIMEOUT_MS, e);
        sbuf_free(&b);
        return r;
}

int shim_wait(struct shim_conn *c, int64_t timeout_ms, struct shim_state *st, struct err *e)
{
        struct sbuf b = {0};
        proto_put_i64(&b, PF_TIMEOUT_MS, timeout_ms < 0 ? -1 : timeout_ms);
        struct proto_msg m;
        int r = call(c, OP_WAIT, &b, timeout_ms < 0 ? -1 : timeout_ms + CALL_MARGIN_MS, &m, e);
        sbuf_free(&b);
        if (r < 0)
                return -1;
        r = proto_reply_status(&m, e);
        if (r == 0 && st)
                state_from(&m, st);
        proto_msg_clear(&m);
        return r;
}

int shim_wait_begin(struct shim_conn *c, struct err *e)
{
        if (c->fd < 0)
                return err_set(e, ERR_UNAVAILABLE, "shim connection to %s is broken; reconnect",
                               c->state_dir);
        struct sbuf b = {0};
        proto_put_i64(&b, PF_TIMEOUT_MS, -1);
        int r = proto_send(c->fd, OP_WAIT, NULL, &b, e);
        sbuf_free(&b);
        return r < 0 ? err_wrap(e, "shim %s", c->state_dir) : 0;
}

int shim_wait_finish(struct shim_conn *c, struct shim_state *st, struct err *e)
{
        if (c->fd < 0)
                return err_set(e, ERR_UNAVAILABLE, "shim connection to %s is broken; reconnect",
                               c->state_dir);
        struct proto_msg m;
        if (proto_recv(c->fd, CALL_TIMEOUT_MS, &m, e) < 0) {
                close(c->fd);
                c->fd = -1;
                return err_wrap(e, "shim %s", c->state_dir);
        }
        int r = proto_reply_status(&m, e);
        if (r == 0 && st)
                state_from(&m, st);
        proto_msg_clear(&m);
        return r;
}

int shim_conn_fd(const struct shim_conn *c)
{
        return c->fd;
}

int shim_reopen_log(struct shim_conn *c, struct err *e)
{
        return simple(c, OP_REOPEN_LOG, NULL, CALL_TIMEOUT_MS, e);
}

void shim_exec_result_clear(struct shim_exec_result *r)
{
        if (r == NULL)
                return;
        free(r->out);
        free(r->err);
        memset(r, 0, sizeof(*r));
}

static void take_bytes(const struct proto_msg *m, uint16_t tag, char **out, size_t *len)
{
        const char *d = NULL;
        uint32_t n = 0;
        (void)proto_get(m, tag, &d, &n);
        *out = xmalloc((size_t)n + 1);
        if (n)
                memcpy(*out, d, n);
        (*out)[n] = '\0';
        *len = n;
}

int shim_exec_sync(struct shim_conn *c, char *const *args, char *const *env, int64_t timeout_ms,
                   struct shim_exec_result *r, struct err *e)
{
        memset(r, 0, sizeof(*r));
        if (args == NULL || args[0] == NULL)
                return err_set(e, ERR_INVALID, "exec: no command");
        struct sbuf b = {0};
        for (char *const *a = args; *a; a++)
                proto_put_str(&b, PF_ARG, *a);
        for (char *const *v = env; v && *v; v++)
                proto_put_str(&b, PF_ENV, *v);
        proto_put_i64(&b, PF_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 0);
        struct proto_msg m;
        int ret = call(c, OP_EXEC, &b, timeout_ms > 0 ? timeout_ms + CALL_MARGIN_MS : -1, &m, e);
        sbuf_free(&b);
        if (ret < 0)
                return -1;
        ret = proto_reply_status(&m, e);
        /* A timeout still brings the output collected until the kill. */
        if (ret == 0 || m.hdr.kind == ERR_DEADLINE) {
                take_bytes(&m, PF_STDOUT, &r->out, &r->out_len);
                take_bytes(&m, PF_STDERR, &r->err, &r->err_len);
                r->exit_code = (int)get_i64(&m, PF_EXIT_CODE);
                r->truncated = get_i64(&m, PF_TRUNCATED) != 0;
        }
        proto_msg_clear(&m);
        return ret;
}

int shim_update_resources(struct shim_conn *c, const char *spec_json, struct err *e)
{
        struct sbuf b = {0};
        proto_put_str(&b, PF_RESOURCES, spec_json);
        int r = simple(c, OP_UPDATE, &b, CALL_TIMEOUT_MS, e);
        sbuf_free(&b);
        return r;
}

int shim_shutdown(struct shim_conn *c, struct err *e)
{
        return simple(c, OP_SHUTDOWN, NULL, CALL_TIMEOUT_MS, e);
}

/* ---------- the per-VM shim ---------- */

int shim_vm_create_container(struct shim_conn *c, const struct shim_vm_create *cc, struct err *e)
{
        struct sbuf b = {0};
        proto_put_str(&b, PF_ID, cc->id);
        proto_put_str(&b, PF_SPEC, cc->spec_json);
        proto_put_str(&b, PF_STATE_DIR, cc->state_dir);
        if (cc->log_path)
                proto_put_str(&b, PF_LOG_PATH, cc->log_path);
        proto_put_i64(&b, PF_STDIN_OPEN, cc->stdin_open);
        proto_put_i64(&b, PF_STDIN_ONCE, cc->stdin_once);
        int r = simple(c, OP_VM_CREATE, &b, CALL_TIMEOUT_MS * 4, e);
        sbuf_free(&b);
        return r;
}

static void copy_str(const struct proto_msg *m, uint16_t tag, char *dst, size_t size)
{
        const char *d;
        uint32_t n;
        if (proto_get(m, tag, &d, &n))
                snprintf(dst, size, "%.*s", (int)n, d);
}

int shim_vm_info(struct shim_conn *c, struct shim_vm_info *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        struct proto_msg m;
        if (call(c, OP_VM_INFO, NULL, CALL_TIMEOUT_MS, &m, e) < 0)
                return -1;
        int r = proto_reply_status(&m, e);
        if (r == 0) {
                out->vmm_pid = (pid_t)get_i64(&m, PF_PID);
                out->shim_pid = (pid_t)get_i64(&m, PF_SHIM_PID);
                out->vm_state = (int)get_i64(&m, PF_VM_STATE);
                out->boot_ms = (uint64_t)get_i64(&m, PF_BOOT_MS);
                out->vmm_rss = (uint64_t)get_i64(&m, PF_RSS);
                copy_str(&m, PF_REASON_MSG, out->reason, sizeof(out->reason));
                copy_str(&m, PF_ACCEL, out->accel, sizeof(out->accel));
                copy_str(&m, PF_CONSOLE, out->console, sizeof(out->console));
                copy_str(&m, PF_KERNEL, out->kernel, sizeof(out->kernel));
        }
        proto_msg_clear(&m);
        return r;
}

int shim_vm_stats(struct shim_conn *c, const char *ctr_id, struct shim_vm_stats *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        struct sbuf b = {0};
        if (ctr_id)
                proto_put_str(&b, PF_ID, ctr_id);
        struct proto_msg m;
        int r = call(c, OP_VM_STATS, &b, CALL_TIMEOUT_MS * 4, &m, e);
        sbuf_free(&b);
        if (r < 0)
                return -1;
        r = proto_reply_status(&m, e);
        if (r == 0) {
                out->cpu_ns = (uint64_t)get_i64(&m, PF_CPU_NS);
                out->memory = (uint64_t)get_i64(&m, PF_MEM);
                out->memory_total = (uint64_t)get_i64(&m, PF_MEM_TOTAL);
                out->memory_available = (uint64_t)get_i64(&m, PF_MEM_AVAIL);
                out->pids = (uint32_t)get_i64(&m, PF_PIDS);
                uint64_t *cgm[] = {&out->cpu_user_ns,   &out->cpu_system_ns, &out->mem_usage,
                                   &out->mem_rss,       &out->mem_cache,     &out->mem_mapped_file,
                                   &out->mem_max_usage, &out->mem_failcnt,   &out->mem_limit,
                                   &out->oom_kills,     &out->processes,     &out->threads};
                for (size_t i = 0; i < ARRAY_SIZE(cgm); i++)
                        *cgm[i] = (uint64_t)get_i64(&m, (uint16_t)(PF_VM_CGM + i));
        }
        proto_msg_clear(&m);
        return r;
}

int shim_vm_shutdown(struct shim_conn *c, struct err *e)
{
        /* The VM gets 10 s to power off before it is killed. */
        return simple(c, OP_SHUTDOWN, NULL, CALL_TIMEOUT_MS * 3, e);
}

int shim_attach_connect(const char *state_dir, int *fd, struct err *e)
{
        int r = proto_connect(state_dir, SHIM_ATTACH_SOCKET, e);
        if (r < 0)
                return -1;
        *fd = r;
        return 0;
}
