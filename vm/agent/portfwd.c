/* corral-agent: port-forward. PortForwardRequest connects to the guest's
 * loopback; the connection's bytes then flow as StreamData named by its
 * conn_id, both ways, with half-close (eof) and reset. Runs on
 * agent_serve's loop. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>

#include "vm/agent/agent-internal.h"

/* A port-forward connection: a TCP socket to the guest's loopback. */
#define PF_BUF_MAX (16u << 20)
struct pfconn {
        uint64_t id;
        int fd;
        struct sbuf wbuf; /* host -> socket, not yet written */
        size_t woff;      /* written part of wbuf */
        bool rd_eof;      /* the socket said EOF (sent on to the host) */
        bool wr_eof;      /* the host said EOF: shut down writing once wbuf is out */
        bool wr_shut;
        uint32_t window;    /* flow control: 0 = none (PF_BUF_MAX bounds wbuf) */
        uint64_t out_avail; /* socket -> host bytes the host still takes */
        size_t uncredited;  /* host bytes written to the socket, not yet credited */
};

static void send_conn(struct agent *a, uint64_t id, const void *data, size_t n, bool eof, bool reset)
{
        AgStream s = CORRAL__AGENT__V1__STREAM_DATA__INIT;
        s.container_id = "";
        s.exec_id = "";
        s.conn_id = id;
        s.data.data = (uint8_t *)data;
        s.data.len = n;
        s.eof = eof;
        s.reset = reset;
        AgFrame f = CORRAL__AGENT__V1__FRAME__INIT;
        f.kind_case = CORRAL__AGENT__V1__FRAME__KIND_STREAM;
        f.stream = &s;
        agent_send_frame(a, &f);
}

struct pfconn *agent_pf_find(struct agent *a, uint64_t id, size_t *idx)
{
        for (size_t i = 0; i < a->n_pfs; i++)
                if (a->pfs[i]->id == id) {
                        if (idx)
                                *idx = i;
                        return a->pfs[i];
                }
        return NULL;
}

void agent_pf_free(struct agent *a, struct pfconn *p)
{
        size_t i;
        if (agent_pf_find(a, p->id, &i) == p)
                a->pfs[i] = a->pfs[--a->n_pfs];
        agent_close_fd(&p->fd);
        sbuf_free(&p->wbuf);
        free(p);
}

/* Done both ways: nothing more to read nor write. */
static void pf_maybe_done(struct agent *a, struct pfconn *p)
{
        if (p->rd_eof && p->wr_shut)
                agent_pf_free(a, p);
}

static void pf_reset(struct agent *a, struct pfconn *p)
{
        send_conn(a, p->id, NULL, 0, false, true);
        agent_pf_free(a, p);
}

/* Write what the host sent; false when the connection was reset. */
static bool pf_flush(struct agent *a, struct pfconn *p)
{
        while (p->woff < p->wbuf.len) {
                ssize_t n = send(p->fd, p->wbuf.buf + p->woff, p->wbuf.len - p->woff, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN) {
                        agent_compact(&p->wbuf, &p->woff);
                        agent_credit(a, NULL, NULL, p->id, &p->uncredited, p->window);
                        return true;
                }
                if (n <= 0) {
                        pf_reset(a, p);
                        return false;
                }
                p->woff += (size_t)n;
                p->uncredited += (size_t)n;
        }
        p->wbuf.len = p->woff = 0;
        agent_credit(a, NULL, NULL, p->id, &p->uncredited, p->window);
        if (p->wr_eof && !p->wr_shut) {
                (void)shutdown(p->fd, SHUT_WR);
                p->wr_shut = true;
        }
        return true;
}

static void pf_read(struct agent *a, struct pfconn *p)
{
        char buf[65536];
        size_t want = sizeof(buf);
        if (p->window && want > p->out_avail)
                want = (size_t)p->out_avail;
        if (!want)
                return; /* the host's window is full: wait for its credit */
        ssize_t n = recv(p->fd, buf, want, 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n < 0) {
                pf_reset(a, p);
                return;
        }
        if (n == 0) {
                p->rd_eof = true;
                send_conn(a, p->id, NULL, 0, true, false);
                pf_maybe_done(a, p);
                return;
        }
        send_conn(a, p->id, buf, (size_t)n, false, false);
        if (p->window)
                p->out_avail -= (uint64_t)n;
}

