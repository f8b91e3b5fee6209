/* End-to-end tests of the streaming server over SPDY/3.1 with our client
 * and the host-process test backend, plus codec unit checks. */
#include <pthread.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <zlib.h>

#include "stream/stream-internal.h"
#include "test_backend.h"

static int failures;
#define CHECK(cond, ...)                                                                                     \
        do {                                                                                                 \
                if (!(cond)) {                                                                               \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                      \
                        fprintf(stderr, __VA_ARGS__);                                                        \
                        fprintf(stderr, "\n");                                                               \
                        failures++;                                                                          \
                }                                                                                            \
        } while (0)

static struct test_backend tb;

/* Read everything from fd into a string. */
static char *slurp(int fd)
{
        struct sbuf b = {0};
        char buf[65536];
        for (;;) {
                ssize_t n = read(fd, buf, sizeof(buf));
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                sbuf_append(&b, buf, (size_t)n);
        }
        return sbuf_steal(&b);
}

struct feeder {
        int fd;
        const char *data;
        size_t len;
};

static void *feed_main(void *arg)
{
        struct feeder *f = arg;
        (void)fd_write_all(f->fd, f->data, f->len);
        close(f->fd);
        return NULL;
}

struct exec_out {
        char *out, *errs;
        struct stream_client_result res;
        int rc;
        struct err e;
};

static void *slurp_main(void *arg)
{
        int *fdp = arg;
        return slurp(*fdp);
}

/* Run one exec/attach URL through our client: stdin from `in` (NULL = no stdin). */
static void run_client(const char *url, const char *proto, bool tty, const char *in, size_t in_len, bool out,
                       bool errs, uint16_t w, uint16_t h, struct exec_out *r)
{
        memset(r, 0, sizeof(*r));
        struct stream_client *c = NULL;
        r->rc = stream_client_dial(url, proto, &c, &r->e);
        if (r->rc < 0)
                return;
        int inp[2] = {-1, -1}, outp[2] = {-1, -1}, errp[2] = {-1, -1};
        pthread_t ft, ot, et;
        struct feeder fd_in;
        if (in) {
                (void)!pipe2(inp, O_CLOEXEC);
                fd_in = (struct feeder){inp[1], in, in_len};
                pthread_create(&ft, NULL, feed_main, &fd_in);
        }
        if (out) {
                (void)!pipe2(outp, O_CLOEXEC);
                pthread_create(&ot, NULL, slurp_main, &outp[0]);
        }
        if (errs) {
                (void)!pipe2(errp, O_CLOEXEC);
                pthread_create(&et, NULL, slurp_main, &errp[0]);
        }
        struct stream_client_exec_opts o = {
                .tty = tty, .in_fd = inp[0], .out_fd = outp[1], .err_fd = errp[1], .width = w, .height = h};
        r->rc = stream_client_exec(c, &o, &r->res, &r->e);
        stream_client_free(c);
        if (in) {
                pthread_join(ft, NULL);
                close(inp[0]);
        }
        if (out) {
                close(outp[1]);
                void *s;
                pthread_join(ot, &s);
                r->out = s;
                close(outp[0]);
        }
        if (errs) {
                close(errp[1]);
                void *s;
                pthread_join(et, &s);
                r->errs = s;
                close(errp[0]);
        }
}

static void exec_out_free(struct exec_out *r)
{
        free(r->out);
        free(r->errs);
        stream_client_result_clear(&r->res);
        err_clear(&r->e);
}

static char *exec_url(struct stream_server *srv, char **cmd, bool tty, bool in, bool out, bool errs)
{
        struct stream_exec_req q = {.container_id = "c1",
                                    .cmd = cmd,
                                    .tty = tty,
                                    .use_stdin = in,
                                    .use_stdout = out,
                                    .use_stderr = errs};
        char *url = NULL;
        struct err e = ERR_INIT;
        if (stream_token_exec(srv, &q, &url, &e) < 0) {
                fprintf(stderr, "token: %s\n", e.msg);
                abort();
        }
        return url;
}

/* ---------- codec checks ---------- */

