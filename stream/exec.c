/* The exec/attach core shared by SPDY and WebSocket: pipes to the backend,
 * the backend call on its own thread, the output pump, resize messages and
 * the final status on the error channel, as kubelet's remotecommand does. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>

#include <yajl/yajl_tree.h>

#include "stream/stream-internal.h"

/* How long to keep reading output after the process exited (a background
 * child may hold the pipe open). */
#define DRAIN_MS 5000

static void close_fd(int *fd)
{
        if (*fd >= 0)
                close(*fd);
        *fd = -1;
}

/* Go's encoding/json string form, HTML-safe escapes included, so the Status
 * is byte for byte what kubelet sends. */
static void go_quote(struct sbuf *b, const char *s)
{
        sbuf_putc(b, '"');
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                switch (*p) {
                case '"':
                        sbuf_puts(b, "\\\"");
                        break;
                case '\\':
                        sbuf_puts(b, "\\\\");
                        break;
                case '\n':
                        sbuf_puts(b, "\\n");
                        break;
                case '\r':
                        sbuf_puts(b, "\\r");
                        break;
                case '\t':
                        sbuf_puts(b, "\\t");
                        break;
                case '<':
                        sbuf_puts(b, "\\u003c");
                        break;
                case '>':
                        sbuf_puts(b, "\\u003e");
                        break;
                case '&':
                        sbuf_puts(b, "\\u0026");
                        break;
                default:
                        if (*p < 0x20)
                                sbuf_printf(b, "\\u%04x", *p);
                        else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
                                sbuf_printf(b, "\\u202%c", p[2] == 0xa8 ? '8' : '9');
                                p += 2;
                        } else
                                sbuf_putc(b, (char)*p);
                }
        }
        sbuf_putc(b, '"');
}

char *exec_status_payload(enum stream_kind kind, char *const *cmd, int rc, int exit_code, const char *errmsg,
                          bool json)
{
        struct sbuf b = {0};
        if (rc == 0 && exit_code == 0) {
                if (!json)
                        return NULL;
                sbuf_puts(&b, "{\"metadata\":{},\"status\":\"Success\"}");
                return sbuf_steal(&b);
        }
        if (rc == 0) {
                /* Go's %v of the argv: [a b c] */
                struct sbuf argv = {0};
                sbuf_putc(&argv, '[');
                for (size_t i = 0; cmd && cmd[i]; i++)
                        sbuf_printf(&argv, "%s%s", i ? " " : "", cmd[i]);
                sbuf_putc(&argv, ']');
                cleanup_free char *msg = xasprintf("command terminated with non-zero exit code: error "
                                                   "executing command %s, exit code %d",
                                                   argv.buf, exit_code);
                sbuf_free(&argv);
                if (!json)
                        return xstrdup(msg);
                sbuf_puts(&b, "{\"metadata\":{},\"status\":\"Failure\",\"message\":");
                go_quote(&b, msg);
                sbuf_printf(
                        &b,
                        ",\"reason\":\"NonZeroExitCode\",\"details\":{\"causes\":[{\"reason\":\"ExitCode\","
                        "\"message\":\"%d\"}]}}",
                        exit_code);
                return sbuf_steal(&b);
        }
        cleanup_free char *inner = xasprintf("%s: %s",
                                             kind == KIND_ATTACH ? "error attaching to container"
                                                                 : "error executing command in container",
                                             errmsg ? errmsg : "unknown error");
        cleanup_free char *msg = xasprintf("Internal error occurred: %s", inner);
        if (!json)
                return xstrdup(msg);
        sbuf_puts(&b, "{\"metadata\":{},\"status\":\"Failure\",\"message\":");
        go_quote(&b, msg);
        sbuf_puts(&b, ",\"reason\":\"InternalError\",\"details\":{\"causes\":[{\"message\":");
        go_quote(&b, inner);
        sbuf_puts(&b, "}]},\"code\":500}");
        return sbuf_steal(&b);
}

