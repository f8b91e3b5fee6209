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

/* Output the client has not read yet; beyond this the process is killed. */
#define EX_OUT_MAX (16u << 20)
/* The request and each client frame. */
#define EX_REQ_MAX   (1u << 20)
#define EX_FRAME_MAX (1u << 20)

struct exc {
        struct vwatch w;
        struct vm_exec *x;
        char eid[32];
        char *cid;
        bool started;    /* the agent was asked: it has a process (or will answer why not) */
        bool done;       /* exit or error queued: close once written */
        struct sbuf in;  /* client bytes not parsed yet */
        struct sbuf out; /* -> client, not yet written */
        size_t off;
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

static void exc_events(struct exc *c)
{
        uint32_t ev = EPOLLIN; /* also after done: the client's close ends it */
        if (c->off < c->out.len)
                ev |= EPOLLOUT;
        if (ev == c->events)
                return;
        struct epoll_event e = {.events = ev, .data.ptr = &c->w};
        (void)epoll_ctl(c->x->ep, EPOLL_CTL_MOD, c->w.fd, &e);
        c->events = ev;
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

/* The request: container id, then argv, each NUL-terminated. False when
 * c was freed. */
static bool exc_start(struct exc *c, const char *body, size_t len)
{
        struct vm_agent *a = *c->x->agent;
        cleanup_strv char **args = NULL;
        const char *cid = NULL;
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
        if (vm_agent_exec_stream_async(a, c->cid, c->eid, args, NULL, on_reply, c, &e) < 0)
                return exc_fail(c, e.msg);
        c->started = true;
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
                if (!a)
                        r = err_set(&e, ERR_UNAVAILABLE, "the connection to the pod's agent is gone");
                else if (p[0] == SHIM_VM_EXEC_STDIN && len)
                        r = vm_agent_exec_send(a, c->cid, c->eid, p + 5, len, false, false, &e);
                else if (p[0] == SHIM_VM_EXEC_STDIN_EOF)
                        r = vm_agent_exec_send(a, c->cid, c->eid, NULL, 0, true, false, &e);
                if (r < 0)
                        return exc_fail(c, e.msg);
                pos += 5 + (size_t)len;
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
        if (exc_parse(c) && c->in.len > EX_FRAME_MAX + 5)
                (void)exc_fail(c, "exec frame too large");
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
        if (c->out.len + len > EX_OUT_MAX) {
                log_warn("vmshim", "exec %s in %s: the client does not read: killed", eid, cid);
                (void)exc_fail(c, "the exec client did not read its output: the process was killed");
                return;
        }
        put_frame(&c->out, stream, data, len);
        (void)exc_flush(c);
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

int shim_vm_exec_connect(const char *vm_dir, const char *ctr_id, char *const *args, int *fd_out,
                         struct err *e)
{
        *fd_out = -1;
        if (!args || !args[0])
                return err_set(e, ERR_INVALID, "exec needs a command");
        struct sbuf b = {0};
        sbuf_append(&b, "\0\0\0\0", 4);
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

static int send_frame(int fd, int type, const void *data, size_t len)
{
        struct sbuf b = {0};
        put_frame(&b, type, data, len);
        int r = fd_write_all(fd, b.buf, b.len);
        sbuf_free(&b);
        return r;
}

/* Write to an output pipe; a reader that is gone only loses the bytes. */
static void out_write(int *fd, const void *data, size_t len)
{
        if (*fd >= 0 && fd_write_all(*fd, data, len) < 0)
                *fd = -1; /* not ours to close */
}

int shim_vm_exec_relay(int fd, int stdin_fd, int stdout_fd, int stderr_fd, int cancel_fd, int *exit_code,
                       struct err *e)
{
        struct sbuf in = {0};
        bool in_open = stdin_fd >= 0;
        int r = 0;
        if (!in_open && send_frame(fd, SHIM_VM_EXEC_STDIN_EOF, NULL, 0) < 0)
                return err_make(e, errno, "exec stdin to the VM shim");
        for (;;) {
                struct pollfd p[3] = {{.fd = fd, .events = POLLIN},
                                      {.fd = in_open ? stdin_fd : -1, .events = POLLIN},
                                      {.fd = cancel_fd, .events = POLLIN}};
                int n = poll(p, 3, -1);
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
                if (p[1].revents) {
                        char buf[65536];
                        ssize_t k = read(stdin_fd, buf, sizeof(buf));
                        if (k < 0 && (errno == EINTR || errno == EAGAIN))
                                continue;
                        int w = k > 0 ? send_frame(fd, SHIM_VM_EXEC_STDIN, buf, (size_t)k)
                                      : send_frame(fd, SHIM_VM_EXEC_STDIN_EOF, NULL, 0);
                        if (k <= 0)
                                in_open = false;
                        if (w < 0) {
                                r = err_make(e, errno, "exec stdin to the VM shim");
                                break;
                        }
                }
                if (!p[0].revents)
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
        return r;
}
