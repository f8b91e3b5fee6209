/* snapshot: overlay2 for real (root, overlayfs): layer chains, whiteouts
 * from the unpacker seen through a mount, remove rules, usage, a 200-layer
 * chain, and repair after damage done by hand. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>

#include "image/unpack-internal.h"
#include "snapshot/snapshot-internal.h"
#include "store/store.h"
#include "tests/unit/check.h"
#include "tests/unit/unpack/tarbuild.h"
#include "util/util.h"

static char tmp[256];
static char root[300], mnt[300], dbpath[300];
static struct store *st;
static struct snap *sn;

#define OK(call)                                                                                             \
        do {                                                                                                 \
                struct err _e = ERR_INIT;                                                                    \
                struct err *e = &_e;                                                                         \
                int _r = (call);                                                                             \
                CHECK(_r >= 0);                                                                              \
                if (_r < 0)                                                                                  \
                        fprintf(stderr, "  %s: %s\n", #call, _e.msg ? _e.msg : "?");                         \
                err_clear(&_e);                                                                              \
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
        } while (0)

static void put_file(const char *dir, const char *rel, const char *data)
{
        cleanup_free char *p = path_join(dir, rel);
        struct err e = ERR_INIT;
        cleanup_free char *parent = xstrdup(p);
        *strrchr(parent, '/') = '\0';
        CHECK(mkdir_p(parent, 0755, &e) == 0);
        CHECK(file_write_atomic(p, data, strlen(data), 0644, &e) == 0);
        err_clear(&e);
}

static char *get_file(const char *dir, const char *rel)
{
        cleanup_free char *p = path_join(dir, rel);
        char *buf = NULL;
        size_t n;
        struct err e = ERR_INIT;
        if (file_read_all(p, &buf, &n, 0, &e) < 0)
                buf = NULL;
        err_clear(&e);
        return buf;
}

static bool absent(const char *dir, const char *rel)
{
        cleanup_free char *p = path_join(dir, rel);
        struct stat s;
        return lstat(p, &s) < 0 && errno == ENOENT;
}

/* prepare key over parent, fill it with fill(), commit as name */
static void layer(const char *name, const char *parent, void (*fill)(const char *fs, void *), void *arg)
{
        cleanup_free char *key = xasprintf("extract-%s", name);
        OK(snap_prepare(sn, key, parent, NULL, e));
        struct err e = ERR_INIT;
        cleanup_free char *fs = snap_fs_path(sn, key, &e);
        CHECK(fs != NULL);
        if (fs)
                fill(fs, arg);
        OK(snap_commit(sn, name, key, e));
        err_clear(&e);
}

static void fill_l1(const char *fs, void *arg)
{
        (void)arg;
        put_file(fs, "base.txt", "from L1");
        put_file(fs, "gone.txt", "deleted by L2");
        put_file(fs, "opq/lower1", "hidden by L2's opaque dir");
        put_file(fs, "d/x", "x");
}

/* L2 comes from a real layer tar through the unpacker */
static void fill_l2(const char *fs, void *arg)
{
        (void)arg;
        struct tb t;
        tb_init(&t, TB_GZIP);
        tb_file(&t, "l2.txt", "from L2", 0644);
        tb_file(&t, ".wh.gone.txt", "", 0644);
        tb_dir(&t, "opq", 0755);
        tb_file(&t, "opq/.wh..wh..opq", "", 0644);
        tb_file(&t, "opq/upper", "L2 opq", 0644);
        size_t len;
        cleanup_free char *tar = tb_finish(&t, &len);
        struct img_unpack_stats s;
        OK(img_unpack_layer_mem(tar, len, "application/vnd.oci.image.layer.v1.tar+gzip", fs, &s, e));
        CHECK(s.whiteouts == 2);
}

static void fill_l3(const char *fs, void *arg)
{
        (void)arg;
        put_file(fs, "base.txt", "from L3");
        put_file(fs, "l3.txt", "from L3");
}

/* counts; a negative start counts up to -1 and then stops the walk */
static int count_cb(const struct store_snapshot *s, void *arg)
{
        int *n = arg;
        CHECK(s->key != NULL && s->dir != NULL);
        if (*n < 0)
                return -1;
        (*n)++;
        return 0;
}