/* StreamData from the host for a connection. */
void agent_pf_input(struct agent *a, const AgStream *s)
{
        struct pfconn *p = agent_pf_find(a, s->conn_id, NULL);
        if (!p)
                return;
        if (s->reset) {
                agent_pf_free(a, p);
                return;
        }
        if (s->credit)
                p->out_avail += s->credit;
        if (s->data.len) {
                /* With a window the host never sends more than it; without,
                 * a bound on what a guest side that does not read costs. */
                size_t max = p->window ? 2 * (size_t)p->window : PF_BUF_MAX;
                if (p->wbuf.len - p->woff + s->data.len > max) {
                        log_warn("agent", "port-forward %llu: the guest side does not read: reset",
                                 (unsigned long long)p->id);
                        pf_reset(a, p);
                        return;
                }
                sbuf_append(&p->wbuf, s->data.data, s->data.len);
        }
        if (s->eof)
                p->wr_eof = true;
        if (pf_flush(a, p))
                pf_maybe_done(a, p);
}

static int pf_connect(uint16_t port, struct err *e)
{
        int saved = ECONNREFUSED;
        for (int fam = 0; fam < 2; fam++) {
                int fd = socket(fam ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0) {
                        if (fam == 0)
                                saved = errno;
                        continue;
                }
                int r;
                if (fam == 0) {
                        struct sockaddr_in sa = {.sin_family = AF_INET,
                                                 .sin_port = htons(port),
                                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
                        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                } else {
                        struct sockaddr_in6 sa = {.sin6_family = AF_INET6,
                                                  .sin6_port = htons(port),
                                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT};
                        r = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
                }
                if (r == 0) {
                        (void)fcntl(fd, F_SETFL, O_NONBLOCK);
                        return fd;
                }
                if (fam == 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
                        saved = errno;
                close(fd);
        }
        return err_make(e, saved, "connect to port %u in the guest", (unsigned)port);
}

void agent_pf_start(struct agent *a, uint64_t id, const Corral__Agent__V1__PortForwardRequest *r)
{
        cleanup_err struct err e = ERR_INIT;
        if (!r->conn_id || !r->port || r->port > 65535) {
                err_set(&e, ERR_INVALID, "port-forward needs a connection id and a port");
        } else if (agent_pf_find(a, r->conn_id, NULL)) {
                err_set(&e, ERR_EXISTS, "port-forward connection %llu exists",
                        (unsigned long long)r->conn_id);
        } else if (a->n_pfs >= AGENT_MAX_WATCHED) {
                err_set(&e, ERR_EXHAUSTED, "too many port-forward connections");
        } else {
                int fd = pf_connect((uint16_t)r->port, &e);
                if (fd >= 0) {
                        struct pfconn *p = xzalloc(sizeof(*p));
                        p->id = r->conn_id;
                        p->fd = fd;
                        p->window = r->window;
                        p->out_avail = r->window;
                        a->pfs = xrealloc(a->pfs, (a->n_pfs + 1) * sizeof(*a->pfs));
                        a->pfs[a->n_pfs++] = p;
                }
        }
        agent_reply_err(a, id, &e);
}

/* ---------- the poll loop's part ---------- */

size_t agent_pf_poll_fds(struct agent *a, struct pollfd *pfd, uint64_t *ids)
{
        for (size_t i = 0; i < a->n_pfs; i++) {
                struct pfconn *p = a->pfs[i];
                ids[i] = p->id;
                bool rd = !p->rd_eof && (!p->window || p->out_avail > 0) && !agent_host_busy(a);
                short ev = (rd ? POLLIN : 0) | (p->woff < p->wbuf.len ? POLLOUT : 0);
                pfd[i] = (struct pollfd){.fd = ev ? p->fd : -1, .events = ev};
        }
        return a->n_pfs;
}

void agent_pf_poll_events(struct agent *a, const struct pollfd *pfd, const uint64_t *ids, size_t n)
{
        /* Connections may end while others are served: go by id. */
        for (size_t i = 0; i < n; i++) {
                short rev = pfd[i].revents;
                struct pfconn *p = rev ? agent_pf_find(a, ids[i], NULL) : NULL;
                if (!p)
                        continue;
                if ((rev & POLLOUT) && !pf_flush(a, p))
                        continue;
                if (rev & (POLLIN | POLLHUP | POLLERR)) {
                        if (!p->rd_eof)
                                pf_read(a, p);
                        else if (rev & POLLERR)
                                pf_reset(a, p);
                } else if (p->wr_shut) {
                        pf_maybe_done(a, p);
                }
        }
}
