/* A SPDY/3.1 client for the streaming protocols (what kubectl and crictl
 * do): corralctl's exec -it, attach and port-forward, and the tests. */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <yajl/yajl_tree.h>

#include "stream/stream-internal.h"

struct fwd;

struct cstream {
        uint32_t id;
        int out_fd;           /* incoming data goes here, or */
        struct sbuf *collect; /* here */
        bool replied, remote_fin, reset;
        struct fwd *fwd;
        struct cstream *next;
};

struct fwd {
        struct stream_client *c;
        uint16_t port;
        int fd;
        int wake; /* eventfd: the reader saw something for us */
        struct cstream *data, *error;
        struct sbuf errmsg;
        pthread_t thr;
        bool done;
        struct fwd *next;
};

struct stream_client {
        struct conn c;
        char *protocol;
        struct spdy_zlib z;
        uint32_t next_id;
        bool goaway;
        pthread_mutex_t lock; /* streams, state; writes go under c.wlock */
        pthread_cond_t cond;
        struct cstream *streams;
        bool closed;
        pthread_t reader;
        bool reader_started;
        struct cstream *resize;
        struct fwd *fwds;
        unsigned fwd_active, fwd_seq;
};

/* ---------- HTTP upgrade ---------- */

int stream_url_parse(const char *url, char **host, char **port, char **path, struct err *e)
{
        if (!str_has_prefix(url, "http://"))
                return err_set(e, ERR_INVALID, "stream url %s: only http:// is supported", url);
        const char *h = url + 7;
        const char *slash = strchr(h, '/');
        if (!slash)
                return err_set(e, ERR_INVALID, "stream url %s has no path", url);
        cleanup_free char *hostport = xstrndup(h, (size_t)(slash - h));
        char *colon;
        if (hostport[0] == '[') {
                char *rb = strchr(hostport, ']');
                if (!rb)
                        return err_set(e, ERR_INVALID, "stream url %s: bad IPv6 host", url);
                *rb = 0;
                *host = xstrdup(hostport + 1);
                colon = rb[1] == ':' ? rb + 1 : NULL;
        } else {
                colon = strrchr(hostport, ':');
                *host = colon ? xstrndup(hostport, (size_t)(colon - hostport)) : xstrdup(hostport);
        }
        *port = xstrdup(colon ? colon + 1 : "80");
        *path = xstrdup(slash);
        return 0;
}

int stream_read_response_head(int fd, const char *url, struct sbuf *resp, size_t *head_len, int *code,
                              struct err *e)
{
        char buf[4096];
        char *end = NULL;
        while (!(end = resp->len ? strstr(resp->buf, "\r\n\r\n") : NULL)) {
                if (resp->len > 65536) {
                        sbuf_free(resp);
                        return err_set(e, ERR_INVALID, "upgrade response from %s too large", url);
                }
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        sbuf_free(resp);
                        return err_set(e, ERR_UNAVAILABLE, "connection to %s closed during the upgrade", url);
                }
                sbuf_append(resp, buf, (size_t)n);
        }
        *head_len = (size_t)(end - resp->buf) + 4;
        if (sscanf(resp->buf, "HTTP/1.%*d %d", code) != 1) {
                sbuf_free(resp);
                return err_set(e, ERR_INVALID, "bad HTTP response from %s", url);
        }
        return 0;
}

int stream_dial_tcp(const char *host, const char *port, struct err *e)
{
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
        int r = getaddrinfo(host, port, &hints, &res);
        if (r != 0)
                return err_set(e, ERR_UNAVAILABLE, "resolve %s: %s", host, gai_strerror(r));
        int fd = -1, saved = 0;
        for (struct addrinfo *a = res; a; a = a->ai_next) {
                fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
                if (fd < 0)
                        continue;
                if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
                        break;
                saved = errno;
                close(fd);
                fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0)
                return err_make(e, saved ? saved : ECONNREFUSED, "connect %s:%s", host, port);
        return fd;
}

