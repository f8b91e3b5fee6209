/* cloud-hypervisor's REST API over its unix socket: an HTTP/1.1 client of
 * one request per connection (Connection: close), the vm.create body, and
 * the hybrid-vsock handshake. See chv-internal.h. */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <yajl/yajl_tree.h>

#include "vm/chv-internal.h"
#include "vm/vm-internal.h"

static int64_t now_ms(void)
{
        return time_mono_ns() / 1000000;
}

/* ---------- response parser ---------- */

void vm_http_response_clear(struct vm_http_response *r)
{
        if (!r)
                return;
        free(r->reason);
        free(r->body);
        memset(r, 0, sizeof(*r));
}

static int bad(struct err *e, const char *what)
{
        return err_set(e, ERR_DATA_LOSS, "malformed HTTP reply from cloud-hypervisor: %s", what);
}

/* The end of the line starting at p (the '\r' of its CRLF), or NULL when
 * no CRLF is within [p, end). A bare LF is malformed: *bare is set. */
static const char *line_end(const char *p, const char *end, bool *bare)
{
        for (const char *q = p; q < end; q++) {
                if (*q == '\n') {
                        if (q == p || q[-1] != '\r') {
                                *bare = true;
                                return NULL;
                        }
                        return q - 1;
                }
        }
        return NULL;
}

static bool ieq_prefix(const char *p, const char *end, const char *name)
{
        size_t n = strlen(name);
        return (size_t)(end - p) >= n && strncasecmp(p, name, n) == 0;
}

/* "   value  " -> [*vs, *ve) */
static void trim(const char **vs, const char **ve)
{
        while (*vs < *ve && (**vs == ' ' || **vs == '\t'))
                (*vs)++;
        while (*ve > *vs && ((*ve)[-1] == ' ' || (*ve)[-1] == '\t'))
                (*ve)--;
}

/* Decimal or hex digits only, no sign, bounded. */
static bool parse_num(const char *s, const char *end, int base, uint64_t max, uint64_t *out)
{
        if (s >= end)
                return false;
        uint64_t v = 0;
        for (const char *p = s; p < end; p++) {
                int d;
                if (*p >= '0' && *p <= '9')
                        d = *p - '0';
                else if (base == 16 && *p >= 'a' && *p <= 'f')
                        d = *p - 'a' + 10;
                else if (base == 16 && *p >= 'A' && *p <= 'F')
                        d = *p - 'A' + 10;
                else
                        return false;
                if (v > (max - (uint64_t)d) / (uint64_t)base)
                        return false;
                v = v * (uint64_t)base + (uint64_t)d;
        }
        *out = v;
        return true;
}

/* Decode a chunked body from [p, end). 1: complete (*used set), 0: more
 * needed, -1: malformed. */
static int parse_chunked(const char *p, const char *end, struct sbuf *body, size_t *used, struct err *e)
{
        const char *start = p;
        for (;;) {
                bool bare = false;
                const char *le = line_end(p, end, &bare);
                if (!le) {
                        if (bare)
                                return bad(e, "chunk size line not ended by CRLF");
                        if (end - p > 1024)
                                return bad(e, "chunk size line too long");
                        return 0;
                }
                const char *se = memchr(p, ';', (size_t)(le - p)); /* chunk extensions ignored */
                if (!se)
                        se = le;
                const char *ss = p;
                trim(&ss, &se);
                uint64_t n;
                if (!parse_num(ss, se, 16, VM_HTTP_MAX_BODY, &n))
                        return bad(e, "bad chunk size");
                p = le + 2;
                if (n == 0) {
                        /* Trailers, then an empty line. */
                        for (;;) {
                                le = line_end(p, end, &bare);
                                if (!le) {
                                        if (bare)
                                                return bad(e, "trailer not ended by CRLF");
                                        if (end - p > (ptrdiff_t)VM_HTTP_MAX_HEADERS)
                                                return bad(e, "trailers too long");
                                        return 0;
                                }
                                bool empty = le == p;
                                p = le + 2;
                                if (empty) {
                                        *used = (size_t)(p - start);
                                        return 1;
                                }
                        }
                }
                if (body->len + n > VM_HTTP_MAX_BODY)
                        return bad(e, "chunked body larger than 16 MiB");
                if ((uint64_t)(end - p) < n + 2)
                        return 0;
                if (p[n] != '\r' || p[n + 1] != '\n')
                        return bad(e, "chunk data not followed by CRLF");
                sbuf_append(body, p, (size_t)n);
                p += n + 2;
        }
}