static void test_codecs(void)
{
        const uint8_t *d = spdy_dict();
        CHECK(adler32(1, d, SPDY_DICT_LEN) == 0xe3c6a7c2, "dictionary adler32 %lx",
              adler32(1, d, SPDY_DICT_LEN));
        CHECK(memcmp(d, "\0\0\0\7options\0\0\0\4head", 19) == 0, "dictionary head");

        /* Header blocks through two independent contexts, several in a row
         * (the zlib state carries over). */
        struct spdy_zlib a, b;
        struct err e = ERR_INIT;
        CHECK(spdy_zlib_init(&a, &e) == 0 && spdy_zlib_init(&b, &e) == 0, "zlib init");
        for (int i = 0; i < 5; i++) {
                const char *names[] = {"streamtype", "port", "requestid"};
                char rid[16];
                snprintf(rid, sizeof(rid), "%d", i);
                const char *vals[] = {"data", "8080", rid};
                struct sbuf raw = {0}, z = {0}, back = {0};
                spdy_headers_encode(names, vals, 3, &raw);
                CHECK(spdy_zlib_deflate(&a, raw.buf, raw.len, &z, &e) == 0, "deflate");
                CHECK(spdy_zlib_inflate(&b, z.buf, z.len, 65536, &back, &e) == 0, "inflate: %s", e.msg);
                CHECK(back.len == raw.len && memcmp(back.buf, raw.buf, raw.len) == 0, "roundtrip %d", i);
                struct spdy_headers h;
                CHECK(spdy_headers_decode((uint8_t *)back.buf, back.len, &h, &e) == 0, "decode");
                CHECK(h.n == 3 && strcmp(spdy_headers_get(&h, "RequestID"), rid) == 0, "lookup");
                spdy_headers_free(&h);
                sbuf_free(&raw);
                sbuf_free(&z);
                sbuf_free(&back);
        }
        spdy_zlib_free(&a);
        spdy_zlib_free(&b);

        /* Frames. */
        struct sbuf f = {0};
        spdy_put_data(&f, 5, SPDY_FLAG_FIN, "abc", 3);
        spdy_put_rst(&f, 7, SPDY_RST_CANCEL);
        spdy_put_ping(&f, 9);
        struct spdy_frame fr;
        long n = spdy_parse((uint8_t *)f.buf, f.len, SPDY_MAX_LEN, &fr, &e);
        CHECK(n == 11 && fr.type == SPDY_DATA && fr.stream_id == 5 && fr.flags == 1 && fr.payload_len == 3,
              "data");
        long m = spdy_parse((uint8_t *)f.buf + n, f.len - (size_t)n, SPDY_MAX_LEN, &fr, &e);
        CHECK(m == 16 && fr.type == SPDY_RST_STREAM && fr.stream_id == 7 && fr.value == 5, "rst");
        CHECK(spdy_parse((uint8_t *)f.buf + n + m, 5, SPDY_MAX_LEN, &fr, &e) == 0, "partial");
        uint8_t bad[] = {0x80, 2, 0, 1, 0, 0, 0, 0}; /* SPDY/2 */
        CHECK(spdy_parse(bad, sizeof(bad), SPDY_MAX_LEN, &fr, &e) < 0, "version 2 must fail");
        err_clear(&e);
        uint8_t badping[] = {0x80, 3, 0, 6, 0, 0, 0, 3, 1, 2, 3};
        CHECK(spdy_parse(badping, sizeof(badping), SPDY_MAX_LEN, &fr, &e) < 0, "short ping must fail");
        err_clear(&e);
        sbuf_free(&f);

        /* WebSocket frames: masked round trip, 16- and 64-bit lengths. */
        size_t sizes[] = {0, 125, 126, 65535, 65536, 200000};
        for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
                uint8_t *payload = xmalloc(sizes[i] + 1);
                for (size_t k = 0; k < sizes[i]; k++)
                        payload[k] = (uint8_t)(k * 7);
                struct sbuf w = {0};
                uint8_t key[4] = {1, 2, 3, 4};
                ws_put_frame(&w, WS_BINARY, true, payload, sizes[i], key);
                struct ws_frame wf;
                long r = ws_parse((uint8_t *)w.buf, w.len, 1 << 20, true, &wf, &e);
                CHECK(r == (long)w.len && wf.len == sizes[i] && wf.fin && wf.opcode == WS_BINARY &&
                              (sizes[i] == 0 || memcmp(wf.payload, payload, sizes[i]) == 0),
                      "ws size %zu", sizes[i]);
                CHECK(ws_parse((uint8_t *)w.buf, w.len - 1, 1 << 20, true, &wf, &e) == 0, "ws partial");
                sbuf_free(&w);
                free(payload);
        }
        uint8_t unmasked[] = {0x82, 0x01, 0x00};
        struct ws_frame wf;
        CHECK(ws_parse(unmasked, 3, 100, true, &wf, &e) < 0, "unmasked client frame must fail");
        err_clear(&e);
        uint8_t bigping[] = {0x89, 0xfe, 0x00, 0x80};
        CHECK(ws_parse(bigping, 4, 1000, false, &wf, &e) < 0, "126-byte ping must fail");
        err_clear(&e);
        uint8_t rsv[] = {0xc2, 0x80, 0, 0, 0, 0};
        CHECK(ws_parse(rsv, sizeof(rsv), 1000, true, &wf, &e) < 0, "rsv1 must fail");
        err_clear(&e);
        char *acc = ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
        CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "RFC 6455 accept example: %s", acc);
        free(acc);
        size_t dn = 0;
        char *dec = base64_decode_n("aGVsbG8=!", 8, &dn); /* bounded: the '!' is not read */
        CHECK(dec && dn == 5 && memcmp(dec, "hello", 5) == 0, "b64");
        free(dec);

        /* Status payloads, byte for byte kubelet's. */
        char *cmd[] = {"sh", "-c", "exit 3", NULL};
        char *s = exec_status_payload(KIND_EXEC, cmd, 0, 3, NULL, true);
        CHECK(strcmp(s, "{\"metadata\":{},\"status\":\"Failure\",\"message\":\"command terminated with "
                        "non-zero exit "
                        "code: error executing command [sh -c exit 3], exit code "
                        "3\",\"reason\":\"NonZeroExitCode\","
                        "\"details\":{\"causes\":[{\"reason\":\"ExitCode\",\"message\":\"3\"}]}}") == 0,
              "status %s", s);
        free(s);
        s = exec_status_payload(KIND_EXEC, cmd, 0, 0, NULL, true);
        CHECK(strcmp(s, "{\"metadata\":{},\"status\":\"Success\"}") == 0, "success %s", s);
        free(s);
        CHECK(exec_status_payload(KIND_EXEC, cmd, 0, 0, NULL, false) == NULL, "v1-v3 success is silent");
}

