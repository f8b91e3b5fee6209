/* The server side of an upgraded WebSocket connection: k8s channel
 * protocols (a channel byte in front of each message; base64 variant; v5
 * close signal) for exec/attach, and port-forward channel pairs. */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>

#include "stream/stream-internal.h"

#define MAX_MESSAGE  (16 * 1024 * 1024)
#define MAX_PENDING  (4 * 1024 * 1024)
#define CLOSE_SIGNAL 255 /* v5.channel.k8s.io: [255, channel] closes that channel */

struct ws_port {
        uint16_t port;
        int fd;
        bool started, connected, failed, closing;
        struct sbuf pending;
        pthread_t thr;
        struct ws_sess *ws;
        unsigned index;
};

struct ws_sess {
        struct session *s;
        atomic_bool finished;
        bool close_sent;
        struct sbuf msg;
        uint8_t msg_op;
        bool in_msg;
        bool running;
        struct exec_run run;
        pthread_mutex_t lock;
        pthread_cond_t port_cv; /* a port connected or failed */
        struct ws_port *ports;
        unsigned ports_left;
};

int ws_send_frame(struct session *s, bool *close_sent, uint8_t op, const void *data, size_t len)
{
        struct sbuf b = {0};
        ws_put_frame(&b, op, true, data, len, NULL);
        pthread_mutex_lock(&s->c.wlock);
        int r = *close_sent ? -1 : conn_write_locked(&s->c, b.buf, b.len);
        if (op == WS_CLOSE)
                *close_sent = true;
        pthread_mutex_unlock(&s->c.wlock);
        sbuf_free(&b);
        return r;
}

void ws_send_close(struct session *s, bool *close_sent, uint16_t code)
{
        uint8_t p[2] = {code >> 8, code & 0xff};
        (void)ws_send_frame(s, close_sent, WS_CLOSE, p, 2);
}

static int send_frame(struct ws_sess *ws, uint8_t op, const void *data, size_t len)
{
        return ws_send_frame(ws->s, &ws->close_sent, op, data, len);
}

/* One message on channel ch: binary [ch]+data, or text '0'+ch + base64(data). */
static int send_channel(struct ws_sess *ws, unsigned ch, const void *data, size_t len)
{
        struct sbuf m = {0};
        int r;
        if (ws->s->base64) {
                sbuf_putc(&m, (char)('0' + ch));
                cleanup_free char *b = base64_encode(data, len);
                sbuf_puts(&m, b);
                r = send_frame(ws, WS_TEXT, m.buf, m.len);
        } else {
                sbuf_putc(&m, (char)ch);
                if (len)
                        sbuf_append(&m, data, len);
                r = send_frame(ws, WS_BINARY, m.buf, m.len);
        }
        sbuf_free(&m);
        return r;
}

static void finish(struct ws_sess *ws)
{
        atomic_store(&ws->finished, true);
        conn_wake(&ws->s->c);
}

/* ---------- exec/attach transport ---------- */

static int xp_send(void *x, int ch, const void *data, size_t len)
{
        return send_channel(x, (unsigned)ch, data, len);
}

static void xp_close(void *x, int ch)
{
        /* WebSocket channels have no end-of-stream of their own (v5's close
         * signal is for the client's stdin); the close frame ends them all. */
        (void)x;
        (void)ch;
}

static void xp_finish(void *x)
{
        finish(x);
}

static const struct exec_xport ws_xport = {xp_send, xp_close, xp_finish};

static void exec_message(struct ws_sess *ws, const uint8_t *m, size_t len)
{
        if (len == 0 || !ws->running)
                return;
        unsigned ch;
        const uint8_t *d;
        size_t n;
        cleanup_free char *dec = NULL;
        size_t dn = 0;
        if (ws->s->base64 && ws->msg_op == WS_TEXT) {
                if (m[0] < '0' || m[0] > '9')
                        return;
                ch = m[0] - '0';
                if ((dec = base64_decode_n((const char *)m + 1, len - 1, &dn)) == NULL) {
                        log_debug("stream", "websocket: bad base64 message ignored");
                        return;
                }
                d = (const uint8_t *)dec;
                n = dn;
        } else {
                ch = m[0];
                d = m + 1;
                n = len - 1;
        }
        if (ch == CLOSE_SIGNAL && ws->s->v5) {
                if (n >= 1 && d[0] == CH_STDIN)
                        exec_run_stdin_close(&ws->run);
        } else if (ch == CH_STDIN) {
                exec_run_stdin(&ws->run, d, n);
        } else if (ch == CH_RESIZE) {
                exec_run_resize(&ws->run, d, n);
        }
}

/* ---------- port-forward ---------- */

static void port_done(struct ws_sess *ws)
{
        pthread_mutex_lock(&ws->lock);
        bool last = --ws->ports_left == 0;
        pthread_mutex_unlock(&ws->lock);
        if (last)
                finish(ws);
}

