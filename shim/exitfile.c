/* The exit file, <state>/exit: written by the shim (atomically, fsync'd),
 * read by corrald, also when the shim is gone. A small JSON object. */
#include <string.h>

#include <yajl/yajl_tree.h>

#include "shim/shim-internal.h"

static void put_i64(struct sbuf *b, const char *key, int64_t v, bool last)
{
        sbuf_printf(b, "\"%s\":%lld%s", key, (long long)v, last ? "" : ",");
}

int shim_exit_write(const char *state_dir, const struct shim_state *st, struct err *e)
{
        struct sbuf b = {0};
        sbuf_putc(&b, '{');
        put_i64(&b, "pid", st->pid, false);
        put_i64(&b, "exit_code", st->exit_code, false);
        put_i64(&b, "signal", st->signal, false);
        put_i64(&b, "created_ns", st->created_ns, false);
        put_i64(&b, "started_ns", st->started_ns, false);
        put_i64(&b, "finished_ns", st->finished_ns, false);
        sbuf_printf(&b, "\"oom_killed\":%s", st->oom_killed ? "true" : "false");
        if (st->reason[0]) {
                sbuf_puts(&b, ",\"reason\":");
                json_quote(&b, st->reason);
                sbuf_puts(&b, ",\"message\":");
                json_quote(&b, st->message);
        }
        sbuf_puts(&b, "}\n");
        cleanup_free char *path = path_join(state_dir, SHIM_EXIT_FILE);
        int r = file_write_atomic(path, b.buf, b.len, 0644, e);
        sbuf_free(&b);
        return r;
}

int shim_read_exit(const char *state_dir, struct shim_state *st, struct err *e)
{
        memset(st, 0, sizeof(*st));
        cleanup_free char *path = path_join(state_dir, SHIM_EXIT_FILE);
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all(path, &buf, &len, 1 << 16, e) < 0)
                return -1;
        yajl_val v = json_parse(buf, len, path, e);
        if (v == NULL)
                return -1;
        int64_t n;
        bool ok = json_get_int(v, "exit_code", &n);
        st->exit_code = (int)n;
        if (json_get_int(v, "pid", &n))
                st->pid = (pid_t)n;
        if (json_get_int(v, "signal", &n))
                st->signal = (int)n;
        if (json_get_int(v, "created_ns", &n))
                st->created_ns = n;
        if (json_get_int(v, "started_ns", &n))
                st->started_ns = n;
        if (json_get_int(v, "finished_ns", &n))
                st->finished_ns = n;
        (void)json_get_bool(v, "oom_killed", &st->oom_killed);
        const char *reason = json_get_str(v, "reason"), *msg = json_get_str(v, "message");
        if (reason)
                snprintf(st->reason, sizeof(st->reason), "%s", reason);
        if (msg)
                snprintf(st->message, sizeof(st->message), "%s", msg);
        yajl_tree_free(v);
        if (!ok)
                return err_set(e, ERR_DATA_LOSS, "%s: no exit_code", path);
        st->status = SHIM_EXITED;
        return 0;
}