/* ---------- end to end ---------- */

static void test_exec_exit_code(struct stream_server *srv)
{
        char *cmd[] = {"sh", "-c", "echo out; echo err >&2; exit 3", NULL};
        cleanup_free char *url = exec_url(srv, cmd, false, false, true, true);
        struct exec_out r;
        run_client(url, NULL, false, NULL, 0, true, true, 0, 0, &r);
        CHECK(r.rc == 0, "exec: %s", r.e.msg);
        CHECK(r.out && strcmp(r.out, "out\n") == 0, "stdout [%s]", r.out);
        CHECK(r.errs && strcmp(r.errs, "err\n") == 0, "stderr [%s]", r.errs);
        CHECK(r.res.exit_code == 3, "exit code %d", r.res.exit_code);
        CHECK(r.res.status && strstr(r.res.status, "\"reason\":\"NonZeroExitCode\"") &&
                      strstr(r.res.status, "{\"reason\":\"ExitCode\",\"message\":\"3\"}"),
              "status %s", r.res.status);
        exec_out_free(&r);

        /* reuse of the same token: 404 */
        struct stream_client *c = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_client_dial(url, NULL, &c, &e) < 0 && e.kind == ERR_NOT_FOUND &&
                      strstr(e.msg, "HTTP 404"),
              "reused token: %s", e.msg);
        err_clear(&e);

        /* v2 clients get the message text, nothing on success */
        cleanup_free char *url2 = exec_url(srv, cmd, false, false, true, true);
        run_client(url2, PROTO_V2, false, NULL, 0, true, true, 0, 0, &r);
        CHECK(r.rc == 0 && r.res.exit_code == -1 && r.res.message &&
                      strstr(r.res.message, "command terminated with non-zero exit code"),
              "v2 message %s", r.res.message);
        exec_out_free(&r);

        char *ok[] = {"true", NULL};
        cleanup_free char *url3 = exec_url(srv, ok, false, false, true, true);
        run_client(url3, NULL, false, NULL, 0, true, true, 0, 0, &r);
        CHECK(r.rc == 0 && r.res.exit_code == 0 && r.res.status &&
                      strcmp(r.res.status, "{\"metadata\":{},\"status\":\"Success\"}") == 0,
              "true: %s", r.res.status);
        exec_out_free(&r);

        /* a command that cannot run: InternalError status */
        char *nope[] = {"/nonexistent/binary", NULL};
        cleanup_free char *url4 = exec_url(srv, nope, false, false, true, true);
        run_client(url4, NULL, false, NULL, 0, true, true, 0, 0, &r);
        CHECK(r.rc == 0 && r.res.exit_code == -1 && r.res.status && strstr(r.res.status, "\"code\":500") &&
                      strstr(r.res.status, "InternalError"),
              "internal error: %s", r.res.status);
        exec_out_free(&r);
}

