/* util: errors, strings, JSON, files, ids, time, forked children. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <yajl/yajl_tree.h>

#include "util/util.h"
#include "tests/unit/check.h"

static void test_err(void)
{
        cleanup_err struct err e = ERR_INIT;
        CHECK(err_make(&e, ENOENT, "open %s", "/x") == -1);
        CHECK(e.kind == ERR_NOT_FOUND);
        CHECK_STR(e.msg, "open /x: No such file or directory");
        err_wrap(&e, "pull %s", "busybox");
        CHECK_STR(e.msg, "pull busybox: open /x: No such file or directory");
        err_set(&e, ERR_INVALID, "bad %d", 3);
        CHECK(e.kind == ERR_INVALID && e.errnum == 0);
        CHECK_STR(err_kind_name(e.kind), "INVALID_ARGUMENT");
        CHECK(err_make(NULL, EIO, "ignored") == -1);
        struct err f = ERR_INIT;
        err_move(&f, &e);
        CHECK(e.msg == NULL && f.kind == ERR_INVALID);
        err_clear(&f);
        CHECK(err_make(&f, ETIMEDOUT, "t") < 0 && f.kind == ERR_DEADLINE);
        err_clear(&f);
}

static void test_sbuf_strv(void)
{
        struct sbuf b = {0};
        for (int i = 0; i < 1000; i++)
                sbuf_printf(&b, "%d,", i);
        CHECK(b.len == strlen(b.buf));
        CHECK(str_has_prefix(b.buf, "0,1,2,"));
        CHECK(str_has_suffix(b.buf, "998,999,"));
        char *s = sbuf_steal(&b);
        CHECK(b.buf == NULL);
        free(s);
        cleanup_strv char **v = NULL;
        strv_push(&v, "a");
        strv_push(&v, "b");
        CHECK(strv_len(v) == 2);
        cleanup_strv char **w = strv_dup(v);
        CHECK_STR(w[1], "b");
        CHECK(w[2] == NULL);
}

static void test_json(void)
{
        cleanup_err struct err e = ERR_INIT;
        const char doc[] = "{\"a\": \"x\", \"n\": 42, \"t\": true, \"o\": {\"k\": [1]}}";
        yajl_val v = json_parse(doc, strlen(doc), "doc", &e);
        CHECK(v != NULL);
        CHECK_STR(json_get_str(v, "a"), "x");
        int64_t n = 0;
        CHECK(json_get_int(v, "n", &n) && n == 42);
        bool t = false;
        CHECK(json_get_bool(v, "t", &t) && t);
        CHECK(json_get_str(v, "n") == NULL);
        CHECK(json_get(json_get(v, "o"), "k") != NULL);
        yajl_tree_free(v);
        CHECK(json_parse("{\"a\":", 5, "cfg.json", &e) == NULL);
        CHECK(e.kind == ERR_INVALID && strstr(e.msg, "cfg.json") != NULL);
        CHECK(json_parse("{}\0x", 4, "nul", &e) == NULL);
        struct sbuf b = {0};
        json_quote(&b, "a\"b\\c\n\x01");
        CHECK_STR(b.buf, "\"a\\\"b\\\\c\\n\\u0001\"");
        sbuf_free(&b);
}

static void test_utf8_base64(void)
{
        CHECK(utf8_valid("", 0));
        CHECK(utf8_valid("plain ascii", 11));
        CHECK(utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9)); /* é € 😀 */
        CHECK(!utf8_valid("\xff\xfe", 2));
        CHECK(!utf8_valid("\xc3", 1));             /* truncated */
        CHECK(!utf8_valid("\xc0\xaf", 2));         /* overlong '/' */
        CHECK(!utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
        CHECK(!utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
        CHECK(!utf8_valid("a\x80", 2));            /* stray continuation */
        /* Why env carries base64 in JSON: yajl refuses what utf8_valid refuses. */
        cleanup_err struct err e = ERR_INIT;
        CHECK(json_parse("[\"\xff\xfe\"]", 6, "env", &e) == NULL);

        const char raw[] = "\xff\xfe\x01zA";
        for (size_t n = 0; n <= 5; n++) {
                cleanup_free char *enc = base64_encode(raw, n);
                size_t m = 99;
                cleanup_free char *dec = base64_decode(enc, &m);
                CHECK(dec != NULL && m == n && memcmp(dec, raw, n) == 0);
        }
        cleanup_free char *enc = base64_encode("\xff\xfe", 2);
        CHECK_STR(enc, "//4=");
        size_t m;
        CHECK(base64_decode("//4*", &m) == NULL);
        CHECK(base64_decode("/=/4", &m) == NULL);
}

static void test_files(void)
{
        cleanup_err struct err e = ERR_INIT;
        char tmpl[] = "/tmp/corral-util-XXXXXX";
        CHECK(mkdtemp(tmpl) != NULL);
        cleanup_free char *deep = path_join(tmpl, "a/b/c");
        CHECK(mkdir_p(deep, 0755, &e) == 0);
        CHECK(mkdir_p(deep, 0755, &e) == 0);
        cleanup_free char *f = path_join(deep, "f");
        CHECK(file_write_atomic(f, "hello", 5, 0600, &e) == 0);
        cleanup_free char *data = NULL;
        size_t len = 0;
        CHECK(file_read_all(f, &data, &len, 0, &e) == 0);
        CHECK(len == 5 && strcmp(data, "hello") == 0);
        struct stat st;
        CHECK(stat(f, &st) == 0 && (st.st_mode & 0777) == 0600);
        cleanup_free char *small = NULL;
        CHECK(file_read_all(f, &small, NULL, 3, &e) < 0 && e.kind == ERR_EXHAUSTED);
        CHECK(mkdir_p(f, 0755, &e) < 0);
        CHECK(file_read_all("/nonexistent/x", &small, NULL, 0, &e) < 0 && e.kind == ERR_NOT_FOUND);
        /* file_replace: the new content in place of the old, no temporary left behind */
        CHECK(file_replace(f, "bye", 3, 0600, &e) == 0);
        cleanup_free char *data2 = NULL;
        CHECK(file_read_all(f, &data2, &len, 0, &e) == 0);
        CHECK(len == 3 && strcmp(data2, "bye") == 0);
        cleanup_free char *left = xasprintf("%s.tmp.%d", f, (int)gettid());
        CHECK(stat(left, &st) < 0 && errno == ENOENT);
        cleanup_free char *nodir = path_join(tmpl, "none/f");
        CHECK(file_replace(nodir, "x", 1, 0600, &e) < 0);
        CHECK(rm_rf(tmpl, &e) == 0);
        CHECK(stat(tmpl, &st) < 0 && errno == ENOENT);
        CHECK(rm_rf(tmpl, &e) == 0);
        cleanup_free char *j = path_join("/a/", "/b");
        CHECK_STR(j, "/a/b");
}

static void test_ids(void)
{
        char a[ID_LEN + 1], b[ID_LEN + 1];
        id_generate(a);
        id_generate(b);
        CHECK(id_is_valid(a) && id_is_valid(b));
        CHECK(strcmp(a, b) != 0);
        CHECK(!id_is_valid("abc"));
        CHECK(!id_is_valid("ZZ"));
        char *ids[] = {"abc123", "abd456", "abc"};
        const char *out = NULL;
        cleanup_err struct err e = ERR_INIT;
        CHECK(id_resolve_prefix("abd", ids, 3, &out, &e) == 0);
        CHECK_STR(out, "abd456");
        CHECK(id_resolve_prefix("abc", ids, 3, &out, &e) == 0); /* exact wins */
        CHECK_STR(out, "abc");
        CHECK(id_resolve_prefix("ab", ids, 3, &out, &e) < 0 && e.kind == ERR_INVALID);
        CHECK(id_resolve_prefix("zz", ids, 3, &out, &e) < 0 && e.kind == ERR_NOT_FOUND);
}

static void test_time(void)
{
        char buf[40];
        time_rfc3339nano(1700000000123456789LL, buf);
        CHECK_STR(buf, "2023-11-14T22:13:20.123456789Z");
        time_rfc3339nano(0, buf);
        CHECK_STR(buf, "1970-01-01T00:00:00.000000000Z");
        CHECK(time_mono_ns() > 0);
}

/* A forked child keeps only stdio and what it names, and dies with its parent. */
static void test_child_isolate(void)
{
        int report[2], stray[2], hold[2];
        CHECK(pipe(report) == 0 && pipe(stray) == 0 && pipe2(hold, O_CLOEXEC) == 0);
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid == 0) {
                child_isolate(self, &report[1], 1);
                /* The fds of ours it must have closed, and the one it keeps
                 * (asked one by one: valgrind keeps fds of its own). */
                const int gone[] = {stray[0], stray[1], hold[0], hold[1]};
                int n = 0, kept = fcntl(report[1], F_GETFD) >= 0;
                for (size_t i = 0; i < ARRAY_SIZE(gone); i++)
                        n += fcntl(gone[i], F_GETFD) < 0 && errno == EBADF;
                char msg[2] = {(char)n, (char)kept};
                _exit(write(report[1], msg, 2) == 2 ? 0 : 1);
        }
        close(report[1]);
        char msg[2] = {0};
        CHECK(read(report[0], msg, 2) == 2);
        CHECK(msg[0] == 4 && msg[1] == 1); /* stray and hold closed, the report pipe kept */
        int st;
        CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0);

        /* A child whose parent dies (a middle process here) is killed, not orphaned. */
        int ready[2];
        CHECK(pipe(ready) == 0);
        pid_t mid = fork();
        if (mid == 0) {
                pid_t me = getpid();
                pid_t c = fork();
                if (c == 0) {
                        child_isolate(me, &ready[1], 1);
                        (void)!write(ready[1], &c, sizeof(c));
                        pause();
                        _exit(0);
                }
                (void)!write(ready[1], &c, sizeof(c));
                _exit(0);
        }
        close(ready[1]);
        pid_t grandchild = 0, echo = 0;
        CHECK(read(ready[0], &grandchild, sizeof(grandchild)) == sizeof(grandchild));
        CHECK(waitpid(mid, &st, 0) == mid);
        (void)!read(ready[0], &echo, sizeof(echo)); /* 0, or EOF when it died first */
        bool gone = false;
        for (int i = 0; i < 200 && !gone; i++) {
                gone = kill(grandchild, 0) < 0 && errno == ESRCH;
                if (!gone) {
                        /* Reparented to init or a subreaper: a zombie counts as gone. */
                        char path[64], state = 0;
                        snprintf(path, sizeof(path), "/proc/%d/stat", (int)grandchild);
                        FILE *f = fopen(path, "r");
                        gone = f == NULL || (fscanf(f, "%*d %*s %c", &state) == 1 && state == 'Z');
                        if (f)
                                fclose(f);
                        usleep(10000);
                }
        }
        CHECK(gone);
        close(ready[0]);
        close(report[0]);
        close(stray[0]);
        close(stray[1]);
        close(hold[0]);
        close(hold[1]);
}

int main(void)
{
        enum log_level l;
        CHECK(log_level_parse("debug", &l) == 0 && l == LOG_LVL_DEBUG);
        CHECK(log_level_parse("loud", &l) < 0);
        test_err();
        test_sbuf_strv();
        test_json();
        test_utf8_base64();
        test_files();
        test_ids();
        test_time();
        test_child_isolate();
        return check_report("util");
}