const char *stream_header_value(const char *head, const char *name, char *out, size_t outlen)
{
        size_t nl = strlen(name);
        for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n")) {
                const char *l = p + 2;
                if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
                        const char *v = l + nl + 1;
                        while (*v == ' ')
                                v++;
                        const char *end = strstr(v, "\r\n");
                        size_t len = end ? (size_t)(end - v) : strlen(v);
                        if (len >= outlen)
                                len = outlen - 1;
                        memcpy(out, v, len);
                        out[len] = 0;
                        return out;
                }
        }
        return NULL;
}

int stream_upgrade_refused(int fd, struct sbuf *resp, size_t head_len, int code, struct err *e)
{
        /* The body is what the server said: read what its Content-Length
         * announces (up to 4 KiB) for the error message. */
        char cl[32], buf[1024];
        size_t want =
                stream_header_value(resp->buf, "Content-Length", cl, sizeof(cl)) ? strtoul(cl, NULL, 10) : 0;
        if (want > 4096)
                want = 4096;
        while (resp->len - head_len < want) {
                ssize_t n = recv(fd, buf, sizeof(buf), 0);
                if (n <= 0)
                        break;
                sbuf_append(resp, buf, (size_t)n);
        }
        cleanup_free char *body = xstrndup(resp->buf + head_len, resp->len - head_len);
        size_t bl = strlen(body);
        while (bl && (body[bl - 1] == '\n' || body[bl - 1] == '\r'))
                body[--bl] = 0;
        sbuf_free(resp);
        enum err_kind k = code == 404   ? ERR_NOT_FOUND
                          : code == 403 ? ERR_PERMISSION
                          : code == 503 ? ERR_UNAVAILABLE
                                        : ERR_INVALID;
        return err_set(e, k, "stream upgrade refused: HTTP %d: %s", code, body);
}

static void *reader_main(void *arg);

int stream_client_dial(const char *url, const char *protocol, struct stream_client **out, struct err *e)
{
        cleanup_free char *host = NULL, *port = NULL, *path = NULL;
        if (stream_url_parse(url, &host, &port, &path, e) < 0)
                return -1;
        bool pf = str_has_prefix(path, "/portforward/");
        cleanup_close int fd = stream_dial_tcp(host, port, e);
        if (fd < 0)
                return -1;
        struct sbuf req = {0};
        bool v6 = strchr(host, ':') != NULL;
        sbuf_printf(&req, "POST %s HTTP/1.1\r\nHost: %s%s%s:%s\r\nUser-Agent: corral/%s\r\n", path,
                    v6 ? "[" : "", host, v6 ? "]" : "", port, CORRAL_VERSION);
        sbuf_puts(&req, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n");
        if (protocol)
                sbuf_printf(&req, "X-Stream-Protocol-Version: %s\r\n", protocol);
        else if (pf)
                sbuf_puts(&req, "X-Stream-Protocol-Version: " PROTO_PF "\r\n");
        else
                sbuf_puts(&req,
                          "X-Stream-Protocol-Version: " PROTO_V4 "\r\nX-Stream-Protocol-Version: " PROTO_V3
                          "\r\nX-Stream-Protocol-Version: " PROTO_V2
                          "\r\nX-Stream-Protocol-Version: " PROTO_V1 "\r\n");
        sbuf_puts(&req, "Content-Length: 0\r\n\r\n");
        int wr = fd_write_all(fd, req.buf, req.len);
        sbuf_free(&req);
        if (wr < 0)
                return err_make(e, errno, "send upgrade request to %s", url);

        /* Read the response head; what follows it is already SPDY. */
        struct sbuf resp = {0};
        size_t head_len = 0;
        int code = 0;
        if (stream_read_response_head(fd, url, &resp, &head_len, &code, e) < 0)
                return -1;
        if (code != 101)
                return stream_upgrade_refused(fd, &resp, head_len, code, e);
        char val[256];
        if (!stream_header_value(resp.buf, "Upgrade", val, sizeof(val)) || strcasecmp(val, "SPDY/3.1") != 0) {
                sbuf_free(&resp);
                return err_set(e, ERR_INVALID, "server at %s did not upgrade to SPDY/3.1", url);
        }
        struct stream_client *c = xzalloc(sizeof(*c));
        c->protocol = xstrdup(
                stream_header_value(resp.buf, "X-Stream-Protocol-Version", val, sizeof(val)) ? val : "");
        c->next_id = 1;
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->cond, NULL);
        int r = conn_init(&c->c, fd, resp.buf + head_len, resp.len - head_len, e);
        sbuf_free(&resp);
        if (r < 0 || spdy_zlib_init(&c->z, e) < 0) {
                free(c->protocol);
                free(c);
                return -1;
        }
        c->c.fd = steal_fd(&fd);
        if (pthread_create(&c->reader, NULL, reader_main, c) != 0) {
                stream_client_free(c);
                return err_set(e, ERR_INTERNAL, "cannot start the stream reader thread");
        }
        c->reader_started = true;
        *out = c;
        return 0;
}

