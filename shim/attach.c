/* The attach socket: <state>/attach, SOCK_SEQPACKET, framing in shim.h.
 *
 * Every client gets every output packet. A client that cannot keep up gets
 * a bounded queue and is dropped beyond it, so one slow reader never stalls
 * the container's log. Input from any client goes to the container's stdin;
 * while stdin is full, no client's input is read (backpressure). */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "shim/outq-internal.h"
#include "shim/shim-internal.h"

struct attach_client {
        struct watch w;
        struct attach_client *next;
        struct shim_outq out;
        bool sent_stdin;
        bool closing; /* the exit packet is queued: close once flushed */
};

static uint32_t client_events(const struct shim *s, const struct attach_client *c)
{
        uint32_t ev = 0;
        if (!c->closing && !shim_io_stdin_busy(s))
                ev |= EPOLLIN;
        if (shim_outq_pending(&c->out))
                ev |= EPOLLOUT;
        return ev;
}

static void client_free(struct shim *s, struct attach_client *c)
{
        for (struct attach_client **p = &s->clients; *p; p = &(*p)->next) {
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        }
        shim_outq_free(&c->out);
        shim_watch_close(s, &c->w);
        free(c);
}

/* The client detached (or was dropped). */
static void client_gone(struct shim *s, struct attach_client *c)
{
        bool close_stdin = c->sent_stdin && s->opts->stdin_once;
        client_free(s, c);
        if (close_stdin && !s->stdin_closed)
                shim_io_close_stdin(s);
}

/* Send now or queue; -1 when the client must be dropped. */
static int client_send(struct shim *s, struct attach_client *c, const char *data, size_t n)
{
        int r = shim_outq_send(&c->out, c->w.fd, data, n, SHIM_ATTACH_QUEUE_MAX);
        if (r == -ENOBUFS)
                log_debug("shim", "attach client too slow, dropped fd=%d", c->w.fd);
        if (r < 0)
                return -1;
        if (r > 0)
                (void)shim_watch_mod(s, &c->w, client_events(s, c));
        return 0;
}

static void handle_packet(struct shim *s, struct attach_client *c, const char *buf, size_t n)
{
        if (n == 0)
                return;
        switch ((unsigned char)buf[0]) {
        case SHIM_ATTACH_STDIN:
                if (n == 1)
                        break;
                c->sent_stdin = true;
                if (!shim_io_stdin(s, buf + 1, n - 1)) {
                        /* Stdin is full: stop reading every client until it drains. */
                        for (struct attach_client *o = s->clients; o; o = o->next)
                                (void)shim_watch_mod(s, &o->w, client_events(s, o));
                }
                break;
        case SHIM_ATTACH_RESIZE: {
                struct shim_attach_resize r;
                if (n - 1 < sizeof(r))
                        break;
                memcpy(&r, buf + 1, sizeof(r));
                shim_io_resize(s, r.rows, r.cols);
                break;
        }
        case SHIM_ATTACH_CLOSE_STDIN:
                if (s->opts->stdin_once && !s->stdin_closed)
                        shim_io_close_stdin(s);
                break;
        default:
                log_debug("shim", "attach: unknown packet type %u", (unsigned char)buf[0]);
                break;
        }
}

static void on_client(struct shim *s, struct watch *w, uint32_t events)
{
        struct attach_client *c = (struct attach_client *)w;
        if (events & EPOLLOUT) {
                if (shim_outq_flush(&c->out, c->w.fd) < 0) {
                        client_gone(s, c);
                        return;
                }
                if (!shim_outq_pending(&c->out) && c->closing) {
                        client_free(s, c);
                        return;
                }
                (void)shim_watch_mod(s, &c->w, client_events(s, c));
        }
        if (events & EPOLLIN) {
                char buf[SHIM_ATTACH_MAX_PACKET];
                ssize_t n = recv(c->w.fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        return;
                if (n <= 0) {
                        client_gone(s, c);
                        return;
                }
                handle_packet(s, c, buf, (size_t)n);
                return;
        }
        if (events & (EPOLLHUP | EPOLLERR))
                client_gone(s, c);
}

static void exit_packet(const struct shim *s, char pkt[5])
{
        uint32_t code = (uint32_t)s->exit_code;
        pkt[0] = SHIM_ATTACH_EXIT;
        for (int i = 0; i < 4; i++)
                pkt[1 + i] = (char)((code >> (8 * i)) & 0xff);
}

static void finish_client(struct shim *s, struct attach_client *c)
{
        char pkt[5];
        exit_packet(s, pkt);
        c->closing = true;
        if (client_send(s, c, pkt, sizeof(pkt)) < 0 || !shim_outq_pending(&c->out)) {
                client_free(s, c);
                return;
        }
        (void)shim_watch_mod(s, &c->w, client_events(s, c));
}

static void on_accept(struct shim *s, struct watch *w, uint32_t events)
{
        (void)events;
        for (;;) {
                int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return; /* EAGAIN, or a client that left before accept */
                struct attach_client *c = xzalloc(sizeof(*c));
                c->w.fd = fd;
                c->w.fn = on_client;
                c->next = s->clients;
                s->clients = c;
                if (shim_watch_add(s, &c->w, client_events(s, c)) < 0) {
                        client_free(s, c);
                        continue;
                }
                if (s->exit_recorded)
                        finish_client(s, c);
        }
}

int shim_attach_listen(struct shim *s, struct err *e)
{
        int fd = proto_listen(s->opts->state_dir, SHIM_ATTACH_SOCKET, e);
        if (fd < 0)
                return -1;
        s->attach.fd = fd;
        s->attach.fn = on_accept;
        if (shim_watch_add(s, &s->attach, EPOLLIN) < 0)
                return err_make(e, errno, "watch attach socket");
        return 0;
}

void shim_attach_broadcast(struct shim *s, int stream, const char *data, size_t n)
{
        (void)stream; /* data[0] already names it */
        struct attach_client *next;
        for (struct attach_client *c = s->clients; c; c = next) {
                next = c->next;
                if (c->closing)
                        continue;
                if (client_send(s, c, data, n) < 0)
                        client_gone(s, c);
        }
}

void shim_attach_resume(struct shim *s)
{
        for (struct attach_client *c = s->clients; c; c = c->next)
                (void)shim_watch_mod(s, &c->w, client_events(s, c));
}

void shim_attach_finish(struct shim *s)
{
        struct attach_client *next;
        for (struct attach_client *c = s->clients; c; c = next) {
                next = c->next;
                if (!c->closing)
                        finish_client(s, c);
        }
}

void shim_attach_cleanup(struct shim *s)
{
        while (s->clients) {
                /* Last chance for queued output and the exit packet. */
                (void)shim_outq_flush(&s->clients->out, s->clients->w.fd);
                client_free(s, s->clients);
        }
        shim_watch_close(s, &s->attach);
}
