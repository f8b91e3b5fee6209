/* Interactive exec into a VM pod's container: each connection corrald makes
 * to <vm state>/exec.sock asks for one command (container id and argv);
 * the shim starts it through the agent (ExecRequest.interactive, named by
 * an exec id of ours) and relays its stdin, stdout and stderr as StreamData,
 * then its exit code. The client leaving kills the process. Runs in the VM
 * shim's single-threaded epoll loop (vm_server.c), like vm_pf.c: client
 * writes are non-blocking and buffered (EPOLLOUT), agent writes go out at
 * once. The wire format is in vm-internal.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "shim/shim-internal.h"
#include "shim/shim.h"
#include "shim/vm-internal.h"
#include "vm/vm.h"

/* Flow control with the agent (agent.proto StreamData.credit): at most
 * this much output waits here for the client, and at most this much stdin
 * waits in the guest for the process; a slow side pauses the other. */
#define EX_WINDOW (1u << 20)
/* The request and each client frame. */
#define EX_REQ_MAX   (1u << 20)
#define EX_FRAME_MAX (1u << 20)

struct exc {
        struct vwatch w;
        struct vm_exec *x;
        char eid[32];
        char *cid;
        bool started; /* the agent was asked: it has a process (or will answer why not) */
        bool done;    /* exit or error queued: close once written */
        bool tty;
        struct sbuf in;  /* client bytes not parsed yet */
        struct sbuf out; /* -> client, not yet written */
        size_t off;
        uint64_t in_avail;  /* stdin bytes the guest still takes (its window) */
        size_t out_payload; /* output bytes in out, credited once it is all written */
        uint32_t events;
        struct exc *next;
};

struct vm_exec {
        int ep;
        struct vwatch listen;
        char *state_dir;
        struct vm_agent *const *agent;
        uint64_t next_id;
        struct exc *conns;
};