const char *stream_client_protocol(const struct stream_client *c)
{
        return c->protocol;
}

/* ---------- frames out ---------- */

static int send_raw(struct stream_client *c, struct sbuf *b)
{
        pthread_mutex_lock(&c->c.wlock);
        int r = conn_write_locked(&c->c, b->buf, b->len);
        pthread_mutex_unlock(&c->c.wlock);
        sbuf_free(b);
        return r;
}

static int send_data(struct stream_client *c, uint32_t id, uint8_t flags, const void *d, size_t n)
{
        struct sbuf b = {0};
        spdy_put_data(&b, id, flags, d, n);
        return send_raw(c, &b);
}

/* Create a stream with these headers; wait for the server's SYN_REPLY. */
static struct cstream *open_stream(struct stream_client *c, const char *const *names, const char *const *vals,
                                   size_t n, struct err *e)
{
        struct cstream *s = xzalloc(sizeof(*s));
        s->out_fd = -1;
        struct sbuf raw = {0}, z = {0}, b = {0};
        spdy_headers_encode(names, vals, n, &raw);
        pthread_mutex_lock(&c->c.wlock);
        s->id = c->next_id;
        c->next_id += 2;
        pthread_mutex_lock(&c->lock);
        s->next = c->streams;
        c->streams = s;
        pthread_mutex_unlock(&c->lock);
        int r = spdy_zlib_deflate(&c->z, raw.buf, raw.len, &z, e);
        if (r == 0) {
                spdy_put_syn_stream(&b, s->id, 0, z.buf, z.len);
                r = conn_write_locked(&c->c, b.buf, b.len);
                if (r < 0)
                        err_set(e, ERR_UNAVAILABLE, "stream connection lost");
        }
        pthread_mutex_unlock(&c->c.wlock);
        sbuf_free(&raw);
        sbuf_free(&z);
        sbuf_free(&b);
        if (r < 0)
                return NULL;
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 30;
        pthread_mutex_lock(&c->lock);
        while (!s->replied && !s->reset && !c->closed)
                if (pthread_cond_timedwait(&c->cond, &c->lock, &dl) == ETIMEDOUT)
                        break;
        bool ok = s->replied;
        pthread_mutex_unlock(&c->lock);
        if (!ok) {
                err_set(e, ERR_UNAVAILABLE, "stream %s was not accepted by the server", vals[0]);
                return NULL;
        }
        return s;
}

/* ---------- the reader ---------- */

static struct cstream *find(struct stream_client *c, uint32_t id)
{
        for (struct cstream *s = c->streams; s; s = s->next)
                if (s->id == id)
                        return s;
        return NULL;
}

static void poke(struct stream_client *c, struct cstream *s)
{
        pthread_cond_broadcast(&c->cond);
        if (s && s->fwd) {
                uint64_t one = 1;
                (void)!write(s->fwd->wake, &one, sizeof(one));
        }
}

