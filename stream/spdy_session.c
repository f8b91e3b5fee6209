/* The server side of an upgraded SPDY/3.1 connection: exec/attach streams
 * (kubelet remotecommand semantics) and port-forward stream pairs. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "stream/stream-internal.h"

#define MAX_FRAME   (SPDY_MAX_LEN)
#define MAX_HEADERS (256 * 1024)
#define MAX_PENDING (4 * 1024 * 1024)

struct pf_pair {
        char *request_id;
        uint16_t port;
        uint32_t data_id, error_id;
        int64_t created;
        int fd;
        bool started, connected, failed, client_fin, pending_fin, closing;
        atomic_bool thread_done;
        struct sbuf pending;
        pthread_t thr;
        struct spdy_sess *ss;
        struct pf_pair *next;
};

struct spdy_sess {
        struct session *s;
        struct spdy_zlib z;
        int version; /* 1..4 for exec/attach */
        uint32_t last_id;
        bool goaway_sent;
        atomic_bool finished;
        /* exec/attach */
        uint32_t ch_id[CH_MAX];
        bool fin_sent[CH_MAX];
        int expected, received;
        bool running;
        struct exec_run run;
        struct sbuf pend_stdin, pend_resize;
        bool pend_stdin_fin;
        /* port-forward */
        pthread_mutex_t pf_lock;
        pthread_cond_t pf_cv; /* a pair connected or failed */
        struct pf_pair *pairs;
};

/* ---------- writing ---------- */

static int send_buf(struct spdy_sess *ss, struct sbuf *b)
{
        pthread_mutex_lock(&ss->s->c.wlock);
        int r = conn_write_locked(&ss->s->c, b->buf, b->len);
        pthread_mutex_unlock(&ss->s->c.wlock);
        sbuf_free(b);
        return r;
}

static int send_data(struct spdy_sess *ss, uint32_t id, uint8_t flags, const void *data, size_t len)
{
        const char *p = data;
        do {
                size_t n = len > MAX_FRAME ? MAX_FRAME : len;
                struct sbuf b = {0};
                spdy_put_data(&b, id, (n == len) ? flags : 0, p, n);
                if (send_buf(ss, &b) < 0)
                        return -1;
                p += n;
                len -= n;
        } while (len);
        return 0;
}

static int send_reply(struct spdy_sess *ss, uint32_t id)
{
        struct sbuf raw = {0}, z = {0}, b = {0};
        spdy_headers_encode(NULL, NULL, 0, &raw);
        /* Compression state is per connection and order matters: compress and
         * write under the same lock. */
        pthread_mutex_lock(&ss->s->c.wlock);
        int r = spdy_zlib_deflate(&ss->z, raw.buf, raw.len, &z, NULL);
        if (r == 0) {
                spdy_put_syn_reply(&b, id, 0, z.buf, z.len);
                r = conn_write_locked(&ss->s->c, b.buf, b.len);
        }
        pthread_mutex_unlock(&ss->s->c.wlock);
        sbuf_free(&raw);
        sbuf_free(&z);
        sbuf_free(&b);
        return r;
}

static void send_rst(struct spdy_sess *ss, uint32_t id, uint32_t status)
{
        struct sbuf b = {0};
        spdy_put_rst(&b, id, status);
        (void)send_buf(ss, &b);
}

static void send_goaway(struct spdy_sess *ss, uint32_t status)
{
        if (ss->goaway_sent)
                return;
        ss->goaway_sent = true;
        struct sbuf b = {0};
        spdy_put_goaway(&b, ss->last_id, status);
        (void)send_buf(ss, &b);
}

/* ---------- exec/attach transport ---------- */

static int xp_send(void *x, int ch, const void *data, size_t len)
{
        struct spdy_sess *ss = x;
        if (!ss->ch_id[ch] || ss->fin_sent[ch])
                return 0;
        return send_data(ss, ss->ch_id[ch], 0, data, len);
}

