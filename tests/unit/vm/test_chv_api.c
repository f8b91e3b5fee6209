/* The parts of the cloud-hypervisor driver that need no KVM: the vm.create
 * body (parsed back, fields asserted), the HTTP/1.1 reply parser (status
 * line, headers, Content-Length, chunked, 204, cut and malformed replies),
 * a whole request against a fake API server on a unix socket (error body
 * into the message), and the hybrid-vsock handshake against real socket
 * peers (one answers "OK 1024\n", one garbage, one hangs up). */
#include <pthread.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <yajl/yajl_tree.h>

#include "vm/chv-internal.h"
#include "vmtest.h"

static void test_body(void)
{
        struct vm_chv_fs fs[] = {{"pod", "/run/x/fs0.sock"}};
        struct vm_chv_net net[] = {{"tap0", "52:54:00:01:02:03"}};
        struct vm_chv_create c = {.cpus = 2,
                                  .memory_mib = 512,
                                  .shared_memory = true,
                                  .kernel = "/k/vmlinux",
                                  .initramfs = "/k/initramfs.img",
                                  .cmdline = "console=ttyS0 quiet \"q\"",
                                  .serial_file = "/s/console.log",
                                  .fs = fs,
                                  .n_fs = 1,
                                  .net = net,
                                  .n_net = 1,
                                  .vsock_cid = 3,
                                  .vsock_socket = "/s/vsock.sock"};
        char *body = vm_chv_create_body(&c);
        struct err e = ERR_INIT;
        yajl_val j = json_parse(body, strlen(body), "vm.create", &e);
        CHECK(j != NULL);
        int64_t n = 0;
        bool b = false;
        CHECK(json_get_int(json_get(j, "cpus"), "boot_vcpus", &n) && n == 2);
        CHECK(json_get_int(json_get(j, "cpus"), "max_vcpus", &n) && n == 2);
        CHECK(json_get_int(json_get(j, "memory"), "size", &n) && n == 512ll << 20);
        CHECK(json_get_bool(json_get(j, "memory"), "shared", &b) && b);
        yajl_val p = json_get(j, "payload");
        CHECK_STR(json_get_str(p, "kernel"), "/k/vmlinux");
        CHECK_STR(json_get_str(p, "initramfs"), "/k/initramfs.img");
        CHECK_STR(json_get_str(p, "cmdline"), "console=ttyS0 quiet \"q\"");
        CHECK_STR(json_get_str(json_get(j, "serial"), "mode"), "File");
        CHECK_STR(json_get_str(json_get(j, "serial"), "file"), "/s/console.log");
        CHECK_STR(json_get_str(json_get(j, "console"), "mode"), "Off");
        yajl_val f = json_get(j, "fs");
        CHECK(f && YAJL_IS_ARRAY(f) && f->u.array.len == 1);
        if (f && YAJL_IS_ARRAY(f) && f->u.array.len == 1) {
                yajl_val f0 = f->u.array.values[0];
                CHECK_STR(json_get_str(f0, "tag"), "pod");
                CHECK_STR(json_get_str(f0, "socket"), "/run/x/fs0.sock");
                CHECK(json_get_int(f0, "num_queues", &n) && n == 1);
                CHECK(json_get_int(f0, "queue_size", &n) && n == 1024);
        }
        yajl_val nt = json_get(j, "net");
        CHECK(nt && YAJL_IS_ARRAY(nt) && nt->u.array.len == 1);
        if (nt && YAJL_IS_ARRAY(nt) && nt->u.array.len == 1) {
                CHECK_STR(json_get_str(nt->u.array.values[0], "tap"), "tap0");
                CHECK_STR(json_get_str(nt->u.array.values[0], "mac"), "52:54:00:01:02:03");
        }
        CHECK(json_get_int(json_get(j, "vsock"), "cid", &n) && n == 3);
        CHECK_STR(json_get_str(json_get(j, "vsock"), "socket"), "/s/vsock.sock");
        yajl_tree_free(j);
        free(body);
        /* no shares, nets, vsock: those keys are absent, memory not shared */
        struct vm_chv_create m = {.kernel = "/k", .serial_file = NULL};
        body = vm_chv_create_body(&m);
        j = json_parse(body, strlen(body), "vm.create", &e);
        CHECK(j && !json_get(j, "fs") && !json_get(j, "net") && !json_get(j, "vsock"));
        CHECK(json_get_bool(json_get(j, "memory"), "shared", &b) && !b);
        CHECK(json_get_int(json_get(j, "memory"), "size", &n) && n == 256ll << 20);
        CHECK_STR(json_get_str(json_get(j, "serial"), "mode"), "Off");
        if (j)
                yajl_tree_free(j);
        free(body);
        err_clear(&e);
}