static void *reader_main(void *arg)
{
        struct stream_client *c = arg;
        struct err e = ERR_INIT;
        for (;;) {
                bool bad = false;
                for (;;) {
                        struct spdy_frame f;
                        long n = spdy_parse(c->c.rbuf, c->c.rlen, SPDY_MAX_LEN, &f, &e);
                        if (n < 0) {
                                err_clear(&e);
                                bad = true;
                                break;
                        }
                        if (n == 0)
                                break;
                        if (f.type == SPDY_SYN_STREAM || f.type == SPDY_SYN_REPLY || f.type == SPDY_HEADERS) {
                                struct sbuf raw = {0};
                                if (spdy_zlib_inflate(&c->z, f.payload, f.payload_len, 256 * 1024, &raw, &e) <
                                    0) {
                                        err_clear(&e);
                                        sbuf_free(&raw);
                                        bad = true;
                                        break;
                                }
                                sbuf_free(&raw);
                        }
                        pthread_mutex_lock(&c->lock);
                        struct cstream *s = f.stream_id ? find(c, f.stream_id) : NULL;
                        switch (f.type) {
                        case SPDY_SYN_REPLY:
                                if (s)
                                        s->replied = true;
                                if (s && (f.flags & SPDY_FLAG_FIN))
                                        s->remote_fin = true;
                                poke(c, s);
                                break;
                        case SPDY_SYN_STREAM: {
                                pthread_mutex_unlock(&c->lock);
                                struct sbuf b = {0};
                                spdy_put_rst(&b, f.stream_id, SPDY_RST_REFUSED_STREAM);
                                (void)send_raw(c, &b);
                                pthread_mutex_lock(&c->lock);
                                break;
                        }
                        case SPDY_DATA:
                                if (s && f.payload_len) {
                                        if (s->collect && s->collect->len < 1 << 20)
                                                sbuf_append(s->collect, f.payload, f.payload_len);
                                        if (s->out_fd >= 0) {
                                                int fd = s->out_fd;
                                                pthread_mutex_unlock(&c->lock);
                                                /* blocking: the local side sets the pace */
                                                const char *d = (const char *)f.payload;
                                                size_t left = f.payload_len;
                                                while (left) {
                                                        ssize_t w = send(fd, d, left, MSG_NOSIGNAL);
                                                        if (w < 0 && errno == ENOTSOCK)
                                                                w = write(fd, d, left);
                                                        if (w < 0 && errno == EINTR)
                                                                continue;
                                                        if (w <= 0)
                                                                break;
                                                        d += w;
                                                        left -= (size_t)w;
                                                }
                                                pthread_mutex_lock(&c->lock);
                                        }
                                }
                                if (s && (f.flags & SPDY_FLAG_FIN)) {
                                        s->remote_fin = true;
                                        if (s->fwd && s == s->fwd->data && s->fwd->fd >= 0)
                                                (void)shutdown(s->fwd->fd, SHUT_WR);
                                }
                                poke(c, s);
                                break;
                        case SPDY_RST_STREAM:
                                if (s) {
                                        s->reset = s->remote_fin = true;
                                        poke(c, s);
                                }
                                break;
                        case SPDY_PING:
                                if (!(f.value & 1)) {
                                        pthread_mutex_unlock(&c->lock);
                                        struct sbuf b = {0};
                                        spdy_put_ping(&b, f.value);
                                        (void)send_raw(c, &b);
                                        pthread_mutex_lock(&c->lock);
                                }
                                break;
                        case SPDY_GOAWAY:
                                c->goaway = true;
                                break;
                        default:
                                break;
                        }
                        pthread_mutex_unlock(&c->lock);
                        conn_consume(&c->c, (size_t)n);
                }
                if (bad)
                        break;
                int r = conn_fill(&c->c, -1);
                if (r < 0)
                        break;
        }
        pthread_mutex_lock(&c->lock);
        c->closed = true;
        for (struct cstream *s = c->streams; s; s = s->next) {
                s->remote_fin = true;
                poke(c, s);
        }
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/* ---------- exec / attach ---------- */

struct stdin_copy {
        struct stream_client *c;
        uint32_t id;
        int fd;
        int stop; /* eventfd */
};

static void *stdin_main(void *arg)
{
        struct stdin_copy *sc = arg;
        char buf[32768];
        for (;;) {
                struct pollfd p[2] = {{.fd = sc->fd, .events = POLLIN}, {.fd = sc->stop, .events = POLLIN}};
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents)
                        return NULL;
                ssize_t n = read(sc->fd, buf, sizeof(buf));
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n <= 0)
                        break;
                if (send_data(sc->c, sc->id, 0, buf, (size_t)n) < 0)
                        return NULL;
        }
        (void)send_data(sc->c, sc->id, SPDY_FLAG_FIN, NULL, 0);
        return NULL;
}

