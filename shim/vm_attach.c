/* Attach to a VM pod's container: the VM shim serves <container state>/attach
 * with the container shim's SOCK_SEQPACKET framing (shim.h), so corrald's
 * attach code is the same for both kinds of pods. The main process lives
 * in the guest: its output comes from the agent (StreamData, exec_id "")
 * and goes to every client as well as to the CRI log (vm_server.c); stdin
 * from any client goes to the agent under a flow-control window (no
 * client is read while the guest holds a full window); resizes go to the
 * agent for a tty container.
 *
 * As in the container shim (attach.c), a client that does not keep up is
 * dropped beyond a bounded queue, so one slow reader never stalls the
 * container's log; with stdin_once, the container's stdin closes when the
 * first client that wrote to it detaches. Runs on the VM shim's epoll loop. */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "shim/outq-internal.h"
#include "shim/shim-internal.h"
#include "shim/shim.h"
#include "shim/vm-internal.h"
#include "vm/vm.h"

struct va_client {
        struct vwatch w; /* owner: this client */
        struct vm_attach *t;
        struct va_client *next;
        struct shim_outq out;
        uint32_t events;
        bool sent_stdin;
        bool closing; /* the exit packet is queued: close once written */
};

struct vm_attach {
        int ep;
        struct vwatch listen; /* owner: this */
        char *state_dir, *cid;
        struct vm_agent *const *agent;
        struct vm_attach_opts o;
        struct va_client *clients;
        bool stdin_closed;
        uint64_t in_avail; /* stdin bytes the guest still takes (its window) */
        struct sbuf held;  /* stdin taken from a client, waiting for the window */
        bool eof_after_held;
        bool exited;
        int exit_code;
};

static bool stdin_held(const struct vm_attach *t)
{
        return t->held.len > 0;
}

static void client_events(struct va_client *c)
{
        uint32_t ev = 0;
        if (!c->closing && !stdin_held(c->t))
                ev |= EPOLLIN;
        if (shim_outq_pending(&c->out))
                ev |= EPOLLOUT;
        vm_watch_mod(c->t->ep, &c->w, &c->events, ev);
}

static void all_events(struct vm_attach *t)
{
        for (struct va_client *c = t->clients; c; c = c->next)
                client_events(c);
}

static void client_free(struct va_client *c)
{
        struct vm_attach *t = c->t;
        for (struct va_client **p = &t->clients; *p; p = &(*p)->next)
                if (*p == c) {
                        *p = c->next;
                        break;
                }
        shim_outq_free(&c->out);
        (void)epoll_ctl(t->ep, EPOLL_CTL_DEL, c->w.fd, NULL);
        close(c->w.fd);
        free(c);
}

/* The container's stdin ends (after what is held for the window). */
static void close_stdin(struct vm_attach *t)
{
        if (t->stdin_closed)
                return;
        t->stdin_closed = true;
        if (stdin_held(t)) {
                t->eof_after_held = true;
                return;
        }
        struct vm_agent *a = *t->agent;
        cleanup_err struct err e = ERR_INIT;
        if (a && !t->exited)
                (void)vm_agent_exec_send(a, t->cid, "", NULL, 0, true, false, &e);
}

/* The client detached or was dropped. */
static void client_gone(struct va_client *c)
{
        struct vm_attach *t = c->t;
        bool close_in = c->sent_stdin && t->o.stdin_once;
        client_free(c);
        if (close_in)
                close_stdin(t);
}

/* Send now or queue; -1 when the client must be dropped (too slow or gone). */
static int client_send(struct va_client *c, const char *data, size_t n)
{
        int r = shim_outq_send(&c->out, c->w.fd, data, n, SHIM_ATTACH_QUEUE_MAX);
        if (r == -ENOBUFS)
                log_debug("vmshim", "attach client of %s too slow: dropped", c->t->cid);
        if (r < 0)
                return -1;
        if (r > 0)
                client_events(c);
        return 0;
}

/* Send the held stdin the window allows; the eof after it once it is out. */
static void push_stdin(struct vm_attach *t)
{
        struct vm_agent *a = *t->agent;
        if (!a || t->exited) {
                t->held.len = 0;
                return;
        }
        size_t n = t->held.len < t->in_avail ? t->held.len : (size_t)t->in_avail;
        cleanup_err struct err e = ERR_INIT;
        if (n && vm_agent_exec_send(a, t->cid, "", t->held.buf, n, false, false, &e) == 0) {
                t->in_avail -= n;
                memmove(t->held.buf, t->held.buf + n, t->held.len - n);
                t->held.len -= n;
        }
        if (!stdin_held(t) && t->eof_after_held) {
                t->eof_after_held = false;
                (void)vm_agent_exec_send(a, t->cid, "", NULL, 0, true, false, &e);
        }
}

static void on_packet(struct va_client *c, const char *buf, size_t n)
{
        struct vm_attach *t = c->t;
        struct vm_agent *a = *t->agent;
        cleanup_err struct err e = ERR_INIT;
        switch ((unsigned char)buf[0]) {
        case SHIM_ATTACH_STDIN:
                if (n == 1 || !t->o.stdin_open || t->stdin_closed)
                        break; /* nowhere to go: dropped, as a closed stdin would */
                c->sent_stdin = true;
                sbuf_append(&t->held, buf + 1, n - 1);
                push_stdin(t);
                if (stdin_held(t))
                        all_events(t); /* no client is read until the guest takes more */
                break;
        case SHIM_ATTACH_RESIZE: {
                struct shim_attach_resize r;
                if (n - 1 < sizeof(r) || !t->o.tty || !a)
                        break;
                memcpy(&r, buf + 1, sizeof(r));
                (void)vm_agent_resize(a, t->cid, "", r.rows, r.cols, &e);
                break;
        }
        case SHIM_ATTACH_CLOSE_STDIN:
                if (t->o.stdin_once)
                        close_stdin(t);
                break;
        default:
                break;
        }
}