static void xp_close(void *x, int ch)
{
        struct spdy_sess *ss = x;
        if (!ss->ch_id[ch] || ss->fin_sent[ch])
                return;
        ss->fin_sent[ch] = true;
        (void)send_data(ss, ss->ch_id[ch], SPDY_FLAG_FIN, NULL, 0);
}

static void xp_finish(void *x)
{
        struct spdy_sess *ss = x;
        atomic_store(&ss->finished, true);
        conn_wake(&ss->s->c);
}

static const struct exec_xport spdy_xport = {xp_send, xp_close, xp_finish};

static int stream_channel(const char *type)
{
        static const char *const names[CH_MAX] = {"stdin", "stdout", "stderr", "error", "resize"};
        for (int i = 0; i < CH_MAX; i++)
                if (type && strcasecmp(type, names[i]) == 0)
                        return i;
        return -1;
}

static void maybe_start(struct spdy_sess *ss)
{
        if (ss->running || ss->received < ss->expected)
                return;
        struct err e = ERR_INIT;
        void *bdata;
        const struct stream_backend *b = server_backend(ss->s->srv, &bdata);
        if (exec_run_start(&ss->run, b, bdata, ss->s->req, ss->version >= 4, &spdy_xport, ss, &e) < 0) {
                log_debug("stream", "exec start failed: %s", e.msg);
                err_clear(&e);
                xp_finish(ss);
                return;
        }
        ss->running = true;
        if (ss->pend_stdin.len)
                exec_run_stdin(&ss->run, ss->pend_stdin.buf, ss->pend_stdin.len);
        sbuf_free(&ss->pend_stdin);
        if (ss->pend_stdin_fin)
                exec_run_stdin_close(&ss->run);
        if (ss->pend_resize.len)
                exec_run_resize(&ss->run, ss->pend_resize.buf, ss->pend_resize.len);
        sbuf_free(&ss->pend_resize);
}

static void exec_syn(struct spdy_sess *ss, uint32_t id, const struct spdy_headers *h)
{
        int ch = stream_channel(spdy_headers_get(h, "streamtype"));
        if (send_reply(ss, id) < 0)
                return;
        if (ch < 0 || ss->ch_id[ch] || (ch == CH_RESIZE && ss->version < 3)) {
                log_debug("stream", "unexpected stream type=%s", spdy_headers_get(h, "streamtype"));
                return;
        }
        ss->ch_id[ch] = id;
        struct stream_request *q = ss->s->req;
        bool want = ch == CH_ERROR || (ch == CH_STDIN && q->use_stdin) ||
                    (ch == CH_STDOUT && q->use_stdout) || (ch == CH_STDERR && q->use_stderr) ||
                    (ch == CH_RESIZE && q->tty);
        if (want)
                ss->received++;
        maybe_start(ss);
}

static void exec_data(struct spdy_sess *ss, const struct spdy_frame *f)
{
        int ch = -1;
        for (int i = 0; i < CH_MAX; i++)
                if (ss->ch_id[i] == f->stream_id)
                        ch = i;
        bool fin = (f->flags & SPDY_FLAG_FIN) || f->type == SPDY_RST_STREAM;
        const void *d = f->type == SPDY_DATA ? f->payload : NULL;
        size_t n = f->type == SPDY_DATA ? f->payload_len : 0;
        if (ch == CH_STDIN) {
                if (ss->running) {
                        exec_run_stdin(&ss->run, d, n);
                        if (fin)
                                exec_run_stdin_close(&ss->run);
                } else {
                        if (ss->pend_stdin.len + n <= MAX_PENDING)
                                sbuf_append(&ss->pend_stdin, d, n);
                        ss->pend_stdin_fin |= fin;
                }
        } else if (ch == CH_RESIZE && n) {
                if (ss->running)
                        exec_run_resize(&ss->run, d, n);
                else if (ss->pend_resize.len + n <= 65536)
                        sbuf_append(&ss->pend_resize, d, n);
        }
        if (f->type == SPDY_RST_STREAM && ch >= 0)
                ss->fin_sent[ch] = true; /* nothing more may be sent on it */
}

