/* snapshot/index.c: the snapshot records in memory. After every change,
 * and after every change refused, memory equals the journal, in order; a
 * reopen gives the same records back; children are counted in memory (a
 * parent cannot go first); stat, walk, mounts and fs paths run no SQL;
 * cached usage is the recorded size of committed snapshots plus the last
 * walk of the active ones. */
#include <stdlib.h>
#include <string.h>

#include "snapshot/snapshot-internal.h"
#include "store/store.h"
#include "tests/unit/check.h"

static char dir[256], dbpath[300];
static struct store *st;
static struct snap *sn;

static int collect(const struct store_snapshot *s, void *arg)
{
        char ***v = arg;
        cleanup_free char *line = xasprintf("%s<%s>%d:%s:%llu", s->key, s->parent ? s->parent : "", s->kind,
                                            s->dir ? s->dir : "", (unsigned long long)s->size);
        strv_push(v, line);
        return 0;
}

static char **memory(void)
{
        char **v = xcalloc(1, sizeof(char *));
        struct err e = ERR_INIT;
        CHECK(snap_walk(sn, collect, &v, &e) == 0);
        err_clear(&e);
        return v;
}

static void check_journal(const char *when)
{
        struct store_snapshot *jr = NULL;
        size_t n = 0;
        struct err e = ERR_INIT;
        CHECK(store_snap_list(st, &jr, &n, &e) == 0);
        char **j = xcalloc(1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
                collect(&jr[i], &j);
        char **m = memory();
        bool same = strv_len(m) == strv_len(j);
        for (size_t i = 0; same && m[i]; i++)
                same = strcmp(m[i], j[i]) == 0;
        if (!same) {
                fprintf(stderr, "  %s: memory and journal differ\n", when);
                for (size_t i = 0; m[i] || (j[i] && i < n); i++)
                        fprintf(stderr, "    %s | %s\n", i < strv_len(m) ? m[i] : "-", i < n ? j[i] : "-");
        }
        CHECK(same);
        strv_free(m);
        strv_free(j);
        store_snaps_free(jr, n);
        err_clear(&e);
}

#define OK(call)                                                                                             \
        do {                                                                                                 \
                struct err _e = ERR_INIT;                                                                    \
                struct err *e = &_e;                                                                         \
                int _r = (call);                                                                             \
                CHECK(_r >= 0);                                                                              \
                if (_r < 0)                                                                                  \
                        fprintf(stderr, "  %s: %s\n", #call, _e.msg ? _e.msg : "?");                         \
                err_clear(&_e);                                                                              \
                check_journal(#call);                                                                        \
        } while (0)

#define FAILS(call, want)                                                                                    \
        do {                                                                                                 \
                struct err _e = ERR_INIT;                                                                    \
                struct err *e = &_e;                                                                         \
                int _r = (call);                                                                             \
                CHECK(_r < 0 && _e.kind == (want));                                                          \
                if (!(_r < 0 && _e.kind == (want)))                                                          \
                        fprintf(stderr, "  %s: r=%d %s\n", #call, _r, _e.msg ? _e.msg : "(no error)");       \
                err_clear(&_e);                                                                              \
                check_journal(#call);                                                                        \
        } while (0)

static void put_file(const char *key, const char *name, size_t len)
{
        struct err e = ERR_INIT;
        cleanup_free char *fs = snap_fs_path(sn, key, &e);
        CHECK(fs != NULL);
        cleanup_free char *p = path_join(fs, name);
        char *buf = xcalloc(1, len);
        CHECK(file_write_atomic(p, buf, len, 0644, &e) == 0);
        free(buf);
        err_clear(&e);
}

int main(void)
{
        snprintf(dir, sizeof(dir), "/tmp/corral-test-snapidx-XXXXXX");
        CHECK(mkdtemp(dir) != NULL);
        snprintf(dbpath, sizeof(dbpath), "%s/corral.db", dir);
        struct err e0 = ERR_INIT;
        CHECK(store_open(dbpath, &st, &e0) == 0);
        CHECK(snap_open(dir, "overlay2", st, &sn, &e0) == 0);
        if (!sn) {
                fprintf(stderr, "setup: %s\n", e0.msg);
                return 1;
        }

        OK(snap_prepare(sn, "x-base", NULL, NULL, e));
        put_file("x-base", "f", 64 * 1024);
        OK(snap_commit(sn, "sha256:L1", "x-base", e));
        OK(snap_prepare(sn, "x-top", "sha256:L1", NULL, e));
        OK(snap_commit(sn, "sha256:L2", "x-top", e));
        FAILS(snap_prepare(sn, "sha256:L2", "sha256:L1", NULL, e), ERR_EXISTS);
        FAILS(snap_prepare(sn, "c1", "sha256:nope", NULL, e), ERR_NOT_FOUND);
        OK(snap_prepare(sn, "c1", "sha256:L2", NULL, e));
        FAILS(snap_prepare(sn, "c2", "c1", NULL, e), ERR_PRECONDITION); /* parent not committed */
        FAILS(snap_commit(sn, "sha256:L1", "c1", e), ERR_EXISTS);
        FAILS(snap_commit(sn, "sha256:L9", "sha256:L1", e), ERR_PRECONDITION); /* not active */
        OK(snap_view(sn, "v1", "sha256:L1", NULL, e));
        FAILS(snap_remove(sn, "sha256:L1", e), ERR_PRECONDITION); /* L2 and v1 sit on it */
        FAILS(snap_remove(sn, "sha256:L2", e), ERR_PRECONDITION); /* c1 */
        FAILS(snap_remove(sn, "nope", e), ERR_NOT_FOUND);
        OK(snap_remove(sn, "v1", e));
        put_file("c1", "g", 128 * 1024);

        /* reads: no SQL */
        uint64_t n0 = store_statements(st);
        for (int i = 0; i < 5; i++) {
                struct store_snapshot s;
                struct err e = ERR_INIT;
                CHECK(snap_stat(sn, "c1", &s, &e) == 0 && s.kind == SNAP_ACTIVE);
                store_snap_clear(&s);
                CHECK(snap_stat(sn, "gone", &s, &e) < 0 && err_is(&e, ERR_NOT_FOUND));
                err_clear(&e);
                struct snap_mount *m = NULL;
                CHECK(snap_mounts(sn, "c1", &m, &e) == 0 && m && strv_len(m->lowerdirs) == 2);
                snap_mount_free(m);
                free(snap_fs_path(sn, "c1", &e));
                strv_free(memory());
                uint64_t b, in;
                CHECK(snap_usage(sn, "c1", &b, &in, &e) == 0 && b >= 128 * 1024);
                snap_cached_usage(sn, &b, &in);
        }
        uint64_t n1 = store_statements(st);
        if (n1 != n0)
                fprintf(stderr, "  reads ran %llu SQL statements\n", (unsigned long long)(n1 - n0));
        CHECK(n1 == n0);

        /* usage: committed sizes at once, active ones after a refresh */
        struct store_snapshot l1;
        CHECK(snap_stat(sn, "sha256:L1", &l1, &e0) == 0 && l1.size >= 64 * 1024);
        uint64_t cb = 0, ci = 0, tb = 0, ti = 0;
        snap_cached_usage(sn, &cb, &ci);
        CHECK(cb >= l1.size && cb < l1.size + 128 * 1024); /* c1 not walked yet */
        CHECK(snap_total_usage(sn, &tb, &ti, &e0) == 0 && tb >= l1.size + 128 * 1024);
        snap_cached_usage(sn, &cb, &ci);
        CHECK(cb == tb && ci == ti);
        store_snap_clear(&l1);

        /* live usage: one walk serves every caller while it is young enough */
        struct snap_live a, b;
        CHECK(snap_live_usage(sn, "c1", INT64_C(60) * 1000000000, 0, &a, &e0) == 0 && a.bytes >= 128 * 1024 &&
              a.mono > 0);
        put_file("c1", "h", 256 * 1024);
        CHECK(snap_live_usage(sn, "c1", INT64_C(60) * 1000000000, 0, &b, &e0) == 0 && b.bytes == a.bytes &&
              b.mono == a.mono); /* not walked again */
        snap_usage_refresh(sn, INT64_C(60) * 1000000000);
        CHECK(snap_live_usage(sn, "c1", INT64_C(60) * 1000000000, 0, &b, &e0) == 0 && b.mono == a.mono);
        /* older than asked: walked again, and the refresh's figures are the new ones */
        CHECK(snap_live_usage(sn, "c1", 1, 0, &b, &e0) == 0 && b.bytes >= a.bytes + 256 * 1024 &&
              b.mono > a.mono);
        /* after a wall time (an exit): one walk made after it, then kept */
        int64_t exit_wall = time_now_ns();
        put_file("c1", "i", 64 * 1024);
        CHECK(snap_live_usage(sn, "c1", INT64_C(60) * 1000000000, exit_wall, &a, &e0) == 0 &&
              a.bytes >= b.bytes + 64 * 1024 && a.wall > exit_wall);
        struct snap_live c;
        CHECK(snap_live_usage(sn, "c1", 1, exit_wall, &c, &e0) == 0 && c.mono == a.mono);
        snap_usage_refresh(sn, 0); /* 0: every active snapshot */
        snap_cached_usage(sn, &cb, &ci);
        CHECK(snap_live_usage(sn, "c1", INT64_C(60) * 1000000000, 0, &c, &e0) == 0 && c.mono > a.mono);
        FAILS(snap_live_usage(sn, "nope", 1, 0, &c, e), ERR_NOT_FOUND);

        /* a reopen reads back what memory held */
        char **before = memory();
        snap_close(sn);
        CHECK(snap_open(dir, "overlay2", st, &sn, &e0) == 0);
        char **after = memory();
        CHECK(strv_len(before) == 3 && strv_len(after) == strv_len(before));
        for (size_t i = 0; before[i] && after[i]; i++)
                CHECK_STR(after[i], before[i]);
        strv_free(before);
        strv_free(after);
        /* children were counted again at load */
        FAILS(snap_remove(sn, "sha256:L2", e), ERR_PRECONDITION);
        OK(snap_remove(sn, "c1", e));
        OK(snap_remove(sn, "sha256:L2", e));
        OK(snap_remove(sn, "sha256:L1", e));

        snap_close(sn);
        store_close(st);
        err_clear(&e0);
        cleanup_free char *cmd = xasprintf("rm -rf %s", dir);
        CHECK(system(cmd) == 0);
        return check_report("test_snapshot_index");
}