static void on_client(struct va_client *c, uint32_t events)
{
        if (events & EPOLLOUT) {
                if (shim_outq_flush(&c->out, c->w.fd) < 0) {
                        client_gone(c);
                        return;
                }
                if (!shim_outq_pending(&c->out) && c->closing) {
                        client_free(c);
                        return;
                }
                client_events(c);
        }
        if (events & EPOLLIN) {
                char buf[SHIM_ATTACH_MAX_PACKET];
                ssize_t n = recv(c->w.fd, buf, sizeof(buf), MSG_DONTWAIT);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        return;
                if (n <= 0) {
                        client_gone(c);
                        return;
                }
                on_packet(c, buf, (size_t)n);
                return;
        }
        if (events & (EPOLLHUP | EPOLLERR))
                client_gone(c);
}

static void finish_client(struct va_client *c)
{
        char pkt[5] = {SHIM_ATTACH_EXIT};
        uint32_t code = (uint32_t)c->t->exit_code;
        for (int i = 0; i < 4; i++)
                pkt[1 + i] = (char)((code >> (8 * i)) & 0xff);
        c->closing = true;
        if (client_send(c, pkt, sizeof(pkt)) < 0 || !shim_outq_pending(&c->out)) {
                client_free(c);
                return;
        }
        client_events(c);
}

static void on_accept(struct vm_attach *t)
{
        for (;;) {
                int fd = accept4(t->listen.fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0)
                        return;
                struct va_client *c = xzalloc(sizeof(*c));
                c->w = (struct vwatch){.fd = fd, .kind = W_ATTACH_CONN, .owner = c};
                c->t = t;
                struct epoll_event ev = {.events = 0, .data.ptr = &c->w};
                if (epoll_ctl(t->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                c->next = t->clients;
                t->clients = c;
                if (t->exited)
                        finish_client(c);
                else
                        client_events(c);
        }
}

void vm_attach_event(struct vwatch *w, uint32_t events)
{
        if (w->kind == W_ATTACH_LISTEN)
                on_accept(w->owner);
        else
                on_client(w->owner, events);
}

void vm_attach_output(struct vm_attach *t, int stream, const void *data, size_t len)
{
        if (!t || !t->clients)
                return;
        char pkt[SHIM_ATTACH_MAX_PACKET];
        const char *d = data;
        while (len) {
                size_t n = len < sizeof(pkt) - 1 ? len : sizeof(pkt) - 1;
                pkt[0] = (char)stream;
                memcpy(pkt + 1, d, n);
                struct va_client *next;
                for (struct va_client *c = t->clients; c; c = next) {
                        next = c->next;
                        if (!c->closing && client_send(c, pkt, n + 1) < 0)
                                client_gone(c);
                }
                d += n;
                len -= n;
        }
}

void vm_attach_on_credit(struct vm_attach *t, uint64_t credit)
{
        if (!t)
                return;
        bool held = stdin_held(t);
        t->in_avail += credit;
        if (held) {
                push_stdin(t);
                if (!stdin_held(t))
                        all_events(t);
        }
}

void vm_attach_exit(struct vm_attach *t, int exit_code)
{
        if (!t || t->exited)
                return;
        t->exited = true;
        t->exit_code = exit_code;
        t->held.len = 0;
        struct va_client *next;
        for (struct va_client *c = t->clients; c; c = next) {
                next = c->next;
                if (!c->closing)
                        finish_client(c);
        }
}

int vm_attach_start(int ep, const char *state_dir, const char *cid, struct vm_agent *const *agent,
                    const struct vm_attach_opts *o, struct vm_attach **out, struct err *e)
{
        struct vm_attach *t = xzalloc(sizeof(*t));
        t->ep = ep;
        t->agent = agent;
        t->o = *o;
        t->in_avail = o->stdin_open ? SHIM_VM_STDIN_WINDOW : 0;
        t->state_dir = xstrdup(state_dir);
        t->cid = xstrdup(cid);
        t->listen = (struct vwatch){.fd = -1, .kind = W_ATTACH_LISTEN, .owner = t};
        int fd = proto_listen(state_dir, SHIM_ATTACH_SOCKET, e);
        if (fd < 0) {
                vm_attach_free(t);
                return err_wrap(e, "attach socket of container %s", cid);
        }
        t->listen.fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &t->listen};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int saved = errno;
                vm_attach_free(t);
                return err_make(e, saved, "epoll");
        }
        *out = t;
        return 0;
}

void vm_attach_free(struct vm_attach *t)
{
        if (!t)
                return;
        while (t->clients) {
                /* Last chance for the exit packet. */
                (void)shim_outq_flush(&t->clients->out, t->clients->w.fd);
                client_free(t->clients);
        }
        if (t->listen.fd >= 0) {
                (void)epoll_ctl(t->ep, EPOLL_CTL_DEL, t->listen.fd, NULL);
                close(t->listen.fd);
                cleanup_free char *sock = path_join(t->state_dir, SHIM_ATTACH_SOCKET);
                (void)unlink(sock);
        }
        sbuf_free(&t->held);
        free(t->state_dir);
        free(t->cid);
        free(t);
}