/* A finished exec's error-stream content as a result: v4+ carry a
 * metav1.Status whose NonZeroExitCode cause holds the code; older protocols
 * carry only a message. Nothing at all means success. */
void stream_result_from_status(const char *buf, size_t len, bool json, struct stream_client_result *res)
{
        res->exit_code = -1;
        if (len == 0) {
                res->exit_code = 0;
                return;
        }
        res->status = xstrndup(buf, len);
        yajl_val v = json ? json_parse(buf, len, "status", NULL) : NULL;
        if (!v) {
                res->message = xstrdup(res->status);
                return;
        }
        const char *status = json_get_str(v, "status");
        if (status && strcmp(status, "Success") == 0) {
                res->exit_code = 0;
        } else {
                const char *msg = json_get_str(v, "message");
                res->message = xstrdup(msg ? msg : res->status);
                const char *reason = json_get_str(v, "reason");
                yajl_val causes = json_get(json_get(v, "details"), "causes");
                if (reason && strcmp(reason, "NonZeroExitCode") == 0 && causes && YAJL_IS_ARRAY(causes))
                        for (size_t i = 0; i < causes->u.array.len; i++) {
                                yajl_val cv = causes->u.array.values[i];
                                const char *cr = json_get_str(cv, "reason");
                                const char *cm = json_get_str(cv, "message");
                                if (cr && cm && strcmp(cr, "ExitCode") == 0)
                                        res->exit_code = atoi(cm);
                        }
        }
        yajl_tree_free(v);
}

static void parse_status(const char *proto, struct sbuf *st, struct stream_client_result *res)
{
        stream_result_from_status(st->buf, st->len, strcmp(proto, PROTO_V4) == 0, res);
}

int stream_client_exec(struct stream_client *c, const struct stream_client_exec_opts *o,
                       struct stream_client_result *res, struct err *e)
{
        memset(res, 0, sizeof(*res));
        res->exit_code = -1;
        struct sbuf status = {0};
        const char *names[] = {"streamType"};
        const char *t_err[] = {"error"}, *t_in[] = {"stdin"}, *t_out[] = {"stdout"}, *t_errs[] = {"stderr"},
                   *t_rs[] = {"resize"};

        /* kubectl's order: error, stdin, stdout, stderr, resize */
        struct cstream *es = open_stream(c, names, t_err, 1, e);
        if (!es)
                return -1;
        pthread_mutex_lock(&c->lock);
        es->collect = &status;
        pthread_mutex_unlock(&c->lock);
        struct cstream *in = NULL, *out = NULL, *errs = NULL;
        if (o->in_fd >= 0 && !(in = open_stream(c, names, t_in, 1, e)))
                goto fail;
        if (o->out_fd >= 0) {
                if (!(out = open_stream(c, names, t_out, 1, e)))
                        goto fail;
                pthread_mutex_lock(&c->lock);
                out->out_fd = o->out_fd;
                pthread_mutex_unlock(&c->lock);
        }
        if (o->err_fd >= 0 && !o->tty) {
                if (!(errs = open_stream(c, names, t_errs, 1, e)))
                        goto fail;
                pthread_mutex_lock(&c->lock);
                errs->out_fd = o->err_fd;
                pthread_mutex_unlock(&c->lock);
        }
        if (o->tty && strcmp(c->protocol, PROTO_V2) != 0 && strcmp(c->protocol, PROTO_V1) != 0 &&
            *c->protocol) {
                struct cstream *rs = open_stream(c, names, t_rs, 1, e);
                if (!rs)
                        goto fail;
                pthread_mutex_lock(&c->lock);
                c->resize = rs;
                pthread_mutex_unlock(&c->lock);
                if (o->width && o->height)
                        (void)stream_client_resize(c, o->width, o->height, NULL);
        }