static void test_chain(void)
{
        layer("sha256:L1", NULL, fill_l1, NULL);
        layer("sha256:L2", "sha256:L1", fill_l2, NULL);
        layer("sha256:L3", "sha256:L2", fill_l3, NULL);

        struct store_snapshot s;
        OK(snap_stat(sn, "sha256:L3", &s, e));
        CHECK(s.kind == SNAP_COMMITTED && s.parent && !strcmp(s.parent, "sha256:L2"));
        store_snap_clear(&s);
        FAILS(snap_stat(sn, "extract-sha256:L3", &s, e), ERR_NOT_FOUND); /* the active key is gone */

        /* a container's rootfs over the chain */
        struct snap_mount *m = NULL;
        OK(snap_prepare(sn, "ctr1", "sha256:L3", &m, e));
        CHECK(m && !strcmp(m->type, "overlay") && strv_len(m->lowerdirs) == 3 && m->upperdir && !m->readonly);
        OK(snap_mount(m, mnt, e));
        cleanup_free char *base = get_file(mnt, "base.txt"), *l2 = get_file(mnt, "l2.txt"),
                          *l3 = get_file(mnt, "l3.txt"), *up = get_file(mnt, "opq/upper"),
                          *x = get_file(mnt, "d/x");
        CHECK_STR(base, "from L3");
        CHECK_STR(l2, "from L2");
        CHECK_STR(l3, "from L3");
        CHECK_STR(up, "L2 opq");
        CHECK_STR(x, "x");
        CHECK(absent(mnt, "gone.txt"));     /* whiteout from the unpacker */
        CHECK(absent(mnt, "opq/lower1"));   /* opaque dir from the unpacker */
        CHECK(absent(mnt, ".wh.gone.txt")); /* no leftover markers */
        /* writes land in the upper dir */
        put_file(mnt, "new.txt", "written in the container");
        cleanup_free char *mp = path_join(mnt, "base.txt");
        CHECK(unlink(mp) == 0);
        OK(snap_unmount(mnt, e));
        struct err err = ERR_INIT;
        cleanup_free char *upper = snap_fs_path(sn, "ctr1", &err);
        cleanup_free char *nw = get_file(upper, "new.txt");
        CHECK_STR(nw, "written in the container");
        struct stat sb;
        cleanup_free char *wh = path_join(upper, "base.txt");
        CHECK(lstat(wh, &sb) == 0 && S_ISCHR(sb.st_mode) && sb.st_rdev == 0);
        snap_mount_free(m);
        m = NULL;

        /* views: read-only; a base layer's view is a bind mount */
        OK(snap_view(sn, "view3", "sha256:L3", &m, e));
        CHECK(m && !strcmp(m->type, "overlay") && m->readonly && m->upperdir == NULL);
        OK(snap_mount(m, mnt, e));
        cleanup_free char *vb = get_file(mnt, "base.txt");
        CHECK_STR(vb, "from L3");
        cleanup_free char *vp = path_join(mnt, "nope");
        CHECK(open(vp, O_CREAT | O_WRONLY, 0644) < 0 && errno == EROFS);
        OK(snap_unmount(mnt, e));
        snap_mount_free(m);
        m = NULL;
        OK(snap_view(sn, "view1", "sha256:L1", &m, e));
        CHECK(m && !strcmp(m->type, "bind") && m->readonly);
        OK(snap_mount(m, mnt, e));
        cleanup_free char *v1 = get_file(mnt, "base.txt");
        CHECK_STR(v1, "from L1");
        CHECK(open(vp, O_CREAT | O_WRONLY, 0644) < 0 && errno == EROFS);
        OK(snap_unmount(mnt, e));
        snap_mount_free(m);
        m = NULL;
        /* an active base snapshot is a rw bind mount */
        OK(snap_prepare(sn, "scratch", NULL, &m, e));
        CHECK(m && !strcmp(m->type, "bind") && !m->readonly);
        snap_mount_free(m);
        m = NULL;

        /* the rules */
        FAILS(snap_prepare(sn, "ctr1", "sha256:L3", NULL, e), ERR_EXISTS);
        FAILS(snap_prepare(sn, "ctr2", "sha256:nope", NULL, e), ERR_NOT_FOUND);
        FAILS(snap_prepare(sn, "ctr2", "ctr1", NULL, e), ERR_PRECONDITION);  /* active parent */
        FAILS(snap_prepare(sn, "ctr2", "view3", NULL, e), ERR_PRECONDITION); /* view parent */
        FAILS(snap_prepare(sn, "", NULL, NULL, e), ERR_INVALID);
        FAILS(snap_commit(sn, "sha256:X", "sha256:L3", e), ERR_PRECONDITION); /* not active */
        FAILS(snap_commit(sn, "sha256:X", "view3", e), ERR_PRECONDITION);
        FAILS(snap_commit(sn, "sha256:L1", "ctr1", e), ERR_EXISTS);
        FAILS(snap_commit(sn, "sha256:X", "nope", e), ERR_NOT_FOUND);
        FAILS(snap_remove(sn, "sha256:L2", e), ERR_PRECONDITION); /* L3 is its child */
        FAILS(snap_remove(sn, "sha256:L3", e), ERR_PRECONDITION); /* ctr1 and view3 */
        FAILS(snap_remove(sn, "nope", e), ERR_NOT_FOUND);
        CHECK(snap_stat(sn, "ctr2", &s, NULL) < 0); /* failed prepares left no record */

        /* the directory of a failed prepare is gone too: count dirs */
        cleanup_dir DIR *d = opendir(snap_root(sn));
        struct dirent *de;
        int ndirs = 0;
        while (d && (de = readdir(d)) != NULL)
                if (de->d_name[0] != '.' && strcmp(de->d_name, "l"))
                        ndirs++;
        CHECK(ndirs == 7); /* L1 L2 L3 ctr1 view3 view1 scratch */

        /* walk sees every snapshot, and stops when asked */
        int seen = 0;
        OK(snap_walk(sn, count_cb, &seen, e));
        CHECK(seen == 7);
        int stop = -1000;
        CHECK(snap_walk(sn, count_cb, &stop, NULL) == -1);

        /* removal in order */
        cleanup_free char *ctrdir = xstrdup(upper);
        OK(snap_remove(sn, "ctr1", e));
        CHECK(absent(ctrdir, ""));
        OK(snap_remove(sn, "view3", e));
        OK(snap_remove(sn, "view1", e));
        OK(snap_remove(sn, "scratch", e));
        OK(snap_remove(sn, "sha256:L3", e));
        OK(snap_remove(sn, "sha256:L2", e));
        OK(snap_remove(sn, "sha256:L1", e));
        err_clear(&err);
}