int vm_http_parse(const char *buf, size_t len, bool eof, struct vm_http_response *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        const char *end = buf + len;
        /* The head: status line and headers up to an empty line. */
        const char *hend = NULL;
        for (size_t i = 0; i + 3 < len && i < VM_HTTP_MAX_HEADERS; i++) {
                if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
                        hend = buf + i;
                        break;
                }
        }
        if (!hend) {
                if (len >= VM_HTTP_MAX_HEADERS)
                        return bad(e, "headers larger than 16 KiB");
                if (eof)
                        return len ? bad(e, "connection closed inside the headers")
                                   : bad(e, "connection closed without a reply");
                /* Fail early on what cannot become HTTP. */
                if (len >= 5 && memcmp(buf, "HTTP/", 5) != 0)
                        return bad(e, "no HTTP status line");
                return 0;
        }
        bool bare = false;
        const char *le = line_end(buf, hend + 2, &bare);
        if (!le)
                return bad(e, "status line not ended by CRLF");
        /* HTTP/1.x SSS reason */
        if (le - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 || (buf[7] != '0' && buf[7] != '1') ||
            buf[8] != ' ' || !isdigit((unsigned char)buf[9]) || !isdigit((unsigned char)buf[10]) ||
            !isdigit((unsigned char)buf[11]) || (le - buf > 12 && buf[12] != ' '))
                return bad(e, "bad status line");
        int status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
        if (status < 100 || status > 599)
                return bad(e, "status code out of range");
        const char *rs = le - buf > 13 ? buf + 13 : le, *re = le;
        for (const char *q = rs; q < re; q++)
                if ((unsigned char)*q < 0x20 && *q != '\t')
                        return bad(e, "control character in the reason phrase");
        bool chunked = false, have_cl = false;
        uint64_t cl = 0;
        const char *p = le + 2;
        while (p < hend + 2) {
                le = line_end(p, hend + 2, &bare);
                if (!le)
                        return bad(e, "header not ended by CRLF");
                if (le == p)
                        break;
                if (*p == ' ' || *p == '\t')
                        return bad(e, "obsolete header line folding");
                const char *colon = memchr(p, ':', (size_t)(le - p));
                if (!colon || colon == p)
                        return bad(e, "header without a name");
                for (const char *q = p; q < colon; q++)
                        if (!isgraph((unsigned char)*q))
                                return bad(e, "bad character in a header name");
                const char *vs = colon + 1, *ve = le;
                trim(&vs, &ve);
                for (const char *q = vs; q < ve; q++)
                        if ((unsigned char)*q < 0x20 && *q != '\t')
                                return bad(e, "control character in a header value");
                size_t nlen = (size_t)(colon - p);
                if (nlen == 14 && ieq_prefix(p, colon, "content-length")) {
                        uint64_t v;
                        if (!parse_num(vs, ve, 10, UINT64_MAX / 2, &v))
                                return bad(e, "bad Content-Length");
                        if (have_cl && v != cl)
                                return bad(e, "conflicting Content-Length headers");
                        if (v > VM_HTTP_MAX_BODY)
                                return bad(e, "body larger than 16 MiB");
                        have_cl = true;
                        cl = v;
                } else if (nlen == 17 && ieq_prefix(p, colon, "transfer-encoding")) {
                        if ((size_t)(ve - vs) == 7 && strncasecmp(vs, "chunked", 7) == 0)
                                chunked = true;
                        else
                                return bad(e, "unsupported Transfer-Encoding");
                }
                p = le + 2;
        }
        if (chunked && have_cl)
                return bad(e, "both Content-Length and chunked");
        const char *bs = hend + 4;
        struct sbuf body = {0};
        size_t used = 0;
        if (status / 100 == 1 || status == 204 || status == 304) {
                if (have_cl && cl != 0)
                        return bad(e, "a body on a reply that cannot have one");
                used = (size_t)(bs - buf);
        } else if (chunked) {
                int r = parse_chunked(bs, end, &body, &used, e);
                if (r <= 0) {
                        sbuf_free(&body);
                        if (r == 0 && eof)
                                return bad(e, "connection closed inside the chunked body");
                        return r;
                }
                used += (size_t)(bs - buf);
        } else if (have_cl) {
                if ((uint64_t)(end - bs) < cl) {
                        if (eof)
                                return err_set(
                                        e, ERR_DATA_LOSS,
                                        "malformed HTTP reply from cloud-hypervisor: body cut at %zu of "
                                        "%llu bytes",
                                        (size_t)(end - bs), (unsigned long long)cl);
                        return 0;
                }
                sbuf_append(&body, bs, (size_t)cl);
                used = (size_t)(bs - buf) + (size_t)cl;
        } else {
                /* Delimited by the close. */
                if (!eof)
                        return (size_t)(end - bs) > VM_HTTP_MAX_BODY ? bad(e, "body larger than 16 MiB") : 0;
                sbuf_append(&body, bs, (size_t)(end - bs));
                used = len;
        }
        out->status = status;
        out->reason = xstrndup(rs, (size_t)(re - rs));
        out->body_len = body.len;
        out->body = body.buf ? sbuf_steal(&body) : xstrdup("");
        out->consumed = used;
        return 1;
}

