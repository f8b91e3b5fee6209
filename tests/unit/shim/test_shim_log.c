/* The CRI log writer and the control protocol framing, without a container
 * (runs unprivileged). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "../check.h"
#include "crilog.h"
#include "shim/shim-internal.h"

static char *tmpdir;

static const struct crilog_line *nth(const struct crilog *l, const char *s, size_t k)
{
        return crilog_nth(l, s, k);
}

static void test_lines(void)
{
        cleanup_free char *path = path_join(tmpdir, "a.log");
        struct shim_log l = {0};
        CHECK(shim_log_open(&l, path, NULL) == 0);
        int64_t t1 = 1700000000123456789LL;
        /* A line split across reads, an empty line, stderr interleaved. */
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "hello\nwor", 9, t1);
        shim_log_write(&l, SHIM_ATTACH_STDERR, "oops\n", 5, t1 + 1);
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "ld\n\nx", 5, t1 + 2);
        /* 40 KiB in 1000-byte reads: P (16 KiB), P (16 KiB), F (8 KiB). */
        char chunk[1000];
        memset(chunk, 'y', sizeof(chunk));
        size_t total = 40960;
        /* "x" is pending: finish that line first. */
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "\n", 1, t1 + 3);
        for (size_t done = 0; done < total;) {
                size_t n = total - done < sizeof(chunk) ? total - done : sizeof(chunk);
                shim_log_write(&l, SHIM_ATTACH_STDOUT, chunk, n, t1 + 4);
                done += n;
        }
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "\n", 1, t1 + 5);
        /* Exactly 16 KiB then a newline in one read: one F line. */
        char *big = xmalloc(SHIM_LOG_LINE_MAX + 1);
        memset(big, 'z', SHIM_LOG_LINE_MAX);
        big[SHIM_LOG_LINE_MAX] = '\n';
        shim_log_write(&l, SHIM_ATTACH_STDOUT, big, SHIM_LOG_LINE_MAX + 1, t1 + 6);
        free(big);
        /* A partial line at the end of the stream is written as P. */
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "tail", 4, t1 + 7);
        shim_log_eof(&l, SHIM_ATTACH_STDOUT, t1 + 8);
        shim_log_eof(&l, SHIM_ATTACH_STDERR, t1 + 8); /* nothing pending: nothing written */
        shim_log_close(&l);

        struct crilog c;
        CHECK(crilog_read(path, &c) == 0);
        CHECK(c.bad == 0);
        CHECK(crilog_count(&c, "stdout") == 9);
        CHECK(crilog_count(&c, "stderr") == 1);
        const struct crilog_line *x;
        x = nth(&c, "stdout", 0);
        CHECK(x && x->tag == 'F' && strcmp(x->text, "hello") == 0);
        CHECK(x && strcmp(x->ts, "2023-11-14T22:13:20.123456789Z") == 0);
        x = nth(&c, "stdout", 1);
        CHECK(x && x->tag == 'F' && strcmp(x->text, "world") == 0);
        x = nth(&c, "stdout", 2);
        CHECK(x && x->tag == 'F' && x->len == 0);
        x = nth(&c, "stdout", 3);
        CHECK(x && x->tag == 'F' && strcmp(x->text, "x") == 0);
        x = nth(&c, "stdout", 4);
        CHECK(x && x->tag == 'P' && x->len == 16384 && crilog_all_char(x, 'y'));
        x = nth(&c, "stdout", 5);
        CHECK(x && x->tag == 'P' && x->len == 16384 && crilog_all_char(x, 'y'));
        x = nth(&c, "stdout", 6);
        CHECK(x && x->tag == 'F' && x->len == 8192 && crilog_all_char(x, 'y'));
        x = nth(&c, "stdout", 7);
        CHECK(x && x->tag == 'F' && x->len == 16384 && crilog_all_char(x, 'z'));
        x = nth(&c, "stdout", 8);
        CHECK(x && x->tag == 'P' && strcmp(x->text, "tail") == 0);
        x = nth(&c, "stderr", 0);
        CHECK(x && x->tag == 'F' && strcmp(x->text, "oops") == 0);
        crilog_free(&c);
}