static void test_cat(struct stream_server *srv)
{
        char *cmd[] = {"cat", NULL};
        cleanup_free char *url = exec_url(srv, cmd, false, true, true, false);
        struct exec_out r;
        run_client(url, NULL, false, "hello over spdy\n", 16, true, false, 0, 0, &r);
        CHECK(r.rc == 0 && r.out && strcmp(r.out, "hello over spdy\n") == 0, "cat: [%s] %s", r.out, r.e.msg);
        CHECK(r.res.exit_code == 0, "cat exit %d", r.res.exit_code);
        exec_out_free(&r);

        /* 4 MiB through cat and back */
        size_t big = 4 << 20;
        char *data = xmalloc(big);
        for (size_t i = 0; i < big; i++)
                data[i] = (char)('a' + i % 26);
        cleanup_free char *url2 = exec_url(srv, cmd, false, true, true, false);
        run_client(url2, NULL, false, data, big, true, false, 0, 0, &r);
        CHECK(r.rc == 0 && r.out && strlen(r.out) == big && memcmp(r.out, data, big) == 0,
              "4 MiB cat: %zu bytes", r.out ? strlen(r.out) : 0);
        exec_out_free(&r);
        free(data);
}

static void test_tty(struct stream_server *srv)
{
        char *cmd[] = {"sh", "-c", "read x; stty size", NULL};
        cleanup_free char *url = exec_url(srv, cmd, true, true, true, false);
        struct exec_out r;
        run_client(url, NULL, true, "go\n", 3, true, false, 120, 40, &r);
        CHECK(r.rc == 0 && r.out && strstr(r.out, "40 120"), "stty size: [%s] %s", r.out, r.e.msg);
        CHECK(r.res.exit_code == 0, "tty exit %d", r.res.exit_code);
        exec_out_free(&r);
}

static void test_attach(struct stream_server *srv)
{
        struct stream_attach_req q = {
                .container_id = "c1", .use_stdin = true, .use_stdout = true, .use_stderr = true};
        cleanup_free char *url = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_token_attach(srv, &q, &url, &e) == 0, "attach token");
        struct exec_out r;
        run_client(url, NULL, false, "typed\n", 6, true, true, 0, 0, &r);
        CHECK(r.rc == 0 && r.out && strcmp(r.out, "attached\ntyped\n") == 0, "attach: [%s]", r.out);
        CHECK(r.res.exit_code == 0, "attach status %s", r.res.status);
        exec_out_free(&r);

        q.container_id = "missing";
        cleanup_free char *url2 = NULL;
        CHECK(stream_token_attach(srv, &q, &url2, &e) == 0, "attach token");
        run_client(url2, NULL, false, "x", 1, true, true, 0, 0, &r);
        CHECK(r.rc == 0 && r.res.message && strstr(r.res.message, "error attaching to container") &&
                      strstr(r.res.message, "not found"),
              "attach missing: %s", r.res.message);
        exec_out_free(&r);
}

