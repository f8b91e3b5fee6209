/* A small WebSocket (RFC 6455) client for the CRI streaming protocols:
 * exec/attach over v5/v4.channel.k8s.io (one channel byte in front of every
 * binary message; v5 closes stdin with the close signal on channel 255) and
 * port-forward over v4.channel.k8s.io (one connection per WebSocket: data
 * channel 0 and error channel 1, each starting with the port number).
 * Client frames are masked, as the RFC requires. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <yajl/yajl_tree.h>

#include "stream/stream-internal.h"
#include "stream/stream.h"

#define WS_MAX_MESSAGE  (16u << 20)
#define CH_CLOSE_SIGNAL 255

struct stream_ws_client {
        struct conn c;
        char *protocol;
        bool v5;
        struct sbuf msg; /* a message being reassembled */
        uint8_t msg_op;
        bool in_msg;
        bool closed;
};

int stream_ws_dial(const char *url, const char *protocol, struct stream_ws_client **out, struct err *e)
{
        cleanup_free char *host = NULL, *port = NULL, *path = NULL;
        if (stream_url_parse(url, &host, &port, &path, e) < 0)
                return -1;
        bool pf = str_has_prefix(path, "/portforward/");
        cleanup_close int fd = stream_dial_tcp(host, port, e);
        if (fd < 0)
                return -1;
        uint8_t nonce[16];
        if (getrandom(nonce, sizeof(nonce), 0) != (ssize_t)sizeof(nonce))
                return err_make(e, errno, "getrandom");
        cleanup_free char *key = base64_encode(nonce, sizeof(nonce));
        struct sbuf req = {0};
        bool v6 = strchr(host, ':') != NULL;
        sbuf_printf(&req,
                    "GET %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: corral/%s\r\nConnection: Upgrade\r\n"
                    "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: %s\r\n",
                    path, v6 ? "[" : "", host, v6 ? "]" : "", port, CORRAL_VERSION, key);
        if (protocol)
                sbuf_printf(&req, "Sec-WebSocket-Protocol: %s\r\n", protocol);
        else if (pf)
                sbuf_puts(&req, "Sec-WebSocket-Protocol: " PROTO_V4 "\r\n");
        else
                sbuf_puts(&req, "Sec-WebSocket-Protocol: " PROTO_V5 ", " PROTO_V4 "\r\n");
        sbuf_puts(&req, "\r\n");
        int wr = fd_write_all(fd, req.buf, req.len);
        sbuf_free(&req);
        if (wr < 0)
                return err_make(e, errno, "send upgrade request to %s", url);

        struct sbuf resp = {0};
        size_t head_len = 0;
        int code = 0;
        if (stream_read_response_head(fd, url, &resp, &head_len, &code, e) < 0)
                return -1;
        if (code != 101)
                return stream_upgrade_refused(fd, &resp, head_len, code, e);
        char val[256];
        cleanup_free char *want_accept = ws_accept_key(key);
        if (!stream_header_value(resp.buf, "Sec-WebSocket-Accept", val, sizeof(val)) ||
            strcmp(val, want_accept) != 0) {
                sbuf_free(&resp);
                return err_set(e, ERR_INVALID, "server at %s sent a wrong Sec-WebSocket-Accept", url);
        }
        struct stream_ws_client *c = xzalloc(sizeof(*c));
        c->protocol =
                xstrdup(stream_header_value(resp.buf, "Sec-WebSocket-Protocol", val, sizeof(val)) ? val : "");
        c->v5 = strcmp(c->protocol, PROTO_V5) == 0;
        int r = conn_init(&c->c, fd, resp.buf + head_len, resp.len - head_len, e);
        sbuf_free(&resp);
        if (r < 0) {
                free(c->protocol);
                free(c);
                return -1;
        }
        c->c.fd = steal_fd(&fd);
        *out = c;
        return 0;
}

const char *stream_ws_protocol(const struct stream_ws_client *c)
{
        return c->protocol;
}

static int send_frame(struct stream_ws_client *c, uint8_t op, const void *d1, size_t n1, const void *d2,
                      size_t n2)
{
        uint8_t mask[4];
        (void)!getrandom(mask, sizeof(mask), GRND_NONBLOCK);
        cleanup_free uint8_t *payload = xmalloc(n1 + n2 + 1);
        if (n1)
                memcpy(payload, d1, n1);
        if (n2)
                memcpy(payload + n1, d2, n2);
        struct sbuf b = {0};
        ws_put_frame(&b, op, true, payload, n1 + n2, mask);
        pthread_mutex_lock(&c->c.wlock);
        int r = conn_write_locked(&c->c, b.buf, b.len);
        pthread_mutex_unlock(&c->c.wlock);
        sbuf_free(&b);
        return r;
}

