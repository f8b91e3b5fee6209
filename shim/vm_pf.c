/* Port-forward into a VM pod: the pod's ports live in the guest, so each
 * connection corrald makes to <vm state>/pf.sock is relayed to the agent,
 * which connects to the guest's loopback (PortForwardRequest) and carries
 * the bytes as StreamData frames named by a connection id. Runs in the VM
 * shim's single-threaded epoll loop (vm_server.c); client writes are
 * non-blocking and buffered (EPOLLOUT), agent writes go out at once. */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "shim/shim-internal.h"
#include "shim/shim.h"
#include "shim/vm-internal.h"
#include "vm/vm.h"

/* Flow control with the agent (agent.proto StreamData.credit): at most
 * this much of the guest's bytes wait here for the client, and at most this
 * much of the client's in the guest for the guest's socket. A slow reader
 * on either end pauses the other instead of losing the connection. */
#define PF_WINDOW (1u << 20)

enum pf_state { PF_HDR, PF_OPENING, PF_OPEN };

struct pfc {
        struct vwatch w;
        struct vm_pf *pf;
        uint64_t id;
        enum pf_state st;
        uint8_t hdr[2];
        size_t hdr_len;
        struct sbuf out; /* guest -> client, not yet written */
        size_t off;
        bool rd_eof; /* the client's EOF was passed on */
        bool wr_eof; /* the guest's EOF: shut down writing once out is written */
        bool wr_shut;
        uint64_t in_avail;  /* client bytes the guest still takes (its window) */
        size_t out_payload; /* guest bytes in out, credited once it is all written */
        uint32_t events;    /* registered with epoll */
        struct pfc *next;
};

struct vm_pf {
        int ep;
        struct vwatch listen;
        char *state_dir;
        struct vm_agent *const *agent;
        uint64_t next_id;
        struct pfc *conns;
};

static struct pfc *pfc_find(struct vm_pf *p, uint64_t id)
{
        for (struct pfc *c = p->conns; c; c = c->next)
                if (c->id == id)
                        return c;
        return NULL;
}