static void test_portforward(struct stream_server *srv)
{
        struct echo_server es;
        CHECK(echo_server_start(&es) == 0, "echo server");
        cleanup_free char *url = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_token_portforward(srv, "pod1", &url, &e) == 0, "pf token");
        struct stream_client *c = NULL;
        CHECK(stream_client_dial(url, NULL, &c, &e) == 0, "pf dial: %s", e.msg);
        if (!c)
                return;
        CHECK(strcmp(stream_client_protocol(c), "portforward.k8s.io") == 0, "pf proto");
        /* two connections at once, each: send, half-close, read the echo to EOF */
        int sv[2][2];
        const char *msg[2] = {"first connection", "second connection, a bit longer"};
        for (int i = 0; i < 2; i++) {
                CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv[i]) == 0, "socketpair");
                CHECK(stream_client_forward(c, es.port, sv[i][1], &e) == 0, "forward: %s", e.msg);
        }
        for (int i = 0; i < 2; i++) {
                (void)fd_write_all(sv[i][0], msg[i], strlen(msg[i]));
                shutdown(sv[i][0], SHUT_WR);
        }
        for (int i = 1; i >= 0; i--) {
                cleanup_free char *got = slurp(sv[i][0]);
                CHECK(strcmp(got, msg[i]) == 0, "echo %d: [%s]", i, got);
                close(sv[i][0]);
        }
        cleanup_free char *errors = NULL;
        CHECK(stream_client_forward_wait(c, &errors) == 0, "pf errors: %s", errors);

        /* a port nobody listens on: the error stream says so */
        int dead[2];
        (void)socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, dead);
        CHECK(stream_client_forward(c, 1, dead[1], &e) == 0, "forward: %s", e.msg);
        cleanup_free char *got = slurp(dead[0]); /* drain: a refused port sends no data */
        CHECK(got == NULL || got[0] == '\0', "data from a refused port: %s", got);
        close(dead[0]);
        cleanup_free char *errors2 = NULL;
        CHECK(stream_client_forward_wait(c, &errors2) == 1 && errors2 &&
                      strstr(errors2, "error forwarding port 1 to pod pod1"),
              "pf error: %s", errors2);
        stream_client_free(c);
        echo_server_stop(&es);
}

struct bulk {
        int fd;
        size_t n;
};

static void *bulk_writer(void *arg)
{
        struct bulk *b = arg;
        char buf[65536];
        for (size_t off = 0; off < b->n; off += sizeof(buf)) {
                for (size_t i = 0; i < sizeof(buf); i++)
                        buf[i] = (char)((off + i) * 31 % 251);
                size_t len = b->n - off < sizeof(buf) ? b->n - off : sizeof(buf);
                if (fd_write_all(b->fd, buf, len) < 0)
                        break;
        }
        shutdown(b->fd, SHUT_WR);
        return NULL;
}

/* 12 MiB sent at once to a pod whose connection takes 500 ms: more than the
 * 4 MiB the session buffers, so the reader must wait, and lose nothing. */
static void test_portforward_slow_connect(struct stream_server *srv)
{
        struct echo_server es;
        CHECK(echo_server_start(&es) == 0, "echo server");
        cleanup_free char *url = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_token_portforward(srv, "slow", &url, &e) == 0, "pf token");
        struct stream_client *c = NULL;
        CHECK(stream_client_dial(url, NULL, &c, &e) == 0, "pf dial: %s", e.msg);
        if (!c)
                return;
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0, "socketpair");
        CHECK(stream_client_forward(c, es.port, sv[1], &e) == 0, "forward: %s", e.msg);
        struct bulk b = {sv[0], 12u << 20};
        pthread_t t;
        pthread_create(&t, NULL, bulk_writer, &b);
        struct sbuf got = {0};
        char buf[65536];
        for (;;) {
                ssize_t n = read(sv[0], buf, sizeof(buf));
                if (n <= 0)
                        break;
                sbuf_append(&got, buf, (size_t)n);
        }
        pthread_join(t, NULL);
        CHECK(got.len == b.n, "slow pod: %zu of %zu bytes came back", got.len, b.n);
        bool same = got.len == b.n;
        for (size_t i = 0; same && i < got.len; i++)
                same = got.buf[i] == (char)(i * 31 % 251);
        CHECK(same, "slow pod: the bytes that came back differ");
        sbuf_free(&got);
        close(sv[0]);
        cleanup_free char *errors = NULL;
        CHECK(stream_client_forward_wait(c, &errors) == 0, "pf errors: %s", errors);
        stream_client_free(c);
        echo_server_stop(&es);
}