/* ---------- client ---------- */

static int connect_unix(const char *path, int *fd_out, struct err *e)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        size_t n = strlen(path);
        if (n >= sizeof(sa.sun_path))
                return err_set(e, ERR_INVALID, "socket path %s is too long", path);
        memcpy(sa.sun_path, path, n + 1);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "socket");
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int er = errno;
                close(fd);
                if (er == ECONNREFUSED || er == ENOENT)
                        return err_set(e, ERR_UNAVAILABLE, "connect %s: %s", path, strerror(er));
                return err_make(e, er, "connect %s", path);
        }
        *fd_out = fd;
        return 0;
}

static int wait_fd(int fd, short ev, int64_t deadline, const char *what, struct err *e)
{
        for (;;) {
                int64_t left = deadline - now_ms();
                if (left <= 0)
                        return err_set(e, ERR_DEADLINE, "%s: timed out", what);
                struct pollfd p = {.fd = fd, .events = ev};
                int r = poll(&p, 1, (int)left);
                if (r > 0)
                        return 0;
                if (r < 0 && errno != EINTR)
                        return err_make(e, errno, "poll");
        }
}

/* cloud-hypervisor's error bodies are text or a JSON array of strings
 * (the error chain): one line either way. */
static char *error_text(const struct vm_http_response *r)
{
        struct sbuf b = {0};
        yajl_val j = r->body_len ? yajl_tree_parse(r->body, NULL, 0) : NULL;
        if (j && YAJL_IS_ARRAY(j)) {
                for (size_t i = 0; i < j->u.array.len; i++) {
                        yajl_val s = j->u.array.values[i];
                        if (YAJL_IS_STRING(s))
                                sbuf_printf(&b, "%s%s", b.len ? ": " : "", s->u.string);
                }
        } else {
                for (size_t i = 0; i < r->body_len && i < 800; i++) {
                        char c = r->body[i];
                        sbuf_putc(&b, c == '\n' || c == '\r' || c == '\t' ? ' ' : c);
                }
        }
        if (j)
                yajl_tree_free(j);
        while (b.len && b.buf[b.len - 1] == ' ')
                b.buf[--b.len] = '\0';
        return b.buf ? sbuf_steal(&b) : xstrdup("");
}