/* parse `s` whole (eof) and expect status/body, or an error containing `err` */
static void parse_ok(const char *s, int status, const char *body)
{
        struct vm_http_response r;
        struct err e = ERR_INIT;
        int rc = vm_http_parse(s, strlen(s), true, &r, &e);
        CHECK(rc == 1);
        if (rc != 1) {
                fprintf(stderr, "  parsing %s: %s\n", s, e.msg);
                err_clear(&e);
                return;
        }
        CHECK(r.status == status);
        CHECK_STR(r.body, body);
        CHECK(r.body_len == strlen(body));
        vm_http_response_clear(&r);
}

static void parse_bad(const char *s, size_t len, bool eof, const char *frag)
{
        struct vm_http_response r;
        struct err e = ERR_INIT;
        int rc = vm_http_parse(s, len, eof, &r, &e);
        CHECK(rc == -1 && err_is(&e, ERR_DATA_LOSS) && e.msg && strstr(e.msg, frag));
        if (!(rc == -1 && e.msg && strstr(e.msg, frag)))
                fprintf(stderr, "  want error with '%s', got rc=%d %s\n", frag, rc, e.msg ? e.msg : "");
        if (rc == 1)
                vm_http_response_clear(&r);
        err_clear(&e);
}

static void test_parser(void)
{
        parse_ok("HTTP/1.1 204 No Content\r\nServer: Cloud Hypervisor API\r\n\r\n", 204, "");
        parse_ok("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 17\r\n\r\n"
                 "{\"state\":\"Running\"}",
                 200, "{\"state\":\"Running");
        parse_ok("HTTP/1.1 200 OK\r\ncontent-length:  2 \r\n\r\nok", 200, "ok");
        parse_ok("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n5;ext=1\r\npedia\r\n"
                 "0\r\nX-Trailer: 1\r\n\r\n",
                 200, "Wikipedia");
        parse_ok("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 5\r\n\r\nboom!", 500, "boom!");
        parse_ok("HTTP/1.0 200 OK\r\n\r\nuntil close", 200, "until close");
        /* status line without a reason phrase */
        parse_ok("HTTP/1.1 204\r\n\r\n", 204, "");

        /* incomplete but fine so far: more bytes needed */
        const char *part = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345";
        struct vm_http_response r;
        struct err e = ERR_INIT;
        CHECK(vm_http_parse(part, strlen(part), false, &r, &e) == 0);
        CHECK(vm_http_parse("HTTP/1.1 2", 10, false, &r, &e) == 0);
        const char *chunk_part = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWi";
        CHECK(vm_http_parse(chunk_part, strlen(chunk_part), false, &r, &e) == 0);
        /* the same, cut by the peer */
        parse_bad(part, strlen(part), true, "body cut at 5 of 10 bytes");
        parse_bad(chunk_part, strlen(chunk_part), true, "closed inside the chunked body");
        parse_bad("HTTP/1.1 200 OK\r\nContent-Le", 27, true, "closed inside the headers");
        parse_bad("", 0, true, "closed without a reply");
        /* malformed */
        parse_bad("SSH-2.0-OpenSSH\r\n", 17, false, "no HTTP status line");
        parse_bad("HTTP/1.1 2x0 OK\r\n\r\n", 19, true, "bad status line");
        parse_bad("HTTP/2.0 200 OK\r\n\r\n", 19, true, "bad status line");
        parse_bad("HTTP/1.1 999 OK\r\n\r\n", 19, true, "out of range");
        parse_bad("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 40, true, "bad Content-Length");
        parse_bad("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 57, true,
                  "conflicting Content-Length");
        parse_bad("HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\n\r\n", 49, true, "larger than 16 MiB");
        parse_bad("HTTP/1.1 200 OK\r\nNoColon\r\n\r\n", 28, true, "header without a name");
        parse_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 44, true,
                  "unsupported Transfer-Encoding");
        parse_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 66, true,
                  "both Content-Length and chunked");
        parse_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 51, true, "bad chunk size");
        parse_bad("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n", 60, true,
                  "not followed by CRLF");
        parse_bad("HTTP/1.1 204 No Content\r\nContent-Length: 4\r\n\r\nbody", 50, true, "cannot have one");
        /* headers that never end */
        char *big = xmalloc(VM_HTTP_MAX_HEADERS + 100);
        memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
        memset(big + 20, 'a', VM_HTTP_MAX_HEADERS + 80);
        parse_bad(big, VM_HTTP_MAX_HEADERS + 100, false, "headers larger than 16 KiB");
        free(big);
        /* consumed stops at the end of this reply */
        const char *two = "HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n";
        CHECK(vm_http_parse(two, strlen(two), false, &r, &e) == 1 && r.consumed == strlen(two) / 2);
        vm_http_response_clear(&r);
        err_clear(&e);
}