static void pfc_free(struct pfc *c)
{
        struct vm_pf *p = c->pf;
        for (struct pfc **pp = &p->conns; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        struct vm_agent *a = *p->agent;
        if (a)
                vm_agent_cancel_async(a, c);
        (void)epoll_ctl(p->ep, EPOLL_CTL_DEL, c->w.fd, NULL);
        close(c->w.fd);
        sbuf_free(&c->out);
        free(c);
}

/* Tell the guest (when it was told of the connection) and close. */
static void pfc_reset(struct pfc *c)
{
        struct vm_agent *a = *c->pf->agent;
        if (a && c->st != PF_HDR) {
                cleanup_err struct err e = ERR_INIT;
                (void)vm_agent_conn_send(a, c->id, NULL, 0, false, true, &e);
        }
        pfc_free(c);
}

static void pfc_events(struct pfc *c)
{
        uint32_t ev = 0;
        /* PF_HDR reads the port; PF_OPEN reads while the guest has room. */
        if (!c->rd_eof && (c->st == PF_HDR || (c->st == PF_OPEN && c->in_avail > 0)))
                ev |= EPOLLIN;
        if (c->off < c->out.len)
                ev |= EPOLLOUT;
        vm_watch_mod(c->pf->ep, &c->w, &c->events, ev);
}

/* Both ways done: close. True when c was freed. */
static bool pfc_maybe_done(struct pfc *c)
{
        if (c->rd_eof && c->wr_shut && c->off >= c->out.len) {
                pfc_free(c);
                return true;
        }
        return false;
}

/* Write buffered guest bytes to the client. False when c was freed. */
static bool pfc_flush(struct pfc *c)
{
        while (c->off < c->out.len) {
                ssize_t n =
                        send(c->w.fd, c->out.buf + c->off, c->out.len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        pfc_reset(c);
                        return false;
                }
                c->off += (size_t)n;
        }
        if (c->off >= c->out.len) {
                c->out.len = c->off = 0;
                /* All written: the guest may send as much again. */
                struct vm_agent *a = *c->pf->agent;
                if (a && c->out_payload && c->st == PF_OPEN) {
                        cleanup_err struct err e = ERR_INIT;
                        (void)vm_agent_credit(a, NULL, NULL, c->id, c->out_payload, &e);
                        c->out_payload = 0;
                }
                if (c->wr_eof && !c->wr_shut) {
                        (void)shutdown(c->w.fd, SHUT_WR);
                        c->wr_shut = true;
                }
        }
        if (pfc_maybe_done(c))
                return false;
        pfc_events(c);
        return true;
}

static void on_open(void *arg, const struct vm_agent_reply *r)
{
        struct pfc *c = arg;
        if (r->error_kind) {
                /* Status 1 and the reason; the client reads to EOF. */
                struct sbuf b = {0};
                sbuf_append(&b, "\1", 1);
                sbuf_puts(&b, r->error ? r->error : "port-forward failed");
                (void)send(c->w.fd, b.buf, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
                sbuf_free(&b);
                c->st = PF_HDR; /* the guest has nothing to close */
                pfc_free(c);
                return;
        }
        c->st = PF_OPEN;
        c->in_avail = PF_WINDOW;
        /* Status 0 goes in front of whatever the guest already sent. */
        struct sbuf b = {0};
        sbuf_append(&b, "\0", 1);
        if (c->out.len > c->off)
                sbuf_append(&b, c->out.buf + c->off, c->out.len - c->off);
        sbuf_free(&c->out);
        c->out = b;
        c->off = 0;
        (void)pfc_flush(c);
}

static void pfc_read(struct pfc *c)
{
        struct vm_pf *p = c->pf;
        struct vm_agent *a = *p->agent;
        if (!a) {
                pfc_reset(c);
                return;
        }
        if (c->st == PF_HDR) {
                ssize_t n = recv(c->w.fd, c->hdr + c->hdr_len, sizeof(c->hdr) - c->hdr_len, MSG_DONTWAIT);
                if (n < 0 && (errno == EAGAIN || errno == EINTR))
                        return;
                if (n <= 0) {
                        pfc_free(c);
                        return;
                }
                c->hdr_len += (size_t)n;
                if (c->hdr_len < sizeof(c->hdr))
                        return;
                uint16_t port = (uint16_t)(c->hdr[0] << 8 | c->hdr[1]);
                cleanup_err struct err e = ERR_INIT;
                c->id = p->next_id++;
                if (vm_agent_portforward_async(a, c->id, port, PF_WINDOW, on_open, c, &e) < 0) {
                        struct vm_agent_reply r = {.error_kind = ERR_UNAVAILABLE, .error = e.msg};
                        on_open(c, &r);
                        return;
                }
                c->st = PF_OPENING;
                pfc_events(c);
                return;
        }
        char buf[65536];
        size_t want = sizeof(buf) < c->in_avail ? sizeof(buf) : (size_t)c->in_avail;
        if (!want) {
                pfc_events(c); /* held until the guest's credit */
                return;
        }
        ssize_t n = recv(c->w.fd, buf, want, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        cleanup_err struct err e = ERR_INIT;
        if (n < 0) {
                pfc_reset(c);
                return;
        }
        if (n == 0) {
                c->rd_eof = true;
                if (vm_agent_conn_send(a, c->id, NULL, 0, true, false, &e) < 0) {
                        pfc_free(c);
                        return;
                }
                if (!pfc_maybe_done(c))
                        pfc_events(c);
                return;
        }
        if (vm_agent_conn_send(a, c->id, buf, (size_t)n, false, false, &e) < 0) {
                pfc_free(c);
                return;
        }
        c->in_avail -= (uint64_t)n;
        if (!c->in_avail)
                pfc_events(c);
}

void vm_pf_on_credit(struct vm_pf *p, uint64_t conn_id, uint64_t credit)
{
        struct pfc *c = p ? pfc_find(p, conn_id) : NULL;
        if (!c)
                return;
        c->in_avail += credit;
        pfc_events(c);
}

void vm_pf_on_agent(void *arg, uint64_t conn_id, const void *data, size_t len, bool eof, bool reset)
{
        struct vm_pf *p = arg;
        struct pfc *c = pfc_find(p, conn_id);
        if (!c)
                return;
        if (reset) {
                c->st = PF_HDR; /* gone in the guest already */
                pfc_free(c);
                return;
        }
        if (len) {
                if (c->out_payload + len > 2 * (size_t)PF_WINDOW) {
                        log_warn("vmshim",
                                 "port-forward connection %llu: the guest ignored the window: reset",
                                 (unsigned long long)conn_id);
                        pfc_reset(c);
                        return;
                }
                sbuf_append(&c->out, data, len);
                c->out_payload += len;
        }
        if (eof)
                c->wr_eof = true;
        if (c->st == PF_OPEN)
                (void)pfc_flush(c);
}

static void on_accept(struct vm_pf *p)
{
        for (;;) {
                int fd = accept4(p->listen.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                        return;
                struct pfc *c = xzalloc(sizeof(*c));
                c->w = (struct vwatch){.fd = fd, .kind = W_PF_CONN, .owner = c};
                c->pf = p;
                c->events = EPOLLIN;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};
                if (epoll_ctl(p->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                c->next = p->conns;
                p->conns = c;
        }
}

void vm_pf_event(struct vm_pf *p, struct vwatch *w, uint32_t events)
{
        if (w->kind == W_PF_LISTEN) {
                on_accept(p);
                return;
        }
        struct pfc *c = w->owner;
        if ((events & EPOLLOUT) && !pfc_flush(c))
                return;
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (c->st == PF_OPENING) {
                        /* Only HUP/ERR are watched now: the client left before the guest answered. */
                        pfc_reset(c);
                        return;
                }
                if (!c->rd_eof)
                        pfc_read(c);
                else if (events & (EPOLLERR | EPOLLHUP))
                        pfc_reset(c); /* gone both ways while the guest still had to answer */
        }
}

void vm_pf_agent_gone(struct vm_pf *p)
{
        while (p && p->conns) {
                p->conns->st = PF_HDR;
                pfc_free(p->conns);
        }
}

int vm_pf_start(int ep, const char *state_dir, struct vm_agent *const *agent, struct vm_pf **out,
                struct err *e)
{
        struct vm_pf *p = xzalloc(sizeof(*p));
        p->ep = ep;
        p->agent = agent;
        p->next_id = 1;
        p->state_dir = xstrdup(state_dir);
        p->listen = (struct vwatch){.fd = -1, .kind = W_PF_LISTEN, .owner = p};
        if (vm_watch_listen(ep, state_dir, SHIM_VM_PF_SOCKET, &p->listen, e) < 0) {
                vm_pf_free(p);
                return -1;
        }
        *out = p;
        return 0;
}

void vm_pf_free(struct vm_pf *p)
{
        if (!p)
                return;
        vm_pf_agent_gone(p);
        if (p->listen.fd >= 0) {
                (void)epoll_ctl(p->ep, EPOLL_CTL_DEL, p->listen.fd, NULL);
                close(p->listen.fd);
                cleanup_free char *sock = path_join(p->state_dir, SHIM_VM_PF_SOCKET);
                (void)unlink(sock);
        }
        free(p->state_dir);
        free(p);
}

/* ---------- client (corrald) ---------- */

int shim_vm_portforward(const char *vm_dir, uint16_t port, int timeout_ms, int *fd_out, struct err *e)
{
        *fd_out = -1;
        cleanup_close int fd = proto_connect_stream(vm_dir, SHIM_VM_PF_SOCKET, e);
        if (fd < 0)
                return err_wrap(e, "the VM shim's port-forward socket");
        uint8_t hdr[2] = {(uint8_t)(port >> 8), (uint8_t)port};
        if (fd_write_all(fd, hdr, sizeof(hdr)) < 0)
                return err_make(e, errno, "port-forward request to the VM shim");
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int r;
        while ((r = poll(&pfd, 1, timeout_ms)) < 0 && errno == EINTR)
                ;
        if (r == 0)
                return err_set(e, ERR_DEADLINE, "the pod's agent did not answer the port-forward in %d ms",
                               timeout_ms);
        uint8_t st;
        ssize_t n;
        while ((n = read(fd, &st, 1)) < 0 && errno == EINTR)
                ;
        if (n <= 0)
                return err_set(e, ERR_UNAVAILABLE, "the VM shim closed the port-forward connection");
        if (st != 0) {
                char msg[512];
                size_t len = 0;
                while (len < sizeof(msg) - 1 && (n = read(fd, msg + len, sizeof(msg) - 1 - len)) > 0)
                        len += (size_t)n;
                msg[len] = '\0';
                return err_set(e, ERR_UNAVAILABLE, "%s", len ? msg : "port-forward refused in the guest");
        }
        *fd_out = steal_fd(&fd);
        return 0;
}