/* two unpacks of the same layer race to commit it */
static void test_commit_race(void)
{
        OK(snap_prepare(sn, "extract-a", NULL, NULL, e));
        OK(snap_prepare(sn, "extract-b", NULL, NULL, e));
        OK(snap_commit(sn, "sha256:same", "extract-a", e));
        FAILS(snap_commit(sn, "sha256:same", "extract-b", e), ERR_EXISTS);
        OK(snap_remove(sn, "extract-b", e));
        OK(snap_remove(sn, "sha256:same", e));
}

static void test_usage(void)
{
        OK(snap_prepare(sn, "u", NULL, NULL, e));
        struct err err = ERR_INIT;
        cleanup_free char *fs = snap_fs_path(sn, "u", &err);
        char big[3 * 4096];
        memset(big, 'u', sizeof(big));
        cleanup_free char *bp = path_join(fs, "big"), *hp = path_join(fs, "hard"),
                          *sp = path_join(fs, "small"), *dp = path_join(fs, "sub");
        CHECK(file_write_atomic(bp, big, sizeof(big), 0644, &err) == 0);
        CHECK(link(bp, hp) == 0);
        CHECK(file_write_atomic(sp, "s", 1, 0644, &err) == 0);
        CHECK(mkdir(dp, 0755) == 0);
        cleanup_free char *lp = path_join(dp, "link");
        CHECK(symlink("../big", lp) == 0);
        uint64_t want = 0;
        const char *paths[] = {fs, bp, sp, dp, lp};
        for (size_t i = 0; i < ARRAY_SIZE(paths); i++) {
                struct stat s;
                CHECK(lstat(paths[i], &s) == 0);
                want += (uint64_t)s.st_blocks * 512;
        }
        uint64_t bytes = 0, inodes = 0;
        OK(snap_usage(sn, "u", &bytes, &inodes, e));
        CHECK(inodes == 5); /* root, big (twice linked, once counted), small, sub, sub/link */
        CHECK(bytes == want && bytes >= sizeof(big));
        OK(snap_commit(sn, "sha256:U", "u", e));
        struct store_snapshot s;
        OK(snap_stat(sn, "sha256:U", &s, e));
        CHECK(s.size == bytes && s.inodes == inodes); /* recorded at commit */
        store_snap_clear(&s);
        uint64_t tb = 0, ti = 0;
        OK(snap_total_usage(sn, &tb, &ti, e));
        CHECK(tb == bytes && ti == inodes);
        OK(snap_remove(sn, "sha256:U", e));
        err_clear(&err);
}

static void fill_n(const char *fs, void *arg)
{
        int i = *(int *)arg;
        char name[32], val[32];
        snprintf(name, sizeof(name), "f%d", i);
        snprintf(val, sizeof(val), "%d", i);
        put_file(fs, name, val);
        put_file(fs, "top", val);
}