/* Raw HTTP upgrade on a plain socket; returns the fd after the 101. */
static int raw_upgrade(const char *url, const char *extra_headers, char *status, size_t status_len)
{
        unsigned port;
        char path[256];
        CHECK(sscanf(url, "http://127.0.0.1:%u%255s", &port, path) == 2, "url %s", url);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
                return -1;
        cleanup_free char *req = xasprintf("GET %s HTTP/1.1\r\nHost: x\r\n%s\r\n", path, extra_headers);
        (void)fd_write_all(fd, req, strlen(req));
        /* read the head byte by byte so nothing after it is swallowed */
        size_t n = 0;
        char head[4096];
        while (n < sizeof(head) - 1) {
                if (read(fd, head + n, 1) != 1)
                        break;
                n++;
                if (n >= 4 && memcmp(head + n - 4, "\r\n\r\n", 4) == 0)
                        break;
        }
        head[n] = 0;
        snprintf(status, status_len, "%s", head);
        return fd;
}

/* Wait until the server closes fd; true when it did within ms. */
static bool closed_within(int fd, int ms)
{
        char buf[4096];
        int64_t end = time_mono_ns() + (int64_t)ms * 1000000;
        for (;;) {
                int left = (int)((end - time_mono_ns()) / 1000000);
                if (left <= 0)
                        return false;
                struct pollfd p = {.fd = fd, .events = POLLIN};
                if (poll(&p, 1, left) <= 0)
                        return false;
                ssize_t r = read(fd, buf, sizeof(buf));
                if (r <= 0)
                        return true;
        }
}

static void test_errors(struct stream_server *srv)
{
        char *cmd[] = {"true", NULL};
        char head[4096];

        /* malformed SPDY frame: that connection is closed, others go on */
        cleanup_free char *url = exec_url(srv, cmd, false, false, true, false);
        int fd = raw_upgrade(url,
                             "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: "
                             "v4.channel.k8s.io\r\n",
                             head, sizeof(head));
        CHECK(strstr(head, "HTTP/1.1 101") && strstr(head, "X-Stream-Protocol-Version: v4.channel.k8s.io"),
              "101: %s", head);
        uint8_t garbage[] = {
                0x80, 0x03, 0x00, 0x01, 0x00, 0x00, 0x00, 0x0e, 0,    0,   0, 1,
                0,    0,    0,    0,    0,    0,    0xde, 0xad, 0xbe, 0xef}; /* SYN_STREAM, header block not
                                                                                zlib */
        (void)fd_write_all(fd, garbage, sizeof(garbage));
        CHECK(closed_within(fd, 3000), "server must close after a malformed frame");
        close(fd);

        cleanup_free char *url2 = exec_url(srv, cmd, false, false, true, false);
        fd = raw_upgrade(url2, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\n", head, sizeof(head));
        uint8_t v2frame[] = {0x80, 0x02, 0x00, 0x06, 0x00, 0x00, 0x00, 0x04, 0, 0, 0, 1}; /* SPDY/2 PING */
        (void)fd_write_all(fd, v2frame, sizeof(v2frame));
        CHECK(closed_within(fd, 3000), "server must close after a wrong-version frame");
        close(fd);

        /* still serving */
        cleanup_free char *url3 = exec_url(srv, cmd, false, false, true, false);
        struct exec_out r;
        run_client(url3, NULL, false, NULL, 0, true, false, 0, 0, &r);
        CHECK(r.rc == 0 && r.res.exit_code == 0, "exec after malformed frames: %s", r.e.msg);
        exec_out_free(&r);

        /* no upgrade headers: 400 with a reason */
        cleanup_free char *url4 = exec_url(srv, cmd, false, false, true, false);
        fd = raw_upgrade(url4, "", head, sizeof(head));
        CHECK(strstr(head, "HTTP/1.1 400"), "no upgrade: %s", head);
        close(fd);

        /* protocol negotiation failure: 403 + accepted versions */
        cleanup_free char *url5 = exec_url(srv, cmd, false, false, true, false);
        fd = raw_upgrade(
                url5, "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: v9.bogus\r\n",
                head, sizeof(head));
        CHECK(strstr(head, "HTTP/1.1 403") && strstr(head, "X-Accepted-Stream-Protocol-Versions"), "403: %s",
              head);
        close(fd);

        /* unknown token */
        cleanup_free char *bogus = xasprintf("%s/exec/not-a-token", stream_server_url(srv));
        struct stream_client *c = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_client_dial(bogus, NULL, &c, &e) < 0 && e.kind == ERR_NOT_FOUND, "unknown token: %s",
              e.msg);
        err_clear(&e);

        /* exec token used at /attach/: 404 */
        cleanup_free char *url6 = exec_url(srv, cmd, false, false, true, false);
        char *p = strstr(url6, "/exec/");
        cleanup_free char *wrong = xasprintf("%.*s/attach/%s", (int)(p - url6), url6, p + 6);
        CHECK(stream_client_dial(wrong, NULL, &c, &e) < 0 && e.kind == ERR_NOT_FOUND, "wrong kind: %s",
              e.msg);
        err_clear(&e);

        /* bad requests are refused when the token is made */
        struct stream_exec_req q = {.container_id = "c1", .cmd = cmd, .tty = true, .use_stderr = true};
        cleanup_free char *u = NULL;
        CHECK(stream_token_exec(srv, &q, &u, &e) < 0 && e.kind == ERR_INVALID, "tty+stderr");
        err_clear(&e);
}