/* ---------- port-forward ---------- */

static void *pf_main(void *arg)
{
        struct pf_pair *p = arg;
        struct spdy_sess *ss = p->ss;
        struct err e = ERR_INIT;
        void *bdata;
        const struct stream_backend *b = server_backend(ss->s->srv, &bdata);
        int fd = -1;
        int r = b->portforward ? b->portforward(bdata, ss->s->req->container_id, p->port, &fd, &e)
                               : err_set(&e, ERR_UNIMPLEMENTED, "port-forward is not supported");
        if (r < 0) {
                cleanup_free char *msg = xasprintf("error forwarding port %u to pod %s, uid : %s", p->port,
                                                   ss->s->req->container_id, e.msg ? e.msg : "failed");
                err_clear(&e);
                pthread_mutex_lock(&ss->pf_lock);
                p->failed = true;
                pthread_cond_broadcast(&ss->pf_cv);
                pthread_mutex_unlock(&ss->pf_lock);
                (void)send_data(ss, p->error_id, 0, msg, strlen(msg));
                (void)send_data(ss, p->error_id, SPDY_FLAG_FIN, NULL, 0);
                (void)send_data(ss, p->data_id, SPDY_FLAG_FIN, NULL, 0);
                atomic_store(&p->thread_done, true);
                return NULL;
        }
        pthread_mutex_lock(&ss->pf_lock);
        p->fd = fd;
        if (p->pending.len)
                (void)sock_send_all(fd, p->pending.buf, p->pending.len);
        sbuf_free(&p->pending);
        if (p->pending_fin)
                (void)shutdown(fd, SHUT_WR);
        if (p->closing)
                (void)shutdown(fd, SHUT_RDWR);
        p->connected = true;
        pthread_cond_broadcast(&ss->pf_cv);
        pthread_mutex_unlock(&ss->pf_lock);

        char buf[65536];
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (send_data(ss, p->data_id, 0, buf, (size_t)n) < 0)
                        break;
        }
        /* The pod closed its side: FIN the data stream, and the error stream
         * (the client waits for it before it lets the connection go). */
        (void)send_data(ss, p->data_id, SPDY_FLAG_FIN, NULL, 0);
        (void)send_data(ss, p->error_id, SPDY_FLAG_FIN, NULL, 0);
        atomic_store(&p->thread_done, true);
        return NULL;
}

static struct pf_pair *pf_find(struct spdy_sess *ss, uint32_t id)
{
        for (struct pf_pair *p = ss->pairs; p; p = p->next)
                if (p->data_id == id || p->error_id == id)
                        return p;
        return NULL;
}

static void pf_free(struct pf_pair *p)
{
        if (p->started)
                pthread_join(p->thr, NULL);
        if (p->fd >= 0)
                close(p->fd);
        sbuf_free(&p->pending);
        free(p->request_id);
        free(p);
}

/* Free the pairs that are over in both directions; lock not held. */
static void pf_reap(struct spdy_sess *ss, bool all)
{
        struct pf_pair *dead = NULL;
        pthread_mutex_lock(&ss->pf_lock);
        for (struct pf_pair **pp = &ss->pairs; *pp;) {
                struct pf_pair *p = *pp;
                bool over = p->started && atomic_load(&p->thread_done) && (p->client_fin || p->failed);
                if (all) {
                        p->closing = true;
                        if (p->fd >= 0)
                                (void)shutdown(p->fd, SHUT_RDWR);
                        over = true;
                }
                if (over) {
                        *pp = p->next;
                        p->next = dead;
                        dead = p;
                } else {
                        pp = &p->next;
                }
        }
        pthread_mutex_unlock(&ss->pf_lock);
        while (dead) {
                struct pf_pair *n = dead->next;
                pf_free(dead);
                dead = n;
        }
}