static void test_reopen(void)
{
        cleanup_free char *path = path_join(tmpdir, "r.log");
        cleanup_free char *rotated = path_join(tmpdir, "r.log.1");
        struct shim_log l = {0};
        CHECK(shim_log_open(&l, path, NULL) == 0);
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "one\n", 4, 1);
        CHECK(rename(path, rotated) == 0);
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "two\n", 4, 2); /* still the old file */
        CHECK(shim_log_reopen(&l, NULL) == 0);
        shim_log_write(&l, SHIM_ATTACH_STDOUT, "three\n", 6, 3);
        shim_log_close(&l);
        struct crilog a, b;
        CHECK(crilog_read(rotated, &a) == 0);
        CHECK(crilog_read(path, &b) == 0);
        CHECK(a.n == 2 && b.n == 1 && a.bad == 0 && b.bad == 0);
        if (a.n == 2 && b.n == 1) {
                CHECK_STR(a.lines[1].text, "two");
                CHECK_STR(b.lines[0].text, "three");
        }
        struct stat st;
        CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0640);
        crilog_free(&a);
        crilog_free(&b);
}

static void test_proto(void)
{
        int sv[2];
        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
        /* A body bigger than one packet travels in several. */
        struct sbuf b = {0};
        proto_put_str(&b, PF_ARG, "sh");
        proto_put_str(&b, PF_ARG, "-c");
        char *big = xmalloc(100000);
        memset(big, 'q', 100000);
        proto_put(&b, PF_STDOUT, big, 100000);
        proto_put_i64(&b, PF_TIMEOUT_MS, 1234);
        struct err st = ERR_INIT;
        err_set(&st, ERR_DEADLINE, "too slow");
        CHECK(proto_send(sv[0], OP_EXEC, &st, &b, NULL) == 0);
        struct proto_msg m;
        CHECK(proto_recv(sv[1], 1000, &m, NULL) == 0);
        CHECK(m.hdr.op == OP_EXEC);
        int64_t v = 0;
        CHECK(proto_get_i64(&m, PF_TIMEOUT_MS, &v) && v == 1234);
        const char *d;
        uint32_t n;
        CHECK(proto_get(&m, PF_STDOUT, &d, &n) && n == 100000 && memcmp(d, big, n) == 0);
        size_t pos = 0, args = 0;
        uint16_t tag;
        while (proto_next(&m, &pos, &tag, &d, &n))
                args += tag == PF_ARG;
        CHECK(args == 2);
        struct err got = ERR_INIT;
        CHECK(proto_reply_status(&m, &got) < 0 && got.kind == ERR_DEADLINE);
        CHECK_STR(got.msg, "too slow");
        err_clear(&got);
        err_clear(&st);
        proto_msg_clear(&m);

        /* Malformed: a field longer than the body stops the walk. */
        struct proto_msg bad = {0};
        char raw[16] = {0};
        uint32_t huge = 1000;
        memcpy(raw + 4, &huge, 4);
        bad.body = raw;
        bad.len = sizeof(raw);
        pos = 0;
        CHECK(!proto_next(&bad, &pos, &tag, &d, &n));

        /* Timeout on a silent peer; EOF is "closed". */
        struct err e = ERR_INIT;
        CHECK(proto_recv(sv[1], 50, &m, &e) < 0 && e.kind == ERR_DEADLINE);
        err_clear(&e);
        close(sv[0]);
        CHECK(proto_recv(sv[1], 1000, &m, &e) < 0 && e.kind == ERR_UNAVAILABLE);
        err_clear(&e);
        close(sv[1]);
        free(big);
        sbuf_free(&b);
}

static void test_exit_file(void)
{
        struct shim_state st = {.pid = 42,
                                .status = SHIM_EXITED,
                                .exit_code = 137,
                                .signal = 9,
                                .created_ns = 1,
                                .started_ns = 2,
                                .finished_ns = 3,
                                .oom_killed = true};
        CHECK(shim_exit_write(tmpdir, &st, NULL) == 0);
        struct shim_state got;
        CHECK(shim_read_exit(tmpdir, &got, NULL) == 0);
        CHECK(got.pid == 42 && got.exit_code == 137 && got.signal == 9 && got.finished_ns == 3 &&
              got.oom_killed && got.status == SHIM_EXITED);
        struct err e = ERR_INIT;
        cleanup_free char *none = path_join(tmpdir, "nothing-here");
        CHECK(shim_read_exit(none, &got, &e) < 0 && e.kind == ERR_NOT_FOUND);
        err_clear(&e);
}

int main(void)
{
        char tmpl[] = "/tmp/corral-shim-log.XXXXXX";
        tmpdir = mkdtemp(tmpl);
        if (tmpdir == NULL)
                return 1;
        test_lines();
        test_reopen();
        test_proto();
        test_exit_file();
        (void)rm_rf(tmpdir, NULL);
        return check_report("test_shim_log");
}