static void test_expired(void)
{
        struct stream_config cfg = {.token_ttl_sec = 1};
        struct stream_server *srv = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_server_new(&cfg, &test_backend_ops, &tb, &srv, &e) == 0, "server: %s", e.msg);
        char *cmd[] = {"true", NULL};
        cleanup_free char *url = exec_url(srv, cmd, false, false, true, false);
        usleep(1300 * 1000);
        struct stream_client *c = NULL;
        CHECK(stream_client_dial(url, NULL, &c, &e) < 0 && e.kind == ERR_NOT_FOUND &&
                      strstr(e.msg, "expired"),
              "expired token: %s", e.msg);
        err_clear(&e);
        stream_server_free(srv);
}

/* Freeing the server ends live sessions (the backend is cancelled). */
struct bg_exec {
        const char *url;
        struct exec_out r;
};

static void *bg_exec_main(void *arg)
{
        struct bg_exec *b = arg;
        run_client(b->url, NULL, false, NULL, 0, true, false, 0, 0, &b->r);
        return NULL;
}

static void test_shutdown(void)
{
        struct stream_server *srv = NULL;
        struct err e = ERR_INIT;
        CHECK(stream_server_new(NULL, &test_backend_ops, &tb, &srv, &e) == 0, "server: %s", e.msg);
        char *cmd[] = {"sleep", "100", NULL};
        cleanup_free char *url = exec_url(srv, cmd, false, false, true, false);
        int execs = __atomic_load_n(&tb.execs, __ATOMIC_SEQ_CST);
        struct bg_exec b = {.url = url};
        pthread_t t;
        pthread_create(&t, NULL, bg_exec_main, &b);
        for (int i = 0; i < 500 && __atomic_load_n(&tb.execs, __ATOMIC_SEQ_CST) == execs; i++)
                usleep(10000);
        CHECK(stream_server_sessions(srv) == 1, "one live session, have %u", stream_server_sessions(srv));
        int64_t t0 = time_mono_ns();
        stream_server_free(srv);
        int64_t ms = (time_mono_ns() - t0) / 1000000;
        CHECK(ms < 5000, "server free took %lld ms", (long long)ms);
        pthread_join(t, NULL);
        CHECK(b.r.rc == 0 && b.r.res.exit_code == 137 && b.r.res.message && strstr(b.r.res.message, "137"),
              "killed exec: rc=%d code=%d msg=%s", b.r.rc, b.r.res.exit_code, b.r.res.message);
        exec_out_free(&b.r);
}

int main(void)
{
        signal(SIGPIPE, SIG_IGN);
        test_codecs();
        struct stream_server *srv = NULL;
        struct err e = ERR_INIT;
        if (stream_server_new(NULL, &test_backend_ops, &tb, &srv, &e) < 0) {
                fprintf(stderr, "server: %s\n", e.msg);
                return 1;
        }
        CHECK(str_has_prefix(stream_server_url(srv), "http://127.0.0.1:"), "url %s", stream_server_url(srv));
        test_exec_exit_code(srv);
        test_cat(srv);
        test_tty(srv);
        test_attach(srv);
        test_portforward(srv);
        test_portforward_slow_connect(srv);
        test_errors(srv);
        stream_server_free(srv);
        test_expired();
        test_shutdown();
        if (failures) {
                fprintf(stderr, "%d failure(s)\n", failures);
                return 1;
        }
        printf("ok\n");
        return 0;
}