static int send_channel(struct stream_ws_client *c, uint8_t ch, const void *d, size_t n)
{
        return send_frame(c, WS_BINARY, &ch, 1, d, n);
}

/* Next complete data message into c->msg (channel byte first). 1 with a
 * message, 0 when the server closed, -1 on a broken connection. */
static int next_message(struct stream_ws_client *c, struct err *e)
{
        for (;;) {
                struct ws_frame f;
                long n = ws_parse(c->c.rbuf, c->c.rlen, WS_MAX_MESSAGE, false, &f, e);
                if (n < 0)
                        return -1;
                if (n == 0) {
                        int r = conn_fill(&c->c, -1);
                        if (r < 0)
                                return c->closed ? 0 : err_set(e, ERR_UNAVAILABLE, "stream connection lost");
                        continue;
                }
                bool done = false;
                switch (f.opcode) {
                case WS_CLOSE:
                        if (!c->closed)
                                (void)send_frame(c, WS_CLOSE, f.payload, f.len >= 2 ? 2 : 0, NULL, 0);
                        c->closed = true;
                        conn_consume(&c->c, (size_t)n);
                        return 0;
                case WS_PING:
                        (void)send_frame(c, WS_PONG, f.payload, f.len, NULL, 0);
                        break;
                case WS_PONG:
                        break;
                case WS_CONT:
                        if (c->in_msg)
                                sbuf_append(&c->msg, f.payload, f.len);
                        done = c->in_msg && f.fin;
                        break;
                default:
                        c->msg.len = 0;
                        c->msg_op = f.opcode;
                        sbuf_append(&c->msg, f.payload, f.len);
                        c->in_msg = !f.fin;
                        done = f.fin;
                        break;
                }
                conn_consume(&c->c, (size_t)n);
                if (done) {
                        c->in_msg = false;
                        return 1;
                }
        }
}

/* ---------- exec / attach ---------- */

struct ws_stdin {
        struct stream_ws_client *c;
        int fd;
        int stop;
};

static void *ws_stdin_main(void *arg)
{
        struct ws_stdin *si = arg;
        char buf[32768];
        for (;;) {
                struct pollfd p[2] = {{.fd = si->fd, .events = POLLIN}, {.fd = si->stop, .events = POLLIN}};
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        return NULL;
                ssize_t n = read(si->fd, buf, sizeof(buf));
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        break;
                if (send_channel(si->c, CH_STDIN, buf, (size_t)n) < 0)
                        return NULL;
        }
        /* v5 can say "stdin ended"; v4 cannot (the stream stays open). */
        if (si->c->v5) {
                uint8_t ch = CH_STDIN;
                (void)send_channel(si->c, CH_CLOSE_SIGNAL, &ch, 1);
        }
        return NULL;
}

static void ws_parse_status(struct sbuf *st, struct stream_client_result *res)
{
        stream_result_from_status(st->buf, st->len, true, res);
}

int stream_ws_exec(struct stream_ws_client *c, const struct stream_client_exec_opts *o,
                   struct stream_client_result *res, struct err *e)
{
        memset(res, 0, sizeof(*res));
        res->exit_code = -1;
        if (o->tty && o->width && o->height)
                (void)stream_ws_resize(c, o->width, o->height, NULL);
        struct ws_stdin si = {c, o->in_fd, -1};
        pthread_t thr;
        bool started = false;
        if (o->in_fd >= 0) {
                si.stop = eventfd(0, EFD_CLOEXEC);
                if (si.stop >= 0 && pthread_create(&thr, NULL, ws_stdin_main, &si) == 0)
                        started = true;
        }
        struct sbuf status = {0};
        int r;
        while ((r = next_message(c, e)) > 0) {
                if (c->msg.len == 0)
                        continue;
                uint8_t ch = (uint8_t)c->msg.buf[0];
                const char *d = c->msg.buf + 1;
                size_t n = c->msg.len - 1;
                int fd = ch == CH_STDOUT ? o->out_fd : ch == CH_STDERR ? o->err_fd : -1;
                if (fd >= 0 && n)
                        (void)fd_write_all(fd, d, n);
                else if (ch == CH_ERROR)
                        sbuf_append(&status, d, n);
        }
        if (started) {
                uint64_t one = 1;
                (void)!write(si.stop, &one, sizeof(one));
                pthread_join(thr, NULL);
        }
        if (si.stop >= 0)
                close(si.stop);
        if (r < 0 && status.len == 0) {
                sbuf_free(&status);
                return -1;
        }
        err_clear(e);
        ws_parse_status(&status, res);
        sbuf_free(&status);
        return 0;
}