static void put_frame(struct sbuf *b, int type, const void *data, size_t len)
{
        uint8_t h[5] = {(uint8_t)type, (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
                        (uint8_t)len};
        sbuf_append(b, h, sizeof(h));
        if (len)
                sbuf_append(b, data, len);
}

static uint32_t get_be32(const void *p)
{
        const uint8_t *b = p;
        return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static void exc_free(struct exc *c)
{
        struct vm_exec *x = c->x;
        for (struct exc **pp = &x->conns; *pp; pp = &(*pp)->next)
                if (*pp == c) {
                        *pp = c->next;
                        break;
                }
        struct vm_agent *a = *x->agent;
        if (a) {
                vm_agent_cancel_async(a, c);
                if (c->started && !c->done) {
                        /* The client is gone while the process runs: end it. */
                        cleanup_err struct err e = ERR_INIT;
                        (void)vm_agent_exec_send(a, c->cid, c->eid, NULL, 0, false, true, &e);
                }
        }
        (void)epoll_ctl(x->ep, EPOLL_CTL_DEL, c->w.fd, NULL);
        close(c->w.fd);
        sbuf_free(&c->in);
        sbuf_free(&c->out);
        free(c->cid);
        free(c);
}

/* A stdin frame waits for the guest's credit: read no more from the client. */
static bool exc_held(const struct exc *c)
{
        return c->started && !c->done && c->in_avail == 0 && c->in.len >= 5 &&
               c->in.buf[0] == SHIM_VM_EXEC_STDIN;
}

static void exc_events(struct exc *c)
{
        /* Also after done: the client's close ends it. While the guest's
         * stdin window is used up, the client waits (HUP still comes). */
        uint32_t ev = exc_held(c) ? 0 : EPOLLIN;
        if (c->off < c->out.len)
                ev |= EPOLLOUT;
        vm_watch_mod(c->x->ep, &c->w, &c->events, ev);
}

/* Write what is queued. False when c was freed. */
static bool exc_flush(struct exc *c)
{
        while (c->off < c->out.len) {
                ssize_t n =
                        send(c->w.fd, c->out.buf + c->off, c->out.len - c->off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        exc_free(c);
                        return false;
                }
                c->off += (size_t)n;
        }
        if (c->off >= c->out.len) {
                c->out.len = c->off = 0;
                if (c->done) {
                        exc_free(c);
                        return false;
                }
                /* All written: the guest may send as much again. */
                struct vm_agent *a = *c->x->agent;
                if (a && c->out_payload) {
                        cleanup_err struct err e = ERR_INIT;
                        (void)vm_agent_credit(a, c->cid, c->eid, 0, c->out_payload, &e);
                        c->out_payload = 0;
                }
        }
        exc_events(c);
        return true;
}

/* End with an error frame (the process, if any, is gone or killed).
 * False when c was freed. */
static bool exc_fail(struct exc *c, const char *msg)
{
        if (c->started && !c->done) {
                struct vm_agent *a = *c->x->agent;
                cleanup_err struct err e = ERR_INIT;
                if (a)
                        (void)vm_agent_exec_send(a, c->cid, c->eid, NULL, 0, false, true, &e);
        }
        c->done = true;
        put_frame(&c->out, SHIM_VM_EXEC_ERROR, msg, strlen(msg));
        return exc_flush(c);
}

static void on_reply(void *arg, const struct vm_agent_reply *r)
{
        struct exc *c = arg;
        if (c->done)
                return;
        if (r->error_kind) {
                c->started = false; /* nothing runs in the guest */
                (void)exc_fail(c, r->error && *r->error ? r->error : "exec failed in the guest");
                return;
        }
        uint8_t code[4] = {(uint8_t)((uint32_t)r->exit_code >> 24), (uint8_t)((uint32_t)r->exit_code >> 16),
                           (uint8_t)((uint32_t)r->exit_code >> 8), (uint8_t)r->exit_code};
        c->done = true;
        put_frame(&c->out, SHIM_VM_EXEC_EXIT, code, sizeof(code));
        (void)exc_flush(c);
}

/* The request: a flags byte (SHIM_VM_EXEC_TTY), then the container id and
 * argv, each NUL-terminated. False when c was freed. */
static bool exc_start(struct exc *c, const char *body, size_t len)
{
        struct vm_agent *a = *c->x->agent;
        cleanup_strv char **args = NULL;
        const char *cid = NULL;
        if (len < 1)
                return exc_fail(c, "malformed exec request");
        c->tty = (body[0] & SHIM_VM_EXEC_TTY) != 0;
        body++;
        len--;
        for (size_t i = 0; i < len;) {
                const char *s = body + i;
                const char *nul = memchr(s, '\0', len - i);
                if (!nul)
                        break;
                if (!cid)
                        cid = s;
                else
                        strv_push(&args, s);
                i = (size_t)(nul - body) + 1;
        }
        if (!cid || !*cid || !args || !args[0][0])
                return exc_fail(c, "malformed exec request");
        if (!a)
                return exc_fail(c, "the connection to the pod's agent is gone");
        c->cid = xstrdup(cid);
        snprintf(c->eid, sizeof(c->eid), "x%llu", (unsigned long long)c->x->next_id++);
        cleanup_err struct err e = ERR_INIT;
        struct vm_stream_opts o = {.tty = c->tty, .window = EX_WINDOW};
        if (vm_agent_exec_stream_async(a, c->cid, c->eid, args, &o, on_reply, c, &e) < 0)
                return exc_fail(c, e.msg);
        c->started = true;
        c->in_avail = EX_WINDOW;
        return true;
}

/* Parse what the client sent. False when c was freed. */
static bool exc_parse(struct exc *c)
{
        size_t pos = 0;
        while (!c->done) {
                size_t left = c->in.len - pos;
                const char *p = c->in.buf + pos;
                if (!c->started) {
                        if (left < 4)
                                break;
                        uint32_t len = get_be32(p);
                        if (len > EX_REQ_MAX)
                                return exc_fail(c, "exec request too large");
                        if (left < 4 + (size_t)len)
                                break;
                        if (!exc_start(c, p + 4, len))
                                return false;
                        pos += 4 + (size_t)len;
                        continue;
                }
                if (left < 5)
                        break;
                uint32_t len = get_be32(p + 1);
                if (len > EX_FRAME_MAX)
                        return exc_fail(c, "exec frame too large");
                if (left < 5 + (size_t)len)
                        break;
                struct vm_agent *a = *c->x->agent;
                cleanup_err struct err e = ERR_INIT;
                int r = 0;
                size_t used = 5 + (size_t)len;
                if (!a) {
                        r = err_set(&e, ERR_UNAVAILABLE, "the connection to the pod's agent is gone");
                } else if (p[0] == SHIM_VM_EXEC_STDIN && len) {
                        if (!c->in_avail)
                                break; /* held until the guest's credit (exc_held) */
                        size_t n = len <= c->in_avail ? len : (size_t)c->in_avail;
                        r = vm_agent_exec_send(a, c->cid, c->eid, p + 5, n, false, false, &e);
                        c->in_avail -= n;
                        if (n < len) {
                                /* The rest stays as a frame of its own, its header
                                 * over bytes already sent. */
                                used = n;
                                uint32_t rest = len - (uint32_t)n;
                                char *h = c->in.buf + pos + n;
                                h[0] = SHIM_VM_EXEC_STDIN;
                                h[1] = (char)(rest >> 24);
                                h[2] = (char)(rest >> 16);
                                h[3] = (char)(rest >> 8);
                                h[4] = (char)rest;
                        }
                } else if (p[0] == SHIM_VM_EXEC_STDIN_EOF) {
                        r = vm_agent_exec_send(a, c->cid, c->eid, NULL, 0, true, false, &e);
                } else if (p[0] == SHIM_VM_EXEC_RESIZE && len == 4) {
                        r = vm_agent_resize(a, c->cid, c->eid, (uint16_t)((uint8_t)p[5] << 8 | (uint8_t)p[6]),
                                            (uint16_t)((uint8_t)p[7] << 8 | (uint8_t)p[8]), &e);
                }
                if (r < 0)
                        return exc_fail(c, e.msg);
                pos += used;
        }
        if (pos) {
                memmove(c->in.buf, c->in.buf + pos, c->in.len - pos);
                c->in.len -= pos;
        }
        return true;
}

static void exc_read(struct exc *c)
{
        char buf[65536];
        ssize_t n = recv(c->w.fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return;
        if (n <= 0) {
                exc_free(c); /* the client left (or cancelled): kills the process */
                return;
        }
        if (c->done)
                return; /* nothing more goes to the guest */
        sbuf_append(&c->in, buf, (size_t)n);
        if (!exc_parse(c))
                return;
        if (!exc_held(c) && c->in.len > EX_FRAME_MAX + 5)
                (void)exc_fail(c, "exec frame too large");
        else
                exc_events(c);
}

static struct exc *exc_find(struct vm_exec *x, const char *cid, const char *eid)
{
        for (struct exc *c = x->conns; c; c = c->next)
                if (c->cid && strcmp(c->eid, eid) == 0 && strcmp(c->cid, cid ? cid : "") == 0)
                        return c;
        return NULL;
}

void vm_exec_on_agent(struct vm_exec *x, const char *cid, const char *eid, int stream, const void *data,
                      size_t len, bool eof)
{
        (void)eof; /* the exit frame ends the output */
        struct exc *c = x ? exc_find(x, cid, eid) : NULL;
        if (!c || c->done || !len || (stream != SHIM_VM_EXEC_STDOUT && stream != SHIM_VM_EXEC_STDERR))
                return;
        if (c->out_payload + len > 2 * (size_t)EX_WINDOW) {
                /* The guest sent past its window: a broken agent. */
                log_warn("vmshim", "exec %s in %s: the guest ignored the window: killed", eid, cid);
                (void)exc_fail(c, "the guest agent sent output past its window: the process was killed");
                return;
        }
        put_frame(&c->out, stream, data, len);
        c->out_payload += len;
        (void)exc_flush(c);
}

void vm_exec_on_credit(struct vm_exec *x, const char *cid, const char *eid, uint64_t credit)
{
        struct exc *c = x ? exc_find(x, cid, eid) : NULL;
        if (!c || c->done)
                return;
        bool held = exc_held(c);
        c->in_avail += credit;
        if (held && exc_parse(c))
                exc_events(c);
}

static void on_accept(struct vm_exec *x)
{
        for (;;) {
                int fd = accept4(x->listen.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
                if (fd < 0)
                        return;
                struct exc *c = xzalloc(sizeof(*c));
                c->w = (struct vwatch){.fd = fd, .kind = W_EXEC_CONN, .owner = c};
                c->x = x;
                c->events = EPOLLIN;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &c->w};
                if (epoll_ctl(x->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
                        close(fd);
                        free(c);
                        continue;
                }
                c->next = x->conns;
                x->conns = c;
        }
}

void vm_exec_event(struct vm_exec *x, struct vwatch *w, uint32_t events)
{
        if (w->kind == W_EXEC_LISTEN) {
                on_accept(x);
                return;
        }
        struct exc *c = w->owner;
        if ((events & EPOLLOUT) && !exc_flush(c))
                return;
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                exc_read(c);
}

void vm_exec_agent_gone(struct vm_exec *x)
{
        for (struct exc *c = x ? x->conns : NULL, *next; c; c = next) {
                next = c->next;
                if (c->done)
                        continue;
                c->started = false; /* nothing to tell the agent */
                (void)exc_fail(c, "the pod's VM or its agent is gone");
        }
}

int vm_exec_start(int ep, const char *state_dir, struct vm_agent *const *agent, struct vm_exec **out,
                  struct err *e)
{
        struct vm_exec *x = xzalloc(sizeof(*x));
        x->ep = ep;
        x->agent = agent;
        x->next_id = 1;
        x->state_dir = xstrdup(state_dir);
        x->listen = (struct vwatch){.fd = -1, .kind = W_EXEC_LISTEN, .owner = x};
        if (vm_watch_listen(ep, state_dir, SHIM_VM_EXEC_SOCKET, &x->listen, e) < 0) {
                vm_exec_free(x);
                return -1;
        }
        *out = x;
        return 0;
}

void vm_exec_free(struct vm_exec *x)
{
        if (!x)
                return;
        while (x->conns) {
                x->conns->started = false;
                exc_free(x->conns);
        }
        if (x->listen.fd >= 0) {
                (void)epoll_ctl(x->ep, EPOLL_CTL_DEL, x->listen.fd, NULL);
                close(x->listen.fd);
                cleanup_free char *sock = path_join(x->state_dir, SHIM_VM_EXEC_SOCKET);
                (void)unlink(sock);
        }
        free(x->state_dir);
        free(x);
}

/* ---------- client (corrald) ---------- */

int shim_vm_exec_connect(const char *vm_dir, const char *ctr_id, char *const *args, bool tty, int *fd_out,
                         struct err *e)
{
        *fd_out = -1;
        if (!args || !args[0])
                return err_set(e, ERR_INVALID, "exec needs a command");
        struct sbuf b = {0};
        sbuf_append(&b, "\0\0\0\0", 4);
        char flags = tty ? SHIM_VM_EXEC_TTY : 0;
        sbuf_append(&b, &flags, 1);
        sbuf_append(&b, ctr_id, strlen(ctr_id) + 1);
        for (size_t i = 0; args[i]; i++)
                sbuf_append(&b, args[i], strlen(args[i]) + 1);
        size_t len = b.len - 4;
        if (len > EX_REQ_MAX) {
                sbuf_free(&b);
                return err_set(e, ERR_INVALID, "exec command too long (%zu bytes)", len);
        }
        b.buf[0] = (char)(len >> 24);
        b.buf[1] = (char)(len >> 16);
        b.buf[2] = (char)(len >> 8);
        b.buf[3] = (char)len;
        cleanup_close int fd = proto_connect_stream(vm_dir, SHIM_VM_EXEC_SOCKET, e);
        if (fd < 0) {
                sbuf_free(&b);
                return err_wrap(e, "the VM shim's exec socket");
        }
        int r = fd_write_all(fd, b.buf, b.len);
        sbuf_free(&b);
        if (r < 0)
                return err_make(e, errno, "exec request to the VM shim");
        *fd_out = steal_fd(&fd);
        return 0;
}

/* Write to an output pipe; a reader that is gone only loses the bytes. */
static void out_write(int *fd, const void *data, size_t len)
{
        if (*fd >= 0 && fd_write_all(*fd, data, len) < 0)
                *fd = -1; /* not ours to close */
}

/* What we queued for the shim (stdin, resizes, eof): written as the socket
 * takes it, never blocking, so that the process's output is always read
 * (the shim holds stdin back while the process does not read it; blocking
 * on it here while the process blocks on its output would deadlock). */
#define RELAY_QUEUE_MAX (256u << 10)

static int relay_flush(int fd, struct sbuf *q, size_t *off)
{
        while (*off < q->len) {
                ssize_t n = send(fd, q->buf + *off, q->len - *off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n < 0)
                        return -1;
                *off += (size_t)n;
        }
        if (*off >= q->len) {
                q->len = *off = 0;
        } else if (*off >= 65536) {
                memmove(q->buf, q->buf + *off, q->len - *off);
                q->len -= *off;
                *off = 0;
        }
        return 0;
}

int shim_vm_exec_relay(int fd, int stdin_fd, int stdout_fd, int stderr_fd, int resize_fd, int cancel_fd,
                       int *exit_code, struct err *e)
{
        struct sbuf in = {0}, q = {0};
        size_t qoff = 0;
        bool in_open = stdin_fd >= 0;
        int r = 0;
        if (!in_open)
                put_frame(&q, SHIM_VM_EXEC_STDIN_EOF, NULL, 0);
        for (;;) {
                if (relay_flush(fd, &q, &qoff) < 0) {
                        r = err_make(e, errno, "exec stdin to the VM shim");
                        break;
                }
                struct pollfd p[4] = {
                        {.fd = fd, .events = (short)(POLLIN | (qoff < q.len ? POLLOUT : 0))},
                        {.fd = in_open && q.len - qoff < RELAY_QUEUE_MAX ? stdin_fd : -1, .events = POLLIN},
                        {.fd = cancel_fd, .events = POLLIN},
                        {.fd = resize_fd, .events = POLLIN},
                };
                int n = poll(p, 4, -1);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = err_make(e, errno, "poll");
                        break;
                }
                if (p[2].revents & POLLIN) {
                        /* The session ended: our caller closes fd, the shim kills the process. */
                        *exit_code = 128 + 9;
                        break;
                }
                if (p[3].revents) {
                        struct shim_attach_resize rs;
                        ssize_t k = read(resize_fd, &rs, sizeof(rs));
                        if (k == (ssize_t)sizeof(rs)) {
                                uint8_t d[4] = {(uint8_t)(rs.rows >> 8), (uint8_t)rs.rows,
                                                (uint8_t)(rs.cols >> 8), (uint8_t)rs.cols};
                                put_frame(&q, SHIM_VM_EXEC_RESIZE, d, sizeof(d));
                        } else if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN)) {
                                resize_fd = -1; /* no more sizes */
                        }
                }
                if (p[1].revents) {
                        char buf[65536];
                        ssize_t k = read(stdin_fd, buf, sizeof(buf));
                        if (k < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        if (k > 0) {
                                put_frame(&q, SHIM_VM_EXEC_STDIN, buf, (size_t)k);
                        } else {
                                put_frame(&q, SHIM_VM_EXEC_STDIN_EOF, NULL, 0);
                                in_open = false;
                        }
                }
                if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR)))
                        continue;
                char buf[65536];
                ssize_t k = read(fd, buf, sizeof(buf));
                if (k < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (k <= 0) {
                        r = err_set(e, ERR_UNAVAILABLE, "the VM shim closed the exec connection");
                        break;
                }
                sbuf_append(&in, buf, (size_t)k);
                size_t pos = 0;
                bool end = false;
                while (!end && in.len - pos >= 5) {
                        const char *h = in.buf + pos;
                        uint32_t len = get_be32(h + 1);
                        if (in.len - pos < 5 + (size_t)len)
                                break;
                        const char *d = h + 5;
                        switch (h[0]) {
                        case SHIM_VM_EXEC_STDOUT:
                                out_write(&stdout_fd, d, len);
                                break;
                        case SHIM_VM_EXEC_STDERR:
                                out_write(&stderr_fd, d, len);
                                break;
                        case SHIM_VM_EXEC_EXIT:
                                if (len != 4) {
                                        r = err_set(e, ERR_DATA_LOSS,
                                                    "malformed exit frame from the VM shim");
                                } else {
                                        *exit_code = (int)get_be32(d);
                                }
                                end = true;
                                break;
                        case SHIM_VM_EXEC_ERROR:
                                r = err_set(e, ERR_UNAVAILABLE, "%.*s", (int)len, d);
                                end = true;
                                break;
                        default:
                                break;
                        }
                        pos += 5 + (size_t)len;
                }
                if (end)
                        break;
                memmove(in.buf, in.buf + pos, in.len - pos);
                in.len -= pos;
        }
        sbuf_free(&in);
        sbuf_free(&q);
        return r;
}