static void pf_syn(struct spdy_sess *ss, uint32_t id, const struct spdy_headers *h)
{
        const char *type = spdy_headers_get(h, "streamtype");
        const char *port_s = spdy_headers_get(h, "port");
        const char *rid = spdy_headers_get(h, "requestid");
        char *end = NULL;
        unsigned long port = port_s ? strtoul(port_s, &end, 10) : 0;
        bool is_data = type && strcasecmp(type, "data") == 0;
        bool is_error = type && strcasecmp(type, "error") == 0;
        if (!port_s || !*port_s || *end || port == 0 || port > 65535 || (!is_data && !is_error)) {
                log_debug("stream", "port-forward stream rejected type=%s port=%s", type, port_s);
                send_rst(ss, id, SPDY_RST_PROTOCOL_ERROR);
                return;
        }
        /* Old clients send no requestID: pair stream n (error) with n+2 (data). */
        cleanup_free char *req_id = rid && *rid ? xstrdup(rid) : xasprintf("%u", is_error ? id : id - 2);

        pthread_mutex_lock(&ss->pf_lock);
        struct pf_pair *p = ss->pairs;
        for (; p; p = p->next)
                if (strcmp(p->request_id, req_id) == 0)
                        break;
        if (p && ((is_data && p->data_id) || (is_error && p->error_id) || p->port != port)) {
                pthread_mutex_unlock(&ss->pf_lock);
                send_rst(ss, id, SPDY_RST_PROTOCOL_ERROR);
                return;
        }
        if (!p) {
                p = xzalloc(sizeof(*p));
                p->request_id = steal_ptr(&req_id);
                p->port = (uint16_t)port;
                p->fd = -1;
                p->ss = ss;
                p->created = time_mono_ns();
                p->next = ss->pairs;
                ss->pairs = p;
        }
        if (is_data)
                p->data_id = id;
        else
                p->error_id = id;
        pthread_mutex_unlock(&ss->pf_lock);

        if (send_reply(ss, id) < 0)
                return;
        if (p->data_id && p->error_id && !p->started) {
                if (pthread_create(&p->thr, NULL, pf_main, p) == 0)
                        p->started = true;
                else
                        send_rst(ss, p->data_id, SPDY_RST_INTERNAL_ERROR);
        }
}

static void pf_data(struct spdy_sess *ss, const struct spdy_frame *f)
{
        pthread_mutex_lock(&ss->pf_lock);
        struct pf_pair *p = pf_find(ss, f->stream_id);
        if (!p || p->data_id != f->stream_id || p->client_fin) {
                /* data on an error stream is ignored; its FIN too */
                pthread_mutex_unlock(&ss->pf_lock);
                return;
        }
        bool rst = f->type == SPDY_RST_STREAM;
        bool fin = rst || (f->flags & SPDY_FLAG_FIN);
        /* More than fits before the pod connection is up: hold this reader (and
         * the client, through TCP) until it is, instead of dropping bytes. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        while (!rst && !p->connected && !p->failed && p->started &&
               p->pending.len + f->payload_len > MAX_PENDING)
                if (pthread_cond_timedwait(&ss->pf_cv, &ss->pf_lock, &until) == ETIMEDOUT)
                        break;
        if (!p->connected) {
                bool overflow = !rst && !p->failed && p->pending.len + f->payload_len > MAX_PENDING;
                if (!rst && !overflow)
                        sbuf_append(&p->pending, f->payload, f->payload_len);
                if (fin || overflow) {
                        p->pending_fin = true;
                        p->client_fin = true;
                }
                if (overflow)
                        p->failed = true;
                uint32_t err_id = p->error_id, data_id = p->data_id;
                pthread_mutex_unlock(&ss->pf_lock);
                if (overflow) {
                        static const char msg[] =
                                "port-forward: the connection to the pod was not up in time "
                                "and more than 4 MiB were waiting: stream closed";
                        (void)send_data(ss, err_id, 0, msg, sizeof(msg) - 1);
                        (void)send_data(ss, err_id, SPDY_FLAG_FIN, NULL, 0);
                        (void)send_data(ss, data_id, SPDY_FLAG_FIN, NULL, 0);
                }
                return;
        }
        int fd = p->fd;
        if (fin)
                p->client_fin = true;
        pthread_mutex_unlock(&ss->pf_lock);
        /* Only this thread closes fds (in pf_reap), so fd stays valid. */
        if (!rst && f->type == SPDY_DATA && f->payload_len) {
                (void)sock_send_all(fd, f->payload, f->payload_len);
        }
        if (fin)
                (void)shutdown(fd, rst ? SHUT_RDWR : SHUT_WR);
}