static void *port_main(void *arg)
{
        struct ws_port *p = arg;
        struct ws_sess *ws = p->ws;
        struct err e = ERR_INIT;
        void *bdata;
        const struct stream_backend *b = server_backend(ws->s->srv, &bdata);
        int fd = -1;
        int r = b->portforward ? b->portforward(bdata, ws->s->req->container_id, p->port, &fd, &e)
                               : err_set(&e, ERR_UNIMPLEMENTED, "port-forward is not supported");
        if (r < 0) {
                cleanup_free char *msg = xasprintf("error forwarding port %u to pod %s, uid : %s", p->port,
                                                   ws->s->req->container_id, e.msg ? e.msg : "failed");
                err_clear(&e);
                pthread_mutex_lock(&ws->lock);
                p->failed = true;
                pthread_cond_broadcast(&ws->port_cv);
                pthread_mutex_unlock(&ws->lock);
                (void)send_channel(ws, p->index * 2 + 1, msg, strlen(msg));
                port_done(ws);
                return NULL;
        }
        pthread_mutex_lock(&ws->lock);
        p->fd = fd;
        if (p->pending.len)
                (void)sock_send_all(fd, p->pending.buf, p->pending.len);
        sbuf_free(&p->pending);
        if (p->closing)
                (void)shutdown(fd, SHUT_RDWR);
        p->connected = true;
        pthread_cond_broadcast(&ws->port_cv);
        pthread_mutex_unlock(&ws->lock);

        char buf[65536];
        for (;;) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (send_channel(ws, p->index * 2, buf, (size_t)n) < 0)
                        break;
        }
        port_done(ws);
        return NULL;
}

static void pf_message(struct ws_sess *ws, const uint8_t *m, size_t len)
{
        if (len == 0)
                return;
        cleanup_free char *dec = NULL;
        size_t dn = 0;
        unsigned ch;
        const uint8_t *d;
        size_t n;
        if (ws->s->base64 && ws->msg_op == WS_TEXT) {
                if (m[0] < '0' || m[0] > '9' ||
                    (dec = base64_decode_n((const char *)m + 1, len - 1, &dn)) == NULL)
                        return;
                ch = m[0] - '0';
                d = (const uint8_t *)dec;
                n = dn;
        } else {
                ch = m[0];
                d = m + 1;
                n = len - 1;
        }
        if (ch % 2 != 0 || ch / 2 >= ws->s->nports || n == 0) {
                return; /* error channels are written by the server only */
        }
        struct ws_port *p = &ws->ports[ch / 2];
        pthread_mutex_lock(&ws->lock);
        /* Every port's connector runs from the start: waiting for it holds the
         * client back (TCP) instead of dropping what does not fit. */
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 30;
        while (!p->connected && !p->failed && p->pending.len + n > MAX_PENDING)
                if (pthread_cond_timedwait(&ws->port_cv, &ws->lock, &until) == ETIMEDOUT)
                        break;
        if (!p->connected) {
                bool overflow = !p->failed && p->pending.len + n > MAX_PENDING;
                if (!p->failed && !overflow)
                        sbuf_append(&p->pending, d, n);
                pthread_mutex_unlock(&ws->lock);
                if (overflow) {
                        static const char msg[] =
                                "port-forward: the connection to the pod was not up in time "
                                "and more than 4 MiB were waiting";
                        (void)send_channel(ws, ch + 1, msg, sizeof(msg) - 1);
                }
                return;
        }
        int fd = p->fd;
        pthread_mutex_unlock(&ws->lock);
        (void)sock_send_all(fd, d, n);
}

static int pf_start(struct ws_sess *ws)
{
        size_t np = ws->s->nports;
        ws->ports = xcalloc(np, sizeof(*ws->ports));
        ws->ports_left = (unsigned)np;
        /* Each channel starts with the port, 2 bytes little-endian, as kubelet writes it. */
        for (size_t i = 0; i < np; i++) {
                uint8_t pb[2] = {ws->s->ports[i] & 0xff, ws->s->ports[i] >> 8};
                if (send_channel(ws, (unsigned)i * 2, pb, 2) < 0 ||
                    send_channel(ws, (unsigned)i * 2 + 1, pb, 2) < 0)
                        return -1;
        }
        for (size_t i = 0; i < np; i++) {
                struct ws_port *p = &ws->ports[i];
                p->port = ws->s->ports[i];
                p->fd = -1;
                p->ws = ws;
                p->index = (unsigned)i;
                if (pthread_create(&p->thr, NULL, port_main, p) == 0) {
                        p->started = true;
                } else {
                        p->failed = true;
                        port_done(ws);
                }
        }
        return 0;
}