static enum err_kind status_kind(int status)
{
        switch (status) {
        case 400:
                return ERR_INVALID;
        case 404:
                return ERR_NOT_FOUND;
        case 405:
        case 409:
                return ERR_PRECONDITION;
        default:
                return status >= 500 ? ERR_INTERNAL : ERR_UNKNOWN;
        }
}

int vm_chv_api(const char *sock, const char *method, const char *path, const char *json_body, int timeout_ms,
               struct vm_http_response *out, struct err *e)
{
        int64_t deadline = now_ms() + timeout_ms;
        const char *api = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
        cleanup_close int fd = -1;
        if (connect_unix(sock, &fd, e) < 0)
                return err_wrap(e, "cloud-hypervisor %s %s", method, api);
        struct sbuf req = {0};
        size_t blen = json_body ? strlen(json_body) : 0;
        sbuf_printf(&req, "%s %s HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\n", method, path);
        if (json_body)
                sbuf_puts(&req, "Content-Type: application/json\r\n");
        sbuf_printf(&req, "Content-Length: %zu\r\nConnection: close\r\n\r\n", blen);
        if (blen)
                sbuf_append(&req, json_body, blen);
        int w = fd_write_all(fd, req.buf, req.len);
        int wer = errno;
        sbuf_free(&req);
        if (w < 0)
                return err_make(e, wer, "cloud-hypervisor %s %s: send", method, api);
        struct sbuf in = {0};
        struct vm_http_response r = {0};
        int pr;
        bool eof = false;
        for (;;) {
                pr = vm_http_parse(in.buf ? in.buf : "", in.len, eof, &r, e);
                if (pr != 0 || eof)
                        break;
                if (wait_fd(fd, POLLIN, deadline, "cloud-hypervisor reply", e) < 0) {
                        pr = -1;
                        break;
                }
                char buf[8192];
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        pr = err_make(e, errno, "read");
                        break;
                }
                if (n == 0)
                        eof = true;
                else
                        sbuf_append(&in, buf, (size_t)n);
        }
        sbuf_free(&in);
        if (pr < 0)
                return err_wrap(e, "cloud-hypervisor %s %s", method, api);
        if (r.status / 100 != 2) {
                cleanup_free char *txt = error_text(&r);
                err_set(e, status_kind(r.status), "cloud-hypervisor %s %s: %d %s%s%s", method, api, r.status,
                        r.reason, *txt ? ": " : "", txt);
                vm_http_response_clear(&r);
                return -1;
        }
        if (out)
                *out = r;
        else
                vm_http_response_clear(&r);
        return 0;
}

/* ---------- vm.create ---------- */

static void kv_str(struct sbuf *b, const char *k, const char *v, bool *first)
{
        sbuf_printf(b, "%s\"%s\":", *first ? "" : ",", k);
        json_quote(b, v);
        *first = false;
}

static void console_obj(struct sbuf *b, const char *k, const char *file)
{
        sbuf_printf(b, ",\"%s\":{\"mode\":", k);
        if (file) {
                json_quote(b, "File");
                sbuf_puts(b, ",\"file\":");
                json_quote(b, file);
        } else {
                json_quote(b, "Off");
        }
        sbuf_putc(b, '}');
}