static void *backend_main(void *arg)
{
        struct exec_run *r = arg;
        struct err e = ERR_INIT;
        struct stream_request *q = r->req;
        if (q->kind == KIND_EXEC) {
                struct stream_exec_req req = {
                        .container_id = q->container_id,
                        .cmd = q->cmd,
                        .tty = q->tty,
                        .use_stdin = q->use_stdin,
                        .use_stdout = q->use_stdout,
                        .use_stderr = q->use_stderr,
                };
                r->exit_code = -1;
                r->rc = r->backend->exec ? r->backend->exec(r->backend_data, &req, &r->io, &r->exit_code, &e)
                                         : err_set(&e, ERR_UNIMPLEMENTED, "exec is not supported");
        } else {
                struct stream_attach_req req = {
                        .container_id = q->container_id,
                        .tty = q->tty,
                        .use_stdin = q->use_stdin,
                        .use_stdout = q->use_stdout,
                        .use_stderr = q->use_stderr,
                };
                r->exit_code = 0;
                r->rc = r->backend->attach ? r->backend->attach(r->backend_data, &req, &r->io, &e)
                                           : err_set(&e, ERR_UNIMPLEMENTED, "attach is not supported");
        }
        if (r->rc < 0) {
                r->errmsg = e.msg ? xstrdup(e.msg) : xstrdup("backend failed");
                log_debug("stream", "backend failed container=%s err=%s", q->container_id, r->errmsg);
        }
        err_clear(&e);
        /* The write ends go away with the call: EOF for the pump. */
        close_fd(&r->io.stdin_fd);
        close_fd(&r->io.stdout_fd);
        close_fd(&r->io.stderr_fd);
        uint64_t one = 1;
        (void)!write(r->done_efd, &one, sizeof(one));
        return NULL;
}

static void *pump_main(void *arg)
{
        struct exec_run *r = arg;
        int fds[2] = {r->out_r, r->err_r};
        const int chans[2] = {CH_STDOUT, CH_STDERR};
        bool sending[2] = {true, true};
        bool done = false;
        int64_t deadline = 0;
        char buf[32768];

        for (;;) {
                struct pollfd p[3];
                int idx[3], n = 0;
                for (int i = 0; i < 2; i++)
                        if (fds[i] >= 0) {
                                p[n] = (struct pollfd){.fd = fds[i], .events = POLLIN};
                                idx[n++] = i;
                        }
                if (!done) {
                        p[n] = (struct pollfd){.fd = r->done_efd, .events = POLLIN};
                        idx[n++] = -1;
                }
                if (n == 0)
                        break;
                int timeout = -1;
                if (done) {
                        int64_t left = (deadline - time_mono_ns()) / 1000000;
                        if (left <= 0)
                                break; /* something still holds the pipes: stop waiting */
                        timeout = (int)left;
                }
                int pr = poll(p, (nfds_t)n, timeout);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr < 0)
                        break;
                for (int k = 0; k < n; k++) {
                        if (!p[k].revents)
                                continue;
                        if (idx[k] < 0) {
                                done = true;
                                deadline = time_mono_ns() + (int64_t)DRAIN_MS * 1000000;
                                continue;
                        }
                        int i = idx[k];
                        ssize_t got = read(fds[i], buf, sizeof(buf));
                        if (got < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (got <= 0) {
                                close_fd(&fds[i]);
                                r->xp->close_ch(r->x, chans[i]);
                                continue;
                        }
                        if (sending[i] && r->xp->send(r->x, chans[i], buf, (size_t)got) < 0)
                                sending[i] =
                                        false; /* client gone: keep draining so the process is not stuck */
                }
        }
        for (int i = 0; i < 2; i++)
                if (fds[i] >= 0) {
                        close_fd(&fds[i]);
                        r->xp->close_ch(r->x, chans[i]);
                }
        r->out_r = r->err_r = -1;
        if (!done) {
                /* the pipes closed first: wait for the backend's verdict */
                struct pollfd p = {.fd = r->done_efd, .events = POLLIN};
                while (poll(&p, 1, -1) < 0 && errno == EINTR)
                        ;
        }
        cleanup_free char *status = exec_status_payload(r->req->kind, r->req->cmd, r->rc, r->exit_code,
                                                        r->errmsg, r->status_json);
        if (status)
                (void)r->xp->send(r->x, CH_ERROR, status, strlen(status));
        r->xp->close_ch(r->x, CH_ERROR);
        r->xp->finish(r->x);
        return NULL;
}