static void check_deep_mount(const char *top, int n)
{
        struct snap_mount *m = NULL;
        OK(snap_prepare(sn, "deep-ctr", top, &m, e));
        CHECK(m && strv_len(m->lowerdirs) == (size_t)n);
        OK(snap_mount(m, mnt, e));
        cleanup_free char *t = get_file(mnt, "top");
        char want[16];
        snprintf(want, sizeof(want), "%d", n - 1);
        CHECK_STR(t, want);
        int seen = 0;
        for (int i = 0; i < n; i++) {
                char name[32];
                snprintf(name, sizeof(name), "f%d", i);
                seen += !absent(mnt, name);
        }
        CHECK(seen == n);
        OK(snap_unmount(mnt, e));
        snap_mount_free(m);
        OK(snap_remove(sn, "deep-ctr", e));
}

static void test_deep(void)
{
        char prev[64] = "", name[64];
        for (int i = 0; i < 200; i++) {
                snprintf(name, sizeof(name), "sha256:deep%03d", i);
                layer(name, i ? prev : NULL, fill_n, &i);
                snprintf(prev, sizeof(prev), "%s", name);
        }
        /* 200 layers do not fit one page even as relative l/<ID>: the new
         * mount API adds them one by one */
        check_deep_mount("sha256:deep199", 200);
        /* without it, 200 is an error that names the count */
        snap_mount_ways = SNAP_MOUNT_ABSOLUTE | SNAP_MOUNT_RELATIVE;
        struct snap_mount *m = NULL;
        OK(snap_prepare(sn, "deep-ctr", "sha256:deep199", &m, e));
        struct err err = ERR_INIT;
        CHECK(snap_mount(m, mnt, &err) < 0 && err.kind == ERR_EXHAUSTED && err.msg &&
              strstr(err.msg, "200 layers") != NULL);
        err_clear(&err);
        snap_mount_free(m);
        OK(snap_remove(sn, "deep-ctr", e));
        /* 120 layers: absolute paths are too long, relative short links fit */
        snap_mount_ways = SNAP_MOUNT_RELATIVE;
        check_deep_mount("sha256:deep119", 120);
        /* and a shallow one by absolute short links */
        snap_mount_ways = SNAP_MOUNT_ABSOLUTE;
        check_deep_mount("sha256:deep009", 10);
        snap_mount_ways = SNAP_MOUNT_ALL;
        for (int i = 199; i >= 0; i--) {
                snprintf(name, sizeof(name), "sha256:deep%03d", i);
                OK(snap_remove(sn, name, e));
        }
}

static size_t count_links(void)
{
        cleanup_free char *l = path_join(snap_root(sn), "l");
        cleanup_dir DIR *d = opendir(l);
        struct dirent *de;
        size_t n = 0;
        while (d && (de = readdir(d)) != NULL)
                n += de->d_name[0] != '.';
        return n;
}

static void reopen(void)
{
        snap_close(sn);
        sn = NULL;
        OK(snap_open(tmp, NULL, st, &sn, e));
}