static void pf_stop(struct ws_sess *ws)
{
        if (!ws->ports)
                return;
        pthread_mutex_lock(&ws->lock);
        for (size_t i = 0; i < ws->s->nports; i++) {
                ws->ports[i].closing = true;
                if (ws->ports[i].fd >= 0)
                        (void)shutdown(ws->ports[i].fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&ws->lock);
        for (size_t i = 0; i < ws->s->nports; i++) {
                struct ws_port *p = &ws->ports[i];
                if (p->started)
                        pthread_join(p->thr, NULL);
                if (p->fd >= 0)
                        close(p->fd);
                sbuf_free(&p->pending);
        }
        free(ws->ports);
        ws->ports = NULL;
}

/* ---------- the reader loop ---------- */

/* Returns -1 on a protocol error (close 1002), 1 when the peer closed. */
static int handle_frame(struct ws_sess *ws, const struct ws_frame *f, bool pf)
{
        switch (f->opcode) {
        case WS_CLOSE: {
                uint16_t code = 1000;
                if (f->len >= 2)
                        code = (uint16_t)(f->payload[0] << 8 | f->payload[1]);
                else if (f->len == 1)
                        return -1;
                uint8_t p[2] = {code >> 8, code & 0xff};
                (void)send_frame(ws, WS_CLOSE, p, f->len >= 2 ? 2 : 0);
                return 1;
        }
        case WS_PING:
                (void)send_frame(ws, WS_PONG, f->payload, f->len);
                return 0;
        case WS_PONG:
                return 0;
        case WS_CONT:
                if (!ws->in_msg)
                        return -1;
                break;
        default: /* TEXT, BINARY */
                if (ws->in_msg)
                        return -1;
                ws->in_msg = true;
                ws->msg_op = f->opcode;
                ws->msg.len = 0;
                break;
        }
        if (ws->msg.len + f->len > MAX_MESSAGE)
                return -1;
        sbuf_append(&ws->msg, f->payload, f->len);
        if (!f->fin)
                return 0;
        ws->in_msg = false;
        if (pf)
                pf_message(ws, (const uint8_t *)ws->msg.buf, ws->msg.len);
        else
                exec_message(ws, (const uint8_t *)ws->msg.buf, ws->msg.len);
        ws->msg.len = 0;
        return 0;
}

void ws_session_run(struct session *s)
{
        struct ws_sess *ws = xzalloc(sizeof(*ws));
        ws->s = s;
        pthread_mutex_init(&ws->lock, NULL);
        pthread_cond_init(&ws->port_cv, NULL);
        bool pf = s->req->kind == KIND_PORTFORWARD;
        bool json = strcmp(s->protocol, PROTO_V4) == 0 || strcmp(s->protocol, PROTO_V5) == 0 ||
                    strcmp(s->protocol, PROTO_V4_B64) == 0;
        struct err e = ERR_INIT;
        bool protocol_error = false;

        if (pf) {
                if (pf_start(ws) < 0)
                        goto done;
        } else {
                /* An empty message on the lowest writable channel tells the
                 * client the streams are ready (kubelet does the same). */
                struct stream_request *q = s->req;
                int first = q->use_stdout ? CH_STDOUT : (q->use_stderr && !q->tty) ? CH_STDERR : CH_ERROR;
                if (send_channel(ws, (unsigned)first, NULL, 0) < 0)
                        goto done;
                void *bdata;
                const struct stream_backend *b = server_backend(s->srv, &bdata);
                if (exec_run_start(&ws->run, b, bdata, q, json, &ws_xport, ws, &e) < 0) {
                        log_debug("stream", "exec start failed: %s", e.msg);
                        err_clear(&e);
                        goto done;
                }
                ws->running = true;
        }

        for (;;) {
                bool peer_closed = false;
                for (;;) {
                        struct ws_frame f;
                        long n = ws_parse(s->c.rbuf, s->c.rlen, MAX_MESSAGE, true, &f, &e);
                        if (n < 0) {
                                log_debug("stream", "websocket: closing connection: %s", e.msg);
                                err_clear(&e);
                                protocol_error = true;
                                break;
                        }
                        if (n == 0)
                                break;
                        int r = handle_frame(ws, &f, pf);
                        conn_consume(&s->c, (size_t)n);
                        if (r < 0)
                                protocol_error = true;
                        if (r != 0) {
                                peer_closed = r > 0;
                                break;
                        }
                }
                if (protocol_error || peer_closed || atomic_load(&ws->finished))
                        break;
                int r = conn_fill(&s->c, -1);
                if (r == -1 || r == -2)
                        break;
        }

done:
        if (protocol_error)
                ws_send_close(ws->s, &ws->close_sent, 1002);
        if (ws->running) {
                if (!atomic_load(&ws->finished))
                        exec_run_cancel(&ws->run);
                exec_run_join(&ws->run);
        }
        pf_stop(ws);
        ws_send_close(ws->s, &ws->close_sent, 1000);
        conn_linger(&s->c, true, protocol_error ? 200 : 2000);
        sbuf_free(&ws->msg);
        pthread_mutex_destroy(&ws->lock);
        pthread_cond_destroy(&ws->port_cv);
        free(ws);
}
