/* Port-forward as SPDY tunnelled in WebSocket (subprotocol
 * "SPDY/3.1+portforward.k8s.io"): what client-go's port-forward dialer
 * speaks over WebSocket (kubectl and crictl port-forward --transport
 * websocket). Every binary message carries raw SPDY bytes, so the SPDY
 * session runs unchanged on one end of a socketpair, and two relay threads
 * move bytes between the other end and WebSocket frames: one per direction,
 * so that a full socket one way never stops the other. */
#include <errno.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "stream/stream-internal.h"

#define MAX_MESSAGE (16u << 20)

struct tunnel {
        struct session *s;    /* the WebSocket side */
        struct session inner; /* the SPDY side, on sp[0] */
        int sp[2];
        bool close_sent;
};

static int send_frame(struct tunnel *t, uint8_t op, const void *data, size_t len)
{
        return ws_send_frame(t->s, &t->close_sent, op, data, len);
}

/* SPDY -> WebSocket, until the SPDY side has shut its end. */
static void *downstream(void *arg)
{
        struct tunnel *t = arg;
        char *buf = xmalloc(65536);
        for (;;) {
                ssize_t n = recv(t->sp[1], buf, 65536, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0 || send_frame(t, WS_BINARY, buf, (size_t)n) < 0)
                        break;
        }
        free(buf);
        ws_send_close(t->s, &t->close_sent, 1000);
        conn_wake(&t->s->c); /* the upstream reader may wait for a client that waits for us */
        return NULL;
}

static void *spdy_main(void *arg)
{
        struct tunnel *t = arg;
        spdy_session_run(&t->inner);
        (void)shutdown(t->sp[0], SHUT_RDWR);
        return NULL;
}

/* One client frame: 0 go on, 1 the client closed, -1 protocol error. */
static int upstream_frame(struct tunnel *t, const struct ws_frame *f)
{
        switch (f->opcode) {
        case WS_BINARY:
        case WS_CONT:
                /* Message boundaries mean nothing in a byte tunnel. */
                return sock_send_all(t->sp[1], f->payload, (size_t)f->len) < 0 ? 1 : 0;
        case WS_PING:
                (void)send_frame(t, WS_PONG, f->payload, (size_t)f->len);
                return 0;
        case WS_PONG:
                return 0;
        case WS_CLOSE:
                ws_send_close(t->s, &t->close_sent, 1000);
                return 1;
        default: /* text: not part of the tunnel */
                return -1;
        }
}

void ws_tunnel_run(struct session *s)
{
        struct tunnel t = {.s = s, .sp = {-1, -1}};
        struct err e = ERR_INIT;
        pthread_t down, spdy;
        bool down_ok = false, spdy_ok = false;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, t.sp) < 0) {
                log_debug("stream", "tunnel: socketpair: %s", strerror(errno));
                goto out;
        }
        t.inner.srv = s->srv;
        t.inner.req = s->req;
        t.inner.protocol = (char *)PROTO_PF; /* not freed: inner is no session_free's */
        if (conn_init(&t.inner.c, t.sp[0], NULL, 0, &e) < 0) {
                log_debug("stream", "tunnel: %s", e.msg);
                err_clear(&e);
                goto out;
        }
        t.inner.conn_ok = true;
        down_ok = pthread_create(&down, NULL, downstream, &t) == 0;
        spdy_ok = down_ok && pthread_create(&spdy, NULL, spdy_main, &t) == 0;
        bool protocol_error = !spdy_ok;
        bool stopped = false;
        while (!protocol_error) {
                int r = 0;
                for (;;) {
                        struct ws_frame f;
                        long n = ws_parse(s->c.rbuf, s->c.rlen, MAX_MESSAGE, true, &f, &e);
                        if (n < 0) {
                                log_debug("stream", "tunnel: closing connection: %s", e.msg);
                                err_clear(&e);
                                r = -1;
                        }
                        if (n <= 0)
                                break;
                        r = upstream_frame(&t, &f);
                        conn_consume(&s->c, (size_t)n);
                        if (r != 0)
                                break;
                }
                if (r < 0)
                        protocol_error = true;
                if (r != 0)
                        break;
                r = conn_fill(&s->c, -1);
                if (r == -2)
                        stopped = true; /* the server stops, or the SPDY side ended */
                if (r == -1 || r == -2)
                        break;
        }
        if (protocol_error)
                ws_send_close(t.s, &t.close_sent, 1002);
        /* The client is gone: the SPDY side sees EOF and ends its streams. */
        (void)shutdown(t.sp[1], SHUT_WR);
        if (stopped && t.inner.conn_ok)
                conn_wake(&t.inner.c);
        if (spdy_ok)
                pthread_join(spdy, NULL);
        else if (t.sp[0] >= 0)
                (void)shutdown(t.sp[0], SHUT_RDWR);
        if (down_ok)
                pthread_join(down, NULL);
        conn_linger(&s->c, true, protocol_error ? 200 : 2000);
out:
        if (t.inner.conn_ok)
                conn_destroy(&t.inner.c);
        for (int i = 0; i < 2; i++)
                if (t.sp[i] >= 0)
                        close(t.sp[i]);
}