/* ---------- fake peers on unix sockets ---------- */

static char dir[] = "/tmp/cva-XXXXXX";

struct peer {
        int lfd;
        const char *reply; /* written after reading the request; NULL: hang up */
        char request[4096];
};

static void *serve_one(void *arg)
{
        struct peer *p = arg;
        int fd = accept(p->lfd, NULL, NULL);
        if (fd < 0)
                return NULL;
        size_t len = 0;
        /* The request: up to the blank line, then Content-Length bytes (or a CONNECT line). */
        for (;;) {
                ssize_t n = read(fd, p->request + len, sizeof(p->request) - 1 - len);
                if (n <= 0)
                        break;
                len += (size_t)n;
                p->request[len] = '\0';
                char *h = strstr(p->request, "\r\n\r\n");
                char *cl = strstr(p->request, "Content-Length: ");
                if (h && cl && strlen(h + 4) >= strtoul(cl + 16, NULL, 10))
                        break;
                if (strncmp(p->request, "CONNECT ", 8) == 0 && strchr(p->request, '\n'))
                        break;
        }
        if (p->reply)
                (void)!write(fd, p->reply, strlen(p->reply));
        close(fd);
        return NULL;
}

static int listen_at(const char *path)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4) < 0)
                abort();
        return fd;
}

static void test_client(void)
{
        char *sock = path_join(dir, "api.sock");
        struct peer p = {.lfd = listen_at(sock),
                         .reply = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                  "13\r\n{\"state\":\"Running\"}\r\n0\r\n\r\n"};
        pthread_t t;
        pthread_create(&t, NULL, serve_one, &p);
        struct vm_http_response r = {0};
        CHECK_OK(vm_chv_api(sock, "GET", "/api/v1/vm.info", NULL, 5000, &r, e));
        pthread_join(t, NULL);
        CHECK(r.status == 200);
        CHECK_STR(r.body, "{\"state\":\"Running\"}");
        vm_http_response_clear(&r);
        CHECK(strncmp(p.request, "GET /api/v1/vm.info HTTP/1.1\r\n", 30) == 0);

        /* a PUT with a body; the error's text (a JSON array) lands in the message */
        p.reply = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 47\r\n\r\n"
                  "[\"Error booting VM\",\"The VM is not created\"]\r\n\r\n";
        pthread_create(&t, NULL, serve_one, &p);
        struct err e = ERR_INIT;
        CHECK(vm_chv_api(sock, "PUT", "/api/v1/vm.boot", "{\"x\":1}", 5000, NULL, &e) < 0);
        pthread_join(t, NULL);
        CHECK(err_is(&e, ERR_INTERNAL));
        CHECK(e.msg && strstr(e.msg, "PUT vm.boot: 500 Internal Server Error"));
        fprintf(stderr, "api error: %s\n", e.msg ? e.msg : "");
        err_clear(&e);
        CHECK(strstr(p.request, "Content-Length: 7\r\n") && strstr(p.request, "\r\n\r\n{\"x\":1}"));

        /* 404 with a text body */
        p.reply = "HTTP/1.1 404 Not Found\r\nContent-Length: 12\r\n\r\nno such path";
        pthread_create(&t, NULL, serve_one, &p);
        CHECK(vm_chv_api(sock, "PUT", "/api/v1/vm.nope", NULL, 5000, NULL, &e) < 0);
        pthread_join(t, NULL);
        CHECK(err_is(&e, ERR_NOT_FOUND) && e.msg && strstr(e.msg, "404 Not Found: no such path"));
        err_clear(&e);

        /* hang-up without a reply */
        p.reply = NULL;
        pthread_create(&t, NULL, serve_one, &p);
        CHECK(vm_chv_api(sock, "PUT", "/api/v1/vm.shutdown", NULL, 5000, NULL, &e) < 0);
        pthread_join(t, NULL);
        CHECK(err_is(&e, ERR_DATA_LOSS) && e.msg && strstr(e.msg, "closed without a reply"));
        err_clear(&e);
        close(p.lfd);

        /* nobody listening: UNAVAILABLE (the driver retries on it) */
        unlink(sock);
        CHECK(vm_chv_api(sock, "GET", "/api/v1/vmm.ping", NULL, 1000, NULL, &e) < 0 &&
              err_is(&e, ERR_UNAVAILABLE));
        err_clear(&e);
        free(sock);
}

