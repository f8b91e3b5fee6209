/* Control protocol framing and the unix socket helpers (see proto-internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "shim/proto-internal.h"

struct field_hdr {
        uint16_t tag;
        uint16_t reserved;
        uint32_t len;
};

void proto_msg_clear(struct proto_msg *m)
{
        if (m == NULL)
                return;
        free(m->body);
        memset(m, 0, sizeof(*m));
}

void proto_put(struct sbuf *b, uint16_t tag, const void *data, size_t len)
{
        struct field_hdr f = {.tag = tag, .len = (uint32_t)len};
        sbuf_append(b, &f, sizeof(f));
        if (len)
                sbuf_append(b, data, len);
}

void proto_put_str(struct sbuf *b, uint16_t tag, const char *s)
{
        proto_put(b, tag, s, strlen(s));
}

void proto_put_i64(struct sbuf *b, uint16_t tag, int64_t v)
{
        proto_put(b, tag, &v, sizeof(v));
}

bool proto_next(const struct proto_msg *m, size_t *pos, uint16_t *tag, const char **data, uint32_t *len)
{
        struct field_hdr f;
        if (*pos >= m->len || m->len - *pos < sizeof(f)) {
                *pos = m->len;
                return false;
        }
        memcpy(&f, m->body + *pos, sizeof(f));
        size_t start = *pos + sizeof(f);
        if (f.len > m->len - start) {
                *pos = m->len;
                return false;
        }
        *tag = f.tag;
        *data = m->body + start;
        *len = f.len;
        *pos = start + f.len;
        return true;
}

bool proto_get(const struct proto_msg *m, uint16_t tag, const char **data, uint32_t *len)
{
        size_t pos = 0;
        uint16_t t;
        while (proto_next(m, &pos, &t, data, len))
                if (t == tag)
                        return true;
        return false;
}

bool proto_get_i64(const struct proto_msg *m, uint16_t tag, int64_t *v)
{
        const char *d;
        uint32_t n;
        if (!proto_get(m, tag, &d, &n) || n != sizeof(*v))
                return false;
        memcpy(v, d, sizeof(*v));
        return true;
}

char *proto_get_str(const struct proto_msg *m, uint16_t tag)
{
        const char *d;
        uint32_t n;
        if (!proto_get(m, tag, &d, &n))
                return NULL;
        return xstrndup(d, n);
}

static void fill_hdr(struct proto_hdr *h, uint16_t op, const struct err *status, size_t len)
{
        memset(h, 0, sizeof(*h));
        h->magic = PROTO_MAGIC;
        h->op = op;
        if (status && status->msg) {
                h->kind = status->kind == ERR_OK ? ERR_UNKNOWN : (int32_t)status->kind;
                h->errnum = status->errnum;
        }
        h->len = (uint32_t)len;
}

/* An error travels as PF_MSG appended to the body. */
static void body_with_status(struct sbuf *out, const struct err *status, const struct sbuf *body)
{
        if (body && body->len)
                sbuf_append(out, body->buf, body->len);
        if (status && status->msg)
                proto_put_str(out, PF_MSG, status->msg);
}

void proto_serialize(struct sbuf *out, uint16_t op, const struct err *status, const struct sbuf *body)
{
        struct sbuf b = {0};
        body_with_status(&b, status, body);
        struct proto_hdr h;
        fill_hdr(&h, op, status, b.len);
        sbuf_append(out, &h, sizeof(h));
        if (b.len)
                sbuf_append(out, b.buf, b.len);
        sbuf_free(&b);
}