static void test_repair(void)
{
        OK(snap_prepare(sn, "r1-extract", NULL, NULL, e));
        OK(snap_commit(sn, "sha256:R1", "r1-extract", e));
        OK(snap_prepare(sn, "r2", "sha256:R1", NULL, e));
        OK(snap_prepare(sn, "keep", NULL, NULL, e));
        CHECK(count_links() == 3);
        struct err err = ERR_INIT;
        cleanup_free char *r1fs = snap_fs_path(sn, "sha256:R1", &err);
        cleanup_free char *r2fs = snap_fs_path(sn, "r2", &err);
        cleanup_free char *keepfs = snap_fs_path(sn, "keep", &err);
        put_file(keepfs, "data", "kept");

        /* damage: R1's directory deleted by hand (r2 depends on it), a stray
         * directory as a crash between rename and record leaves, a temp dir,
         * a stale link, and keep's link deleted */
        cleanup_free char *r1dir = xstrdup(r1fs);
        *strrchr(r1dir, '/') = '\0';
        CHECK(rm_rf(r1dir, &err) == 0);
        char stray[ID_LEN + 1];
        id_generate(stray);
        cleanup_free char *sp = path_join(snap_root(sn), stray);
        cleanup_free char *spfs = path_join(sp, "fs");
        CHECK(mkdir_p(spfs, 0755, &err) == 0);
        cleanup_free char *tp = xasprintf("%s/.tmp-%s", snap_root(sn), stray);
        CHECK(mkdir_p(tp, 0755, &err) == 0);
        cleanup_free char *stale = xasprintf("%s/l/AAAAAAAAAAAAAAAAAAAAAAAAAA", snap_root(sn));
        CHECK(symlink("../nothing/fs", stale) == 0);
        struct snap_mount *m = NULL;
        OK(snap_mounts(sn, "keep", &m, e));
        snap_mount_free(m);
        cleanup_free char *kdir = xstrdup(keepfs);
        *strrchr(kdir, '/') = '\0';
        cleanup_free char *klink = NULL;
        {
                /* find keep's link by its target */
                cleanup_free char *l = path_join(snap_root(sn), "l");
                cleanup_dir DIR *d = opendir(l);
                struct dirent *de;
                const char *kname = strrchr(kdir, '/') + 1;
                cleanup_free char *want = xasprintf("../%s/fs", kname);
                while (d && (de = readdir(d)) != NULL) {
                        char t[256] = {0};
                        if (readlinkat(dirfd(d), de->d_name, t, sizeof(t) - 1) > 0 && !strcmp(t, want))
                                klink = path_join(l, de->d_name);
                }
        }
        CHECK(klink != NULL && unlink(klink) == 0);

        reopen();
        struct store_snapshot s;
        CHECK(snap_stat(sn, "sha256:R1", &s, NULL) < 0);
        CHECK(snap_stat(sn, "r2", &s, NULL) < 0); /* its parent is gone */
        OK(snap_stat(sn, "keep", &s, e));
        store_snap_clear(&s);
        CHECK(absent(r2fs, ""));
        CHECK(absent(sp, ""));
        CHECK(absent(tp, ""));
        struct stat sb;
        CHECK(lstat(stale, &sb) < 0);
        CHECK(klink && lstat(klink, &sb) == 0 && S_ISLNK(sb.st_mode)); /* made again */
        CHECK(count_links() == 1);
        cleanup_free char *kd = get_file(keepfs, "data");
        CHECK_STR(kd, "kept");
        OK(snap_remove(sn, "keep", e));
        err_clear(&err);
}

int main(void)
{
        if (geteuid() != 0)
                SKIP("snapshot tests need root (overlay mounts)");
        cleanup_free char *fsl = NULL;
        size_t n;
        struct err err = ERR_INIT;
        if (file_read_all("/proc/filesystems", &fsl, &n, 0, &err) < 0 || strstr(fsl, "\toverlay\n") == NULL)
                SKIP("no overlayfs in /proc/filesystems");
        snprintf(tmp, sizeof(tmp), "/var/tmp/corral-snap-XXXXXX");
        if (mkdtemp(tmp) == NULL)
                SKIP("mkdtemp: %s", strerror(errno));
        snprintf(root, sizeof(root), "%s/snapshots/overlay2", tmp);
        snprintf(mnt, sizeof(mnt), "%s/mnt", tmp);
        snprintf(dbpath, sizeof(dbpath), "%s/meta.db", tmp);
        CHECK(mkdir(mnt, 0755) == 0);
        if (store_open(dbpath, &st, &err) < 0) {
                fprintf(stderr, "store_open: %s\n", err.msg);
                return 1;
        }
        if (snap_open(tmp, NULL, st, &sn, &err) < 0) {
                fprintf(stderr, "snap_open: %s\n", err.msg);
                return 1;
        }
        /* a probe mount: overlay may exist but be unusable here (nested in
         * an overlay root, no trusted xattrs) */
        OK(snap_prepare(sn, "probe-base-x", NULL, NULL, e));
        OK(snap_commit(sn, "probe-base", "probe-base-x", e));
        struct snap_mount *pm = NULL;
        OK(snap_prepare(sn, "probe", "probe-base", &pm, e));
        if (pm == NULL || snap_mount(pm, mnt, &err) < 0) {
                fprintf(stderr, "SKIP: overlay mount does not work here: %s\n", err.msg ? err.msg : "?");
                return 77;
        }
        snap_mount_free(pm);
        OK(snap_unmount(mnt, e));
        OK(snap_remove(sn, "probe", e));
        OK(snap_remove(sn, "probe-base", e));

        test_chain();
        test_commit_race();
        test_usage();
        test_deep();
        test_repair();

        snap_close(sn);
        store_close(st);
        (void)umount2(mnt, MNT_DETACH);
        CHECK(rm_rf(tmp, &err) == 0);
        err_clear(&err);
        return check_report("test_snapshot_overlay2");
}