int stream_ws_resize(struct stream_ws_client *c, uint16_t width, uint16_t height, struct err *e)
{
        char js[64];
        int n = snprintf(js, sizeof(js), "{\"Width\":%u,\"Height\":%u}", (unsigned)width, (unsigned)height);
        if (send_channel(c, CH_RESIZE, js, (size_t)n) < 0)
                return err_set(e, ERR_UNAVAILABLE, "stream connection lost");
        return 0;
}

void stream_ws_client_free(struct stream_ws_client *c)
{
        if (c == NULL)
                return;
        if (c->c.fd >= 0) {
                if (!c->closed) {
                        uint8_t p[2] = {1000 >> 8, 1000 & 0xff};
                        (void)send_frame(c, WS_CLOSE, p, 2, NULL, 0);
                }
                close(c->c.fd);
        }
        conn_destroy(&c->c);
        sbuf_free(&c->msg);
        free(c->protocol);
        free(c);
}

/* ---------- port-forward: one connection per WebSocket ---------- */

struct ws_fwd {
        struct stream_ws_client *c;
        int fd;
        uint16_t port;
};

static void *ws_fwd_up(void *arg)
{
        struct ws_fwd *f = arg;
        char buf[32768];
        for (;;) {
                ssize_t n = read(f->fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                if (send_channel(f->c, 0, buf, (size_t)n) < 0)
                        break;
        }
        /* WebSocket channels have no half-close: the reply still comes back
         * until the pod side ends the connection. */
        return NULL;
}

static void *ws_fwd_main(void *arg)
{
        struct ws_fwd *f = arg;
        pthread_t up;
        bool up_started = pthread_create(&up, NULL, ws_fwd_up, f) == 0;
        bool seen[2] = {false, false};
        struct err e = ERR_INIT;
        while (next_message(f->c, &e) > 0) {
                if (f->c->msg.len == 0)
                        continue;
                uint8_t ch = (uint8_t)f->c->msg.buf[0];
                const char *d = f->c->msg.buf + 1;
                size_t n = f->c->msg.len - 1;
                if (ch > 1)
                        continue;
                if (!seen[ch]) { /* the port number, 2 bytes little-endian */
                        seen[ch] = true;
                        if (n < 2)
                                continue;
                        d += 2;
                        n -= 2;
                }
                if (n == 0)
                        continue;
                if (ch == 0) {
                        if (sock_send_all(f->fd, d, n) < 0)
                                break;
                } else {
                        fprintf(stderr, "port-forward %u: %.*s\n", (unsigned)f->port, (int)n, d);
                }
        }
        err_clear(&e);
        (void)shutdown(f->fd, SHUT_RDWR);
        if (up_started)
                pthread_join(up, NULL);
        close(f->fd);
        stream_ws_client_free(f->c);
        free(f);
        return NULL;
}

int stream_ws_forward(const char *url, uint16_t port, int conn_fd, struct err *e)
{
        cleanup_free char *full = xasprintf("%s%sport=%u", url, strchr(url, '?') ? "&" : "?", (unsigned)port);
        struct stream_ws_client *c = NULL;
        if (stream_ws_dial(full, NULL, &c, e) < 0) {
                close(conn_fd);
                return -1;
        }
        struct ws_fwd *f = xzalloc(sizeof(*f));
        f->c = c;
        f->fd = conn_fd;
        f->port = port;
        pthread_t thr;
        if (pthread_create(&thr, NULL, ws_fwd_main, f) != 0) {
                close(conn_fd);
                stream_ws_client_free(c);
                free(f);
                return err_set(e, ERR_INTERNAL, "cannot start a forwarding thread");
        }
        pthread_detach(thr);
        return 0;
}