/* Pairs whose second stream never came: report and reset, as kubelet does. */
static int pf_expire(struct spdy_sess *ss, int timeout_ms)
{
        int64_t now = time_mono_ns(), next = -1;
        pthread_mutex_lock(&ss->pf_lock);
        for (struct pf_pair **pp = &ss->pairs; *pp;) {
                struct pf_pair *p = *pp;
                if (p->started) {
                        pp = &p->next;
                        continue;
                }
                int64_t due = p->created + (int64_t)timeout_ms * 1000000;
                if (due > now) {
                        int64_t left = (due - now) / 1000000 + 1;
                        if (next < 0 || left < next)
                                next = left;
                        pp = &p->next;
                        continue;
                }
                *pp = p->next;
                pthread_mutex_unlock(&ss->pf_lock);
                static const char msg[] = "timed out waiting for streams";
                if (p->error_id) {
                        (void)send_data(ss, p->error_id, 0, msg, sizeof(msg) - 1);
                        send_rst(ss, p->error_id, SPDY_RST_CANCEL);
                }
                if (p->data_id)
                        send_rst(ss, p->data_id, SPDY_RST_CANCEL);
                pf_free(p);
                pthread_mutex_lock(&ss->pf_lock);
                pp = &ss->pairs;
        }
        pthread_mutex_unlock(&ss->pf_lock);
        return next < 0 ? -1 : (int)(next > 60000 ? 60000 : next);
}

/* ---------- the reader loop ---------- */

/* One frame. Returns -1 for a connection-level protocol error. */
static int handle_frame(struct spdy_sess *ss, const struct spdy_frame *f, bool pf)
{
        struct err e = ERR_INIT;
        switch (f->type) {
        case SPDY_SYN_STREAM:
        case SPDY_SYN_REPLY:
        case SPDY_HEADERS: {
                /* Every header block goes through the inflater, in order. */
                struct sbuf raw = {0};
                struct spdy_headers h = {0};
                if (spdy_zlib_inflate(&ss->z, f->payload, f->payload_len, MAX_HEADERS, &raw, &e) < 0 ||
                    spdy_headers_decode((const uint8_t *)raw.buf, raw.len, &h, &e) < 0) {
                        log_debug("stream", "spdy: %s", e.msg);
                        err_clear(&e);
                        sbuf_free(&raw);
                        return -1;
                }
                sbuf_free(&raw);
                if (f->type == SPDY_SYN_STREAM) {
                        if (!(f->stream_id & 1) || f->stream_id <= ss->last_id) {
                                spdy_headers_free(&h);
                                return -1; /* stream ids from the client are odd and increase */
                        }
                        ss->last_id = f->stream_id;
                        if (ss->goaway_sent || atomic_load(&ss->finished))
                                send_rst(ss, f->stream_id, SPDY_RST_REFUSED_STREAM);
                        else if (pf)
                                pf_syn(ss, f->stream_id, &h);
                        else
                                exec_syn(ss, f->stream_id, &h);
                        if (!pf && (f->flags & SPDY_FLAG_FIN)) {
                                struct spdy_frame fin = *f;
                                fin.type = SPDY_DATA;
                                fin.payload_len = 0;
                                exec_data(ss, &fin);
                        }
                }
                spdy_headers_free(&h);
                return 0;
        }
        case SPDY_DATA:
        case SPDY_RST_STREAM:
                if (pf)
                        pf_data(ss, f);
                else
                        exec_data(ss, f);
                return 0;
        case SPDY_PING:
                if (f->value & 1) { /* client-initiated: echo */
                        struct sbuf b = {0};
                        spdy_put_ping(&b, f->value);
                        (void)send_buf(ss, &b);
                }
                return 0;
        default:
                /* SETTINGS, WINDOW_UPDATE (spdystream keeps no flow-control
                 * windows, neither do we), GOAWAY (the client closes next),
                 * unknown control frames: nothing to do. */
                return 0;
        }
}