int proto_send(int fd, uint16_t op, const struct err *status, const struct sbuf *body, struct err *e)
{
        struct sbuf all = {0};
        proto_serialize(&all, op, status, body);
        size_t off = 0;
        int ret = 0;
        while (off < all.len) {
                size_t n = all.len - off;
                if (n > PROTO_PACKET)
                        n = PROTO_PACKET;
                ssize_t w = send(fd, all.buf + off, n, MSG_NOSIGNAL);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        int saved = errno;
                        ret = err_make(e, saved, "send to shim socket");
                        /* The peer is gone: the caller may retry after reconnecting. */
                        if (e && (saved == EPIPE || saved == ECONNRESET || saved == ENOTCONN))
                                e->kind = ERR_UNAVAILABLE;
                        break;
                }
                off += (size_t)w; /* SEQPACKET sends whole packets */
        }
        sbuf_free(&all);
        return ret;
}

static int wait_readable(int fd, int64_t deadline_mono_ns, struct err *e)
{
        for (;;) {
                int ms = -1;
                if (deadline_mono_ns >= 0) {
                        int64_t left = deadline_mono_ns - time_mono_ns();
                        if (left <= 0)
                                return err_set(e, ERR_DEADLINE, "timed out waiting for the shim");
                        ms = (int)((left + 999999) / 1000000);
                }
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, 1, ms);
                if (r < 0) {
                        if (errno == EINTR)
                                continue;
                        return err_make(e, errno, "poll shim socket");
                }
                if (r > 0)
                        return 0;
        }
}

static ssize_t recv_packet(int fd, char *buf, int64_t deadline, struct err *e)
{
        for (;;) {
                if (wait_readable(fd, deadline, e) < 0)
                        return -1;
                ssize_t n = recv(fd, buf, PROTO_PACKET, MSG_TRUNC | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR || errno == EAGAIN)
                                continue;
                        return err_make(e, errno, "receive from shim socket");
                }
                if (n > PROTO_PACKET)
                        return err_set(e, ERR_INTERNAL, "shim protocol: packet of %zd bytes is too large", n);
                return n;
        }
}

static int check_hdr(const struct proto_hdr *h, struct err *e)
{
        if (h->magic != PROTO_MAGIC)
                return err_set(e, ERR_INTERNAL, "shim protocol: bad magic %#x", h->magic);
        if (h->len > PROTO_MAX_BODY)
                return err_set(e, ERR_INTERNAL, "shim protocol: body of %u bytes is too large", h->len);
        return 0;
}

int proto_recv(int fd, int64_t timeout_ms, struct proto_msg *m, struct err *e)
{
        memset(m, 0, sizeof(*m));
        int64_t deadline = timeout_ms < 0 ? -1 : time_mono_ns() + timeout_ms * 1000000;
        cleanup_free char *pkt = xmalloc(PROTO_PACKET);
        ssize_t n = recv_packet(fd, pkt, deadline, e);
        if (n < 0)
                return -1;
        if (n == 0)
                return err_set(e, ERR_UNAVAILABLE, "shim connection closed");
        if ((size_t)n < sizeof(m->hdr))
                return err_set(e, ERR_INTERNAL, "shim protocol: short packet of %zd bytes", n);
        memcpy(&m->hdr, pkt, sizeof(m->hdr));
        if (check_hdr(&m->hdr, e) < 0)
                return -1;
        size_t want = m->hdr.len;
        m->body = xmalloc(want + 1);
        size_t have = (size_t)n - sizeof(m->hdr);
        if (have > want)
                have = want;
        memcpy(m->body, pkt + sizeof(m->hdr), have);
        while (have < want) {
                /* Continuation packets follow at once; a silent peer is dead. */
                int64_t d = deadline >= 0 ? deadline : time_mono_ns() + 30LL * 1000000000LL;
                n = recv_packet(fd, pkt, d, e);
                if (n < 0) {
                        proto_msg_clear(m);
                        return -1;
                }
                if (n == 0) {
                        proto_msg_clear(m);
                        return err_set(e, ERR_UNAVAILABLE, "shim connection closed mid-message");
                }
                size_t take = (size_t)n > want - have ? want - have : (size_t)n;
                memcpy(m->body + have, pkt, take);
                have += take;
        }
        m->body[want] = '\0';
        m->len = want;
        return 0;
}