static int make_pipe(int p[2], struct err *e)
{
        if (pipe2(p, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        return 0;
}

int exec_run_start(struct exec_run *r, const struct stream_backend *b, void *bdata,
                   struct stream_request *req, bool status_json, const struct exec_xport *xp, void *x,
                   struct err *e)
{
        memset(r, 0, sizeof(*r));
        r->backend = b;
        r->backend_data = bdata;
        r->req = req;
        r->status_json = status_json;
        r->xp = xp;
        r->x = x;
        r->stdin_w = r->out_r = r->err_r = -1;
        r->io.stdin_fd = r->io.stdout_fd = r->io.stderr_fd = r->io.cancel_fd = -1;
        r->done_efd = -1;
        r->io.priv = r;
        pthread_mutex_init(&r->lock, NULL);

        int p[2];
        if (req->use_stdin) {
                if (make_pipe(p, e) < 0)
                        goto fail;
                r->io.stdin_fd = p[0];
                r->stdin_w = p[1];
        }
        if (req->use_stdout) {
                if (make_pipe(p, e) < 0)
                        goto fail;
                r->out_r = p[0];
                r->io.stdout_fd = p[1];
        }
        if (req->use_stderr && !req->tty) {
                if (make_pipe(p, e) < 0)
                        goto fail;
                r->err_r = p[0];
                r->io.stderr_fd = p[1];
        }
        r->io.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        r->done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (r->io.cancel_fd < 0 || r->done_efd < 0) {
                err_make(e, errno, "eventfd");
                goto fail;
        }
        int rc = pthread_create(&r->backend_thr, NULL, backend_main, r);
        if (rc != 0) {
                err_make(e, rc, "pthread_create");
                goto fail;
        }
        rc = pthread_create(&r->pump_thr, NULL, pump_main, r);
        if (rc != 0) {
                /* cannot happen often; stop the backend and wait for it */
                exec_run_cancel(r);
                pthread_join(r->backend_thr, NULL);
                err_make(e, rc, "pthread_create");
                goto fail;
        }
        r->started = true;
        return 0;
fail:
        close_fd(&r->stdin_w);
        close_fd(&r->out_r);
        close_fd(&r->err_r);
        close_fd(&r->io.stdin_fd);
        close_fd(&r->io.stdout_fd);
        close_fd(&r->io.stderr_fd);
        close_fd(&r->io.cancel_fd);
        close_fd(&r->done_efd);
        pthread_mutex_destroy(&r->lock);
        return -1;
}

void exec_run_stdin(struct exec_run *r, const void *data, size_t len)
{
        if (r->stdin_w < 0 || len == 0)
                return;
        /* A process that exited closes the pipe: EPIPE, and the SIGPIPE it
         * raises stays pending on this thread (blocked) and is consumed. */
        sigset_t pipe_set, old;
        sigemptyset(&pipe_set);
        sigaddset(&pipe_set, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
        if (fd_write_all(r->stdin_w, data, len) < 0 && errno == EPIPE) {
                struct timespec zero = {0, 0};
                (void)sigtimedwait(&pipe_set, NULL, &zero);
                close_fd(&r->stdin_w);
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void exec_run_stdin_close(struct exec_run *r)
{
        close_fd(&r->stdin_w);
}

static void deliver_resize(struct exec_run *r, uint16_t w, uint16_t h)
{
        pthread_mutex_lock(&r->lock);
        if (r->resize_fn) {
                r->resize_fn(r->resize_data, w, h);
        } else {
                r->resize_pending = true;
                r->pend_w = w;
                r->pend_h = h;
        }
        pthread_mutex_unlock(&r->lock);
}

void exec_run_resize(struct exec_run *r, const void *data, size_t len)
{
        /* A stream of JSON objects ({"Width":W,"Height":H}), split anywhere. */
        sbuf_append(&r->resize_buf, data, len);
        size_t start = 0;
        for (;;) {
                size_t i = start;
                while (i < r->resize_buf.len && r->resize_buf.buf[i] != '{')
                        i++;
                if (i >= r->resize_buf.len) {
                        start = r->resize_buf.len;
                        break;
                }
                size_t j = i;
                int depth = 0;
                bool in_str = false, esc = false, complete = false;
                for (; j < r->resize_buf.len; j++) {
                        char ch = r->resize_buf.buf[j];
                        if (in_str) {
                                if (esc)
                                        esc = false;
                                else if (ch == '\\')
                                        esc = true;
                                else if (ch == '"')
                                        in_str = false;
                        } else if (ch == '"') {
                                in_str = true;
                        } else if (ch == '{') {
                                depth++;
                        } else if (ch == '}' && --depth == 0) {
                                complete = true;
                                break;
                        }
                }
                if (!complete) {
                        start = i;
                        break;
                }
                struct err e = ERR_INIT;
                yajl_val v = json_parse(r->resize_buf.buf + i, j + 1 - i, "resize message", &e);
                int64_t w = 0, h = 0;
                if (v && json_get_int(v, "Width", &w) && json_get_int(v, "Height", &h) && w >= 0 && h >= 0 &&
                    w <= 0xffff && h <= 0xffff)
                        deliver_resize(r, (uint16_t)w, (uint16_t)h);
                else
                        log_debug("stream", "bad resize message ignored");
                if (v)
                        yajl_tree_free(v);
                err_clear(&e);
                start = j + 1;
        }
        if (start > 0) {
                memmove(r->resize_buf.buf, r->resize_buf.buf + start, r->resize_buf.len - start);
                r->resize_buf.len -= start;
                r->resize_buf.buf[r->resize_buf.len] = 0;
        }
        if (r->resize_buf.len > 4096) /* garbage without braces: do not grow forever */
                r->resize_buf.len = 0;
}

void stream_io_set_resize(struct stream_io *io, void (*fn)(void *data, uint16_t width, uint16_t height),
                          void *data)
{
        struct exec_run *r = io->priv;
        if (!r)
                return;
        pthread_mutex_lock(&r->lock);
        r->resize_fn = fn;
        r->resize_data = data;
        if (fn && r->resize_pending) {
                r->resize_pending = false;
                fn(data, r->pend_w, r->pend_h);
        }
        pthread_mutex_unlock(&r->lock);
}

bool stream_io_cancelled(const struct stream_io *io)
{
        struct pollfd p = {.fd = io->cancel_fd, .events = POLLIN};
        return io->cancel_fd >= 0 && poll(&p, 1, 0) > 0;
}

void exec_run_cancel(struct exec_run *r)
{
        uint64_t one = 1;
        if (r->io.cancel_fd >= 0)
                (void)!write(r->io.cancel_fd, &one, sizeof(one));
        close_fd(&r->stdin_w);
}

void exec_run_join(struct exec_run *r)
{
        if (!r->started)
                return;
        pthread_join(r->backend_thr, NULL);
        pthread_join(r->pump_thr, NULL);
        close_fd(&r->stdin_w);
        close_fd(&r->out_r);
        close_fd(&r->err_r);
        close_fd(&r->io.cancel_fd);
        close_fd(&r->done_efd);
        sbuf_free(&r->resize_buf);
        free(r->errmsg);
        r->errmsg = NULL;
        pthread_mutex_destroy(&r->lock);
        r->started = false;
}