void spdy_session_run(struct session *s)
{
        struct spdy_sess *ss = xzalloc(sizeof(*ss));
        ss->s = s;
        pthread_mutex_init(&ss->pf_lock, NULL);
        pthread_cond_init(&ss->pf_cv, NULL);
        bool pf = s->req->kind == KIND_PORTFORWARD;
        const char *proto = s->protocol ? s->protocol : "";
        ss->version = strcmp(proto, PROTO_V4) == 0   ? 4
                      : strcmp(proto, PROTO_V3) == 0 ? 3
                      : strcmp(proto, PROTO_V2) == 0 ? 2
                                                     : 1;
        int timeout_ms = server_stream_timeout_ms(s->srv);
        int64_t wait_until = time_mono_ns() + (int64_t)timeout_ms * 1000000;
        struct err e = ERR_INIT;
        if (spdy_zlib_init(&ss->z, &e) < 0) {
                log_debug("stream", "spdy: %s", e.msg);
                err_clear(&e);
                goto out;
        }
        if (!pf) {
                struct stream_request *q = s->req;
                ss->expected =
                        1 + q->use_stdin + q->use_stdout + q->use_stderr + (q->tty && ss->version >= 3);
        }

        bool protocol_error = false;
        for (;;) {
                /* frames already buffered first */
                for (;;) {
                        struct spdy_frame f;
                        long n = spdy_parse(s->c.rbuf, s->c.rlen, MAX_FRAME, &f, &e);
                        if (n < 0) {
                                log_debug("stream", "spdy: closing connection: %s", e.msg);
                                err_clear(&e);
                                protocol_error = true;
                                break;
                        }
                        if (n == 0)
                                break;
                        int r = handle_frame(ss, &f, pf);
                        conn_consume(&s->c, (size_t)n);
                        if (r < 0) {
                                protocol_error = true;
                                break;
                        }
                }
                if (protocol_error || atomic_load(&ss->finished))
                        break;
                int wait = -1;
                if (pf) {
                        pf_reap(ss, false);
                        wait = pf_expire(ss, timeout_ms);
                } else if (!ss->running) {
                        int64_t left = (wait_until - time_mono_ns()) / 1000000;
                        if (left <= 0) {
                                log_debug("stream", "timed out waiting for client to create streams");
                                break;
                        }
                        wait = (int)left;
                }
                int r = conn_fill(&s->c, wait);
                if (r == -1 || r == -2)
                        break; /* peer gone, or told to stop */
        }

        if (protocol_error)
                send_goaway(ss, SPDY_GOAWAY_PROTOCOL_ERROR);
        if (ss->running) {
                if (!atomic_load(&ss->finished))
                        exec_run_cancel(&ss->run); /* the client left or the server stops */
                exec_run_join(&ss->run);
        }
        if (pf)
                pf_reap(ss, true);
        send_goaway(ss, SPDY_GOAWAY_OK);
        conn_linger(&s->c, true, protocol_error ? 200 : 2000);
out:
        spdy_zlib_free(&ss->z);
        sbuf_free(&ss->pend_stdin);
        sbuf_free(&ss->pend_resize);
        pthread_mutex_destroy(&ss->pf_lock);
        pthread_cond_destroy(&ss->pf_cv);
        free(ss);
}