int proto_parse(const char *buf, size_t len, struct proto_msg *m, struct err *e)
{
        memset(m, 0, sizeof(*m));
        if (len < sizeof(m->hdr))
                return err_set(e, ERR_INTERNAL, "shim protocol: short message of %zu bytes", len);
        memcpy(&m->hdr, buf, sizeof(m->hdr));
        if (check_hdr(&m->hdr, e) < 0)
                return -1;
        if (m->hdr.len != len - sizeof(m->hdr))
                return err_set(e, ERR_INTERNAL, "shim protocol: body is %zu bytes, header says %u",
                               len - sizeof(m->hdr), m->hdr.len);
        m->body = xmalloc(m->hdr.len + 1);
        memcpy(m->body, buf + sizeof(m->hdr), m->hdr.len);
        m->body[m->hdr.len] = '\0';
        m->len = m->hdr.len;
        return 0;
}

int proto_reply_status(const struct proto_msg *m, struct err *e)
{
        if (m->hdr.kind == ERR_OK)
                return 0;
        cleanup_free char *msg = proto_get_str(m, PF_MSG);
        int ret = err_set(e, (enum err_kind)m->hdr.kind, "%s", msg ? msg : "shim error without a message");
        if (e)
                e->errnum = m->hdr.errnum;
        return ret;
}

static int sock_addr(struct sockaddr_un *addr, int dirfd, const char *name, struct err *e)
{
        memset(addr, 0, sizeof(*addr));
        addr->sun_family = AF_UNIX;
        int n = snprintf(addr->sun_path, sizeof(addr->sun_path), "/proc/self/fd/%d/%s", dirfd, name);
        if (n < 0 || (size_t)n >= sizeof(addr->sun_path))
                return err_set(e, ERR_INVALID, "socket name %s is too long", name);
        return 0;
}

static int listen_type(const char *dir, const char *name, int type, struct err *e)
{
        cleanup_close int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return err_make(e, errno, "open %s", dir);
        struct sockaddr_un addr;
        if (sock_addr(&addr, dirfd, name, e) < 0)
                return -1;
        cleanup_close int fd = socket(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return err_make(e, errno, "remove old %s/%s", dir, name);
        /* The umask keeps the socket private from the moment it exists. */
        mode_t old = umask(0077);
        int r = bind(fd, (struct sockaddr *)&addr, sizeof(addr));
        int saved = errno;
        umask(old);
        if (r < 0)
                return err_make(e, saved, "bind %s/%s", dir, name);
        if (listen(fd, 32) < 0)
                return err_make(e, errno, "listen %s/%s", dir, name);
        return steal_fd(&fd);
}

int proto_listen(const char *dir, const char *name, struct err *e)
{
        return listen_type(dir, name, SOCK_SEQPACKET, e);
}

int proto_listen_stream(const char *dir, const char *name, struct err *e)
{
        return listen_type(dir, name, SOCK_STREAM, e);
}

static int connect_type(const char *dir, const char *name, int type, struct err *e)
{
        cleanup_close int dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return err_make(e, errno, "open shim state dir %s", dir);
        struct sockaddr_un addr;
        if (sock_addr(&addr, dirfd, name, e) < 0)
                return -1;
        cleanup_close int fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        for (;;) {
                if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
                        break;
                if (errno == EINTR)
                        continue;
                int saved = errno;
                /* ENOENT / ECONNREFUSED: no shim serves this state dir. */
                err_make(e, saved, "connect to shim at %s/%s", dir, name);
                if (e && (saved == ENOENT || saved == ECONNREFUSED))
                        e->kind = ERR_UNAVAILABLE;
                return -1;
        }
        return steal_fd(&fd);
}

int proto_connect(const char *dir, const char *name, struct err *e)
{
        return connect_type(dir, name, SOCK_SEQPACKET, e);
}

int proto_connect_stream(const char *dir, const char *name, struct err *e)
{
        return connect_type(dir, name, SOCK_STREAM, e);
}