char *vm_chv_create_body(const struct vm_chv_create *c)
{
        struct sbuf b = {0};
        uint32_t cpus = c->cpus ? c->cpus : 1;
        sbuf_printf(&b, "{\"cpus\":{\"boot_vcpus\":%u,\"max_vcpus\":%u}", cpus, cpus);
        sbuf_printf(&b, ",\"memory\":{\"size\":%llu,\"shared\":%s}",
                    (unsigned long long)(c->memory_mib ? c->memory_mib : 256) << 20,
                    c->shared_memory ? "true" : "false");
        sbuf_puts(&b, ",\"payload\":{");
        bool first = true;
        kv_str(&b, "kernel", c->kernel, &first);
        if (c->initramfs)
                kv_str(&b, "initramfs", c->initramfs, &first);
        if (c->cmdline)
                kv_str(&b, "cmdline", c->cmdline, &first);
        sbuf_putc(&b, '}');
        console_obj(&b, "serial", c->serial_file);
        console_obj(&b, "console", c->console_file);
        if (c->n_fs) {
                sbuf_puts(&b, ",\"fs\":[");
                for (size_t i = 0; i < c->n_fs; i++) {
                        sbuf_puts(&b, i ? ",{" : "{");
                        first = true;
                        kv_str(&b, "tag", c->fs[i].tag, &first);
                        kv_str(&b, "socket", c->fs[i].socket, &first);
                        sbuf_puts(&b, ",\"num_queues\":1,\"queue_size\":1024}");
                }
                sbuf_putc(&b, ']');
        }
        if (c->n_net) {
                sbuf_puts(&b, ",\"net\":[");
                for (size_t i = 0; i < c->n_net; i++) {
                        sbuf_puts(&b, i ? ",{" : "{");
                        first = true;
                        kv_str(&b, "tap", c->net[i].tap, &first);
                        if (c->net[i].mac)
                                kv_str(&b, "mac", c->net[i].mac, &first);
                        sbuf_putc(&b, '}');
                }
                sbuf_putc(&b, ']');
        }
        if (c->vsock_cid) {
                sbuf_printf(&b, ",\"vsock\":{\"cid\":%u,\"socket\":", c->vsock_cid);
                json_quote(&b, c->vsock_socket);
                sbuf_putc(&b, '}');
        }
        sbuf_putc(&b, '}');
        return sbuf_steal(&b);
}

/* ---------- hybrid vsock ---------- */

int vm_hvsock_handshake(int fd, uint32_t port, int timeout_ms, struct err *e)
{
        int64_t deadline = now_ms() + timeout_ms;
        char req[32];
        int n = snprintf(req, sizeof(req), "CONNECT %u\n", port);
        if (fd_write_all(fd, req, (size_t)n) < 0)
                return err_make(e, errno, "hybrid vsock: send CONNECT");
        /* Byte by byte: what follows the newline is the agent's. */
        char line[64];
        size_t len = 0;
        for (;;) {
                if (wait_fd(fd, POLLIN, deadline, "hybrid vsock: waiting for OK", e) < 0)
                        return -1;
                char c;
                ssize_t r = read(fd, &c, 1);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return err_make(e, errno, "hybrid vsock: read");
                if (r == 0)
                        /* The VMM closes when nothing listens on the port in the guest (yet). */
                        return err_set(e, ERR_UNAVAILABLE,
                                       "hybrid vsock: closed before OK (no listener on "
                                       "guest port %u yet)",
                                       port);
                if (c == '\n')
                        break;
                if (len + 1 >= sizeof(line))
                        return err_set(e, ERR_DATA_LOSS, "hybrid vsock: answer line too long");
                line[len++] = c;
        }
        line[len] = '\0';
        /* "OK <host-side port>": the number is the VMM's, not ours. */
        uint64_t v;
        if (len < 4 || memcmp(line, "OK ", 3) != 0 || !parse_num(line + 3, line + len, 10, UINT32_MAX, &v)) {
                struct sbuf b = {0};
                json_quote_n(&b, line, len);
                err_set(e, ERR_DATA_LOSS, "hybrid vsock: unexpected answer %s to CONNECT %u", b.buf, port);
                sbuf_free(&b);
                return -1;
        }
        return 0;
}

int vm_hvsock_connect(const char *path, uint32_t port, int timeout_ms, int *fd_out, struct err *e)
{
        cleanup_close int fd = -1;
        if (connect_unix(path, &fd, e) < 0)
                return err_wrap(e, "hybrid vsock");
        if (vm_hvsock_handshake(fd, port, timeout_ms, e) < 0)
                return -1;
        *fd_out = steal_fd(&fd);
        return 0;
}