        struct stdin_copy sc = {c, in ? in->id : 0, o->in_fd, -1};
        pthread_t in_thr;
        bool in_started = false;
        if (in) {
                sc.stop = eventfd(0, EFD_CLOEXEC);
                if (sc.stop >= 0 && pthread_create(&in_thr, NULL, stdin_main, &sc) == 0)
                        in_started = true;
        }

        /* Done when the output streams and the error stream have ended. */
        pthread_mutex_lock(&c->lock);
        while (!c->closed && !(es->remote_fin && (!out || out->remote_fin) && (!errs || errs->remote_fin)))
                pthread_cond_wait(&c->cond, &c->lock);
        es->collect = NULL;
        if (out)
                out->out_fd = -1;
        if (errs)
                errs->out_fd = -1;
        pthread_mutex_unlock(&c->lock);

        if (in_started) {
                uint64_t one = 1;
                (void)!write(sc.stop, &one, sizeof(one));
                pthread_join(in_thr, NULL);
        }
        if (sc.stop >= 0)
                close(sc.stop);
        parse_status(c->protocol, &status, res);
        sbuf_free(&status);
        return 0;
fail:
        pthread_mutex_lock(&c->lock);
        es->collect = NULL;
        pthread_mutex_unlock(&c->lock);
        sbuf_free(&status);
        return -1;
}

int stream_client_resize(struct stream_client *c, uint16_t width, uint16_t height, struct err *e)
{
        pthread_mutex_lock(&c->lock);
        uint32_t id = c->resize ? c->resize->id : 0;
        pthread_mutex_unlock(&c->lock);
        if (!id)
                return err_set(e, ERR_PRECONDITION, "no resize stream (not a tty session)");
        cleanup_free char *msg = xasprintf("{\"Width\":%u,\"Height\":%u}\n", width, height);
        if (send_data(c, id, 0, msg, strlen(msg)) < 0)
                return err_set(e, ERR_UNAVAILABLE, "stream connection lost");
        return 0;
}

/* ---------- port-forward ---------- */