static void test_hvsock(void)
{
        char *sock = path_join(dir, "vsock.sock");
        struct peer p = {.lfd = listen_at(sock), .reply = "OK 1024\n"};
        pthread_t t;
        pthread_create(&t, NULL, serve_one, &p);
        int fd = -1;
        CHECK_OK(vm_hvsock_connect(sock, VM_AGENT_VSOCK_PORT, 5000, &fd, e));
        pthread_join(t, NULL);
        CHECK_STR(p.request, "CONNECT 1024\n");
        CHECK(fd >= 0);
        if (fd >= 0)
                close(fd);

        /* the stream after OK is left unread for the agent protocol */
        int sp[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
        (void)!write(sp[1], "OK 40000\nAGENT", 14);
        CHECK_OK(vm_hvsock_handshake(sp[0], 1024, 2000, e));
        char buf[8] = "";
        CHECK(read(sp[0], buf, 5) == 5 && memcmp(buf, "AGENT", 5) == 0);
        close(sp[0]);
        close(sp[1]);

        struct err e = ERR_INIT;
        p.reply = "HTTP/1.1 400 Bad Request\r\n\r\n";
        pthread_create(&t, NULL, serve_one, &p);
        CHECK(vm_hvsock_connect(sock, 1024, 5000, &fd, &e) < 0);
        pthread_join(t, NULL);
        CHECK(err_is(&e, ERR_DATA_LOSS) && e.msg && strstr(e.msg, "unexpected answer"));
        fprintf(stderr, "garbage: %s\n", e.msg ? e.msg : "");
        err_clear(&e);

        p.reply = "OK\n";
        pthread_create(&t, NULL, serve_one, &p);
        CHECK(vm_hvsock_connect(sock, 1024, 5000, &fd, &e) < 0 && err_is(&e, ERR_DATA_LOSS));
        pthread_join(t, NULL);
        err_clear(&e);

        /* the VMM hangs up: nothing listens in the guest yet */
        p.reply = NULL;
        pthread_create(&t, NULL, serve_one, &p);
        CHECK(vm_hvsock_connect(sock, 1024, 5000, &fd, &e) < 0 && err_is(&e, ERR_UNAVAILABLE));
        pthread_join(t, NULL);
        err_clear(&e);

        /* silence: the deadline */
        CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sp) == 0);
        CHECK(vm_hvsock_handshake(sp[0], 1024, 200, &e) < 0 && err_is(&e, ERR_DEADLINE));
        err_clear(&e);
        close(sp[0]);
        close(sp[1]);
        close(p.lfd);
        unlink(sock);
        free(sock);
}

int main(void)
{
        if (!mkdtemp(dir))
                abort();
        test_body();
        test_parser();
        test_client();
        test_hvsock();
        rmdir(dir);
        return check_report("test_vm_chv_api");
}