static void *fwd_main(void *arg)
{
        struct fwd *f = arg;
        struct stream_client *c = f->c;
        char buf[65536];
        bool local_eof = false;
        for (;;) {
                pthread_mutex_lock(&c->lock);
                bool remote_done = f->data->remote_fin && f->error->remote_fin;
                pthread_mutex_unlock(&c->lock);
                if (remote_done)
                        break;
                struct pollfd p[2] = {{.fd = local_eof ? -1 : f->fd, .events = POLLIN},
                                      {.fd = f->wake, .events = POLLIN}};
                if (poll(p, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                if (p[1].revents) {
                        uint64_t v;
                        (void)!read(f->wake, &v, sizeof(v));
                }
                if (!local_eof && p[0].revents) {
                        ssize_t n = recv(f->fd, buf, sizeof(buf), 0);
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n > 0) {
                                if (send_data(c, f->data->id, 0, buf, (size_t)n) < 0)
                                        local_eof = true; /* connection lost: the reader ends the streams */
                        } else {
                                local_eof = true; /* half-close: tell the server, keep reading */
                                (void)send_data(c, f->data->id, SPDY_FLAG_FIN, NULL, 0);
                        }
                }
        }
        pthread_mutex_lock(&c->lock);
        f->data->out_fd = -1;
        f->error->collect = NULL;
        close(f->fd);
        f->fd = -1;
        f->done = true;
        c->fwd_active--;
        pthread_cond_broadcast(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

int stream_client_forward(struct stream_client *c, uint16_t port, int conn_fd, struct err *e)
{
        cleanup_close int fd = conn_fd;
        char ports[8], rid[16];
        snprintf(ports, sizeof(ports), "%u", port);
        pthread_mutex_lock(&c->lock);
        snprintf(rid, sizeof(rid), "%u", c->fwd_seq++);
        pthread_mutex_unlock(&c->lock);
        const char *names[] = {"streamType", "port", "requestID"};
        const char *ev[] = {"error", ports, rid}, *dv[] = {"data", ports, rid};

        struct fwd *f = xzalloc(sizeof(*f));
        f->c = c;
        f->port = port;
        f->fd = -1;
        f->wake = eventfd(0, EFD_CLOEXEC);
        if (f->wake < 0) {
                free(f);
                return err_make(e, errno, "eventfd");
        }
        f->error = open_stream(c, names, ev, 3, e);
        if (!f->error)
                goto fail;
        /* We never write on the error stream (kubectl closes it at once). */
        (void)send_data(c, f->error->id, SPDY_FLAG_FIN, NULL, 0);
        pthread_mutex_lock(&c->lock);
        f->error->fwd = f;
        f->error->collect = &f->errmsg;
        pthread_mutex_unlock(&c->lock);
        f->data = open_stream(c, names, dv, 3, e);
        if (!f->data)
                goto fail;
        pthread_mutex_lock(&c->lock);
        f->fd = steal_fd(&fd);
        f->data->fwd = f;
        f->data->out_fd = f->fd;
        if (f->data->remote_fin) /* the reader may have seen FIN before fd was set */
                (void)shutdown(f->fd, SHUT_WR);
        f->next = c->fwds;
        c->fwds = f;
        c->fwd_active++;
        pthread_mutex_unlock(&c->lock);
        if (pthread_create(&f->thr, NULL, fwd_main, f) != 0) {
                pthread_mutex_lock(&c->lock);
                c->fwd_active--;
                f->done = true;
                f->data->out_fd = -1;
                close(f->fd);
                f->fd = -1;
                pthread_mutex_unlock(&c->lock);
                return err_set(e, ERR_INTERNAL, "cannot start a forwarding thread");
        }
        return 0;
fail:
        pthread_mutex_lock(&c->lock);
        if (f->error) {
                f->error->fwd = NULL;
                f->error->collect = NULL;
        }
        pthread_mutex_unlock(&c->lock);
        close(f->wake);
        sbuf_free(&f->errmsg);
        free(f);
        return err_wrap(e, "forward port %u", port);
}

int stream_client_forward_wait(struct stream_client *c, char **errors)
{
        pthread_mutex_lock(&c->lock);
        while (c->fwd_active > 0)
                pthread_cond_wait(&c->cond, &c->lock);
        struct fwd *list = c->fwds;
        c->fwds = NULL;
        pthread_mutex_unlock(&c->lock);
        int nerr = 0;
        struct sbuf all = {0};
        while (list) {
                struct fwd *n = list->next;
                pthread_join(list->thr, NULL);
                if (list->errmsg.len) {
                        nerr++;
                        sbuf_append(&all, list->errmsg.buf, list->errmsg.len);
                        sbuf_putc(&all, '\n');
                }
                pthread_mutex_lock(&c->lock);
                list->data->fwd = list->error->fwd = NULL;
                pthread_mutex_unlock(&c->lock);
                close(list->wake);
                sbuf_free(&list->errmsg);
                free(list);
                list = n;
        }
        if (errors)
                *errors = nerr ? sbuf_steal(&all) : NULL;
        sbuf_free(&all);
        return nerr;
}

void stream_client_result_clear(struct stream_client_result *res)
{
        if (!res)
                return;
        free(res->status);
        free(res->message);
        res->status = res->message = NULL;
}

void stream_client_free(struct stream_client *c)
{
        if (!c)
                return;
        /* End the connection first: the reader then ends every stream, which
         * lets forwarding threads finish. */
        (void)shutdown(c->c.fd, SHUT_RDWR);
        conn_wake(&c->c);
        if (c->reader_started)
                pthread_join(c->reader, NULL);
        (void)stream_client_forward_wait(c, NULL);
        close(c->c.fd);
        conn_destroy(&c->c);
        spdy_zlib_free(&c->z);
        for (struct cstream *s = c->streams, *n; s; s = n) {
                n = s->next;
                free(s);
        }
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->cond);
        free(c->protocol);
        free(c);
}
