/* image/unpack: layers built here with libarchive, unpacked for real, every
 * entry type checked on disk; hostile layers must write nothing outside. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "image/unpack-internal.h"
#include "tests/unit/check.h"
#include "tests/unit/unpack/tarbuild.h"
#include "util/util.h"

static char tmp[256]; /* holds only dest/, canary/ and blob files */
static char dest[300];
static char canary[300];
static char host_etc_name[128]; /* a name no test may create in the host's /etc */

static void fresh_dest(void)
{
        struct err e = ERR_INIT;
        CHECK(rm_rf(dest, &e) == 0);
        CHECK(mkdir(dest, 0755) == 0);
        err_clear(&e);
}

static char *rd(const char *rel)
{
        cleanup_free char *p = path_join(dest, rel);
        char *buf = NULL;
        size_t n;
        struct err e = ERR_INIT;
        if (file_read_all(p, &buf, &n, 0, &e) < 0) {
                err_clear(&e);
                return NULL;
        }
        return buf;
}

static bool exists_in_dest(const char *rel)
{
        cleanup_free char *p = path_join(dest, rel);
        struct stat st;
        return lstat(p, &st) == 0;
}

static int unpack(const char *data, size_t len, const char *mt, struct img_unpack_stats *st, struct err *e)
{
        return img_unpack_layer_mem(data, len, mt, dest, st, e);
}

/* Nothing outside dest changed: tmp holds dest and canary only, the canary
 * is as made, and the host's /etc did not get our name. */
static void check_outside_untouched(const char *what)
{
        int before = check_failures;
        cleanup_dir DIR *d = opendir(tmp);
        struct dirent *de;
        int n = 0;
        while (d && (de = readdir(d)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                n++;
                CHECK(!strcmp(de->d_name, "dest") || !strcmp(de->d_name, "canary"));
        }
        CHECK(n == 2);
        cleanup_dir DIR *c = opendir(canary);
        n = 0;
        while (c && (de = readdir(c)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                n++;
                CHECK_STR(de->d_name, "secret");
        }
        CHECK(n == 1);
        struct stat st;
        CHECK(stat(canary, &st) == 0 && (st.st_mode & 07777) == 0700 && st.st_uid == 0);
        cleanup_free char *secret = path_join(canary, "secret");
        CHECK(lstat(secret, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 &&
              st.st_nlink == 1 && st.st_size == 6);
        char buf[16] = {0};
        int fd = open(secret, O_RDONLY);
        CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 6 && !strcmp(buf, "s3cret"));
        if (fd >= 0)
                close(fd);
        CHECK(getxattr(canary, "trusted.overlay.opaque", buf, sizeof(buf)) < 0);
        cleanup_free char *etc = path_join("/etc", host_etc_name);
        CHECK(lstat(etc, &st) < 0 && errno == ENOENT);
        if (check_failures != before)
                fprintf(stderr, "  ... after hostile case: %s\n", what);
}

static void test_entry_types(enum tb_filter f, const char *mt)
{
        fresh_dest();
        struct tb t;
        tb_init(&t, f);
        tb_add(&t, "./", AE_IFDIR, 0755, NULL, 0, NULL, NULL, 0, 0, 5, 0, NULL);
        tb_add(&t, "etc/", AE_IFDIR, 0750, NULL, 0, NULL, NULL, 0, 42, 1000000, 0, NULL);
        tb_add(&t, "etc/hello", AE_IFREG, 04755, "hello\n", 6, NULL, NULL, 1000, 1001, 12345, 0, NULL);
        tb_symlink(&t, "etc/link", "hello");
        tb_add(&t, "etc/abs", AE_IFLNK, 0777, NULL, 0, "/nowhere/at/all", NULL, 7, 8, 2000, 0, NULL);
        tb_hardlink(&t, "etc/hard", "etc/hello");
        static const unsigned char cap[20] = {0x01, 0x00, 0x00, 0x02,
                                              0x00, 0x20, 0x00, 0x00}; /* v2, cap_net_raw */
        char capstr[21];
        memcpy(capstr, cap, 20);
        capstr[20] = 0;
        const char *const xa[] = {"trusted.corral",           "yes", "user.note", "hi",
                                  "trusted.overlay.redirect", "/x",  NULL};
        tb_add(&t, "bin/ping", AE_IFREG, 0755, "ELF", 3, NULL, NULL, 0, 0, 777, 0, xa);
        tb_add(&t, "dev/null", AE_IFCHR, 0666, NULL, 0, NULL, NULL, 0, 0, 1, makedev(1, 3), NULL);
        tb_add(&t, "dev/sda", AE_IFBLK, 0660, NULL, 0, NULL, NULL, 0, 6, 1, makedev(8, 0), NULL);
        tb_add(&t, "run/fifo", AE_IFIFO, 0620, NULL, 0, NULL, NULL, 0, 0, 1, 0, NULL);
        tb_add(&t, "tmp", AE_IFDIR, 01777, NULL, 0, NULL, NULL, 0, 0, 99, 0, NULL);
        tb_add(&t, "sgid", AE_IFREG, 02711, "x", 1, NULL, NULL, 0, 50, 1, 0, NULL);
        /* a long name goes through a pax header */
        char longname[300];
        snprintf(longname, sizeof(longname), "deep/%0200d/file", 0);
        tb_file(&t, longname, "long", 0644);
        tb_file(&t, "utf8/\xc3\xa9t\xc3\xa9.txt", "ete", 0644);
        size_t len;
        cleanup_free char *tar = tb_finish(&t, &len);

        struct img_unpack_stats st;
        cleanup_err struct err e = ERR_INIT;
        int r = unpack(tar, len, mt, &st, &e);
        CHECK(r == 0);
        if (r < 0)
                fprintf(stderr, "unpack: %s\n", e.msg);

        struct stat s;
        cleanup_free char *p = NULL;
#define P(rel) (free(p), p = path_join(dest, rel))
        CHECK(lstat(P("etc"), &s) == 0 && S_ISDIR(s.st_mode) && (s.st_mode & 07777) == 0750 &&
              s.st_gid == 42);
        CHECK(s.st_mtime == 1000000); /* set after its contents were created */
        CHECK(lstat(P("etc/hello"), &s) == 0 && S_ISREG(s.st_mode) && (s.st_mode & 07777) == 04755);
        CHECK(s.st_uid == 1000 && s.st_gid == 1001 && s.st_mtime == 12345 && s.st_size == 6 &&
              s.st_nlink == 2);
        ino_t hello_ino = s.st_ino;
        cleanup_free char *hello = rd("etc/hello");
        CHECK_STR(hello, "hello\n");
        CHECK(lstat(P("etc/hard"), &s) == 0 && s.st_ino == hello_ino);
        char lbuf[64] = {0};
        CHECK(readlink(P("etc/link"), lbuf, sizeof(lbuf) - 1) == 5 && !strcmp(lbuf, "hello"));
        memset(lbuf, 0, sizeof(lbuf));
        CHECK(readlink(P("etc/abs"), lbuf, sizeof(lbuf) - 1) > 0 && !strcmp(lbuf, "/nowhere/at/all"));
        CHECK(lstat(P("etc/abs"), &s) == 0 && s.st_uid == 7 && s.st_gid == 8 && s.st_mtime == 2000);
        char xv[64] = {0};
        CHECK(getxattr(P("bin/ping"), "trusted.corral", xv, sizeof(xv)) == 3 && !strcmp(xv, "yes"));
        memset(xv, 0, sizeof(xv));
        CHECK(getxattr(P("bin/ping"), "user.note", xv, sizeof(xv)) == 2 && !strcmp(xv, "hi"));
        CHECK(getxattr(P("bin/ping"), "trusted.overlay.redirect", xv, sizeof(xv)) < 0); /* dropped */
        CHECK(lstat(P("bin/ping"), &s) == 0 && s.st_mtime == 777);
        CHECK(lstat(P("dev/null"), &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == makedev(1, 3) &&
              (s.st_mode & 07777) == 0666);
        CHECK(lstat(P("dev/sda"), &s) == 0 && S_ISBLK(s.st_mode) && s.st_rdev == makedev(8, 0) &&
              s.st_gid == 6);
        CHECK(lstat(P("run/fifo"), &s) == 0 && S_ISFIFO(s.st_mode) && (s.st_mode & 07777) == 0620);
        CHECK(lstat(P("run"), &s) == 0 && S_ISDIR(s.st_mode) &&
              (s.st_mode & 07777) == 0755); /* implied parent */
        CHECK(lstat(P("tmp"), &s) == 0 && (s.st_mode & 07777) == 01777 && s.st_mtime == 99);
        CHECK(lstat(P("sgid"), &s) == 0 && (s.st_mode & 07777) == 02711 && s.st_gid == 50);
        cleanup_free char *lng = rd(longname);
        CHECK_STR(lng, "long");
        cleanup_free char *utf = rd("utf8/\xc3\xa9t\xc3\xa9.txt");
        CHECK_STR(utf, "ete");
        CHECK(st.bytes == 6 + 3 + 1 + 4 + 3);
        CHECK(st.files >= 14);
#undef P
}

static void test_utf8_pax(void)
{
        fresh_dest();
        struct sbuf b = {0};
        tb_raw_pax_file(&b, "caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt", "utf");
        tb_raw_end(&b);
        cleanup_err struct err e = ERR_INIT;
        int r = unpack(b.buf, b.len, NULL, NULL, &e);
        CHECK(r == 0);
        if (r < 0)
                fprintf(stderr, "utf8 pax: %s\n", e.msg);
        cleanup_free char *got = rd("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac.txt");
        CHECK_STR(got, "utf");
        sbuf_free(&b);
}

static void test_capability(void)
{
        /* security.capability v2: magic 0x02000000 | effective, permitted = cap_net_raw (13) */
        fresh_dest();
        unsigned char cap[20] = {0};
        uint32_t magic = 0x02000001, perm = 1u << 13;
        memcpy(cap, &magic, 4);
        memcpy(cap + 4, &perm, 4);
        struct tb t;
        tb_init(&t, TB_NONE);
        struct archive_entry *en = archive_entry_new();
        archive_entry_set_pathname(en, "ping");
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_perm(en, 0755);
        archive_entry_set_uid(en, 0);
        archive_entry_set_size(en, 1);
        archive_entry_xattr_add_entry(en, "security.capability", cap, sizeof(cap));
        CHECK(archive_write_header(t.a, en) == ARCHIVE_OK);
        CHECK(archive_write_data(t.a, "p", 1) == 1);
        archive_entry_free(en);
        size_t len;
        cleanup_free char *tar = tb_finish(&t, &len);
        cleanup_err struct err e = ERR_INIT;
        CHECK(unpack(tar, len, NULL, NULL, &e) == 0);
        cleanup_free char *p = path_join(dest, "ping");
        unsigned char got[32];
        CHECK(getxattr(p, "security.capability", got, sizeof(got)) == 20 && !memcmp(got, cap, 20));
}

static void test_whiteouts(void)
{
        fresh_dest();
        struct tb t;
        tb_init(&t, TB_GZIP);
        tb_dir(&t, "a", 0755);
        tb_file(&t, "a/.wh.gone", "", 0644);
        tb_file(&t, ".wh.topgone", "", 0644);
        tb_file(&t, "opq/.wh..wh..opq", "", 0644);
        tb_file(&t, "opq/new", "n", 0644);
        tb_file(&t, ".wh..wh.plnk/123", "aufs", 0644); /* aufs metadata: skipped */
        tb_file(&t, "b/same", "x", 0644);
        tb_file(&t, "b/.wh.same", "", 0644); /* replaces what this layer wrote */
        size_t len;
        cleanup_free char *tar = tb_finish(&t, &len);
        struct img_unpack_stats st;
        cleanup_err struct err e = ERR_INIT;
        CHECK(unpack(tar, len, "application/vnd.oci.image.layer.v1.tar+gzip", &st, &e) == 0);
        struct stat s;
        cleanup_free char *p1 = path_join(dest, "a/gone"), *p2 = path_join(dest, "topgone"),
                          *p3 = path_join(dest, "opq"), *p4 = path_join(dest, "b/same");
        CHECK(lstat(p1, &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == makedev(0, 0));
        CHECK(lstat(p2, &s) == 0 && S_ISCHR(s.st_mode) && s.st_rdev == makedev(0, 0));
        CHECK(lstat(p4, &s) == 0 && S_ISCHR(s.st_mode));
        char v[4] = {0};
        CHECK(getxattr(p3, "trusted.overlay.opaque", v, sizeof(v)) == 1 && v[0] == 'y');
        CHECK(!exists_in_dest("a/.wh.gone") && !exists_in_dest("opq/.wh..wh..opq"));
        CHECK(!exists_in_dest(".wh..wh.plnk"));
        CHECK(st.whiteouts == 4 && st.skipped == 1);
}

static void test_replace(void)
{
        fresh_dest();
        struct tb t;
        tb_init(&t, TB_NONE);
        tb_file(&t, "x", "file", 0644);
        tb_dir(&t, "x", 0700); /* a dir replaces the file */
        tb_file(&t, "x/in", "in", 0644);
        tb_dir(&t, "y", 0755);
        tb_file(&t, "y/z", "z", 0644);
        tb_file(&t, "y", "now a file", 0600); /* a file replaces the tree */
        tb_dir(&t, "k", 0711);
        tb_file(&t, "k/keep", "k", 0644);
        tb_dir(&t, "k", 0755); /* a dir over a dir keeps the contents */
        size_t len;
        cleanup_free char *tar = tb_finish(&t, &len);
        cleanup_err struct err e = ERR_INIT;
        CHECK(unpack(tar, len, "application/vnd.docker.image.rootfs.diff.tar", NULL, &e) == 0);
        cleanup_free char *in = rd("x/in"), *y = rd("y"), *k = rd("k/keep");
        CHECK_STR(in, "in");
        CHECK_STR(y, "now a file");
        CHECK_STR(k, "k");
}

static void test_formats(void)
{
        /* the same layer in each compression, by blob file, with matching
         * and mismatching media types (the magic bytes decide) */
        static const struct {
                enum tb_filter f;
                const char *mt;
        } cases[] = {
                {TB_NONE, "application/vnd.oci.image.layer.v1.tar"},
                {TB_GZIP, "application/vnd.docker.image.rootfs.diff.tar.gzip"},
                {TB_ZSTD, "application/vnd.oci.image.layer.v1.tar+zstd"},
                {TB_GZIP, "application/vnd.oci.image.layer.v1.tar"},      /* mislabelled */
                {TB_NONE, "application/vnd.oci.image.layer.v1.tar+gzip"}, /* mislabelled */
                {TB_ZSTD, NULL},
        };
        for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
                fresh_dest();
                struct tb t;
                tb_init(&t, cases[i].f);
                char big[200000];
                for (size_t j = 0; j < sizeof(big); j++)
                        big[j] = (char)('a' + (j * 7) % 26);
                tb_add(&t, "big", AE_IFREG, 0644, big, sizeof(big), NULL, NULL, 0, 0, 1, 0, NULL);
                tb_file(&t, "d/small", "s", 0644);
                size_t len;
                cleanup_free char *tar = tb_finish(&t, &len);
                cleanup_free char *blob = path_join(tmp, "blob");
                struct err e = ERR_INIT;
                CHECK(file_write_atomic(blob, tar, len, 0600, &e) == 0);
                struct img_unpack_stats st;
                int r = img_unpack_layer(blob, cases[i].mt, dest, &st, &e);
                CHECK(r == 0);
                if (r < 0)
                        fprintf(stderr, "case %zu: %s\n", i, e.msg);
                unlink(blob);
                cleanup_free char *got = rd("big");
                CHECK(got && memcmp(got, big, sizeof(big)) == 0);
                CHECK(st.bytes == sizeof(big) + 1);
                err_clear(&e);
        }

        /* media types that are not layers, and encrypted ones */
        cleanup_err struct err e = ERR_INIT;
        char zeros[1024] = {0};
        CHECK(unpack(zeros, sizeof(zeros), "application/vnd.oci.image.config.v1+json", NULL, &e) < 0 &&
              e.kind == ERR_INVALID);
        CHECK(unpack(zeros, sizeof(zeros), "application/vnd.oci.image.layer.v1.tar+gzip+encrypted", NULL,
                     &e) < 0 &&
              e.kind == ERR_UNIMPLEMENTED);
        /* an empty tar and an empty blob are empty layers */
        fresh_dest();
        CHECK(unpack(zeros, sizeof(zeros), NULL, NULL, &e) == 0);
        CHECK(unpack("", 0, NULL, NULL, &e) == 0);
        /* not a tar, truncated gzip, truncated tar data, bzip2 */
        CHECK(unpack("this is not a tar archive, not at all, no no no", 47, NULL, NULL, &e) < 0 &&
              e.kind == ERR_INVALID);
        struct tb t;
        tb_init(&t, TB_GZIP);
        char big[100000];
        memset(big, 'q', sizeof(big));
        tb_add(&t, "f", AE_IFREG, 0644, big, sizeof(big), NULL, NULL, 0, 0, 1, 0, NULL);
        size_t len;
        cleanup_free char *gz = tb_finish(&t, &len);
        fresh_dest();
        int r = unpack(gz, len / 2, NULL, NULL, &e);
        CHECK(r < 0 && e.kind == ERR_INVALID);
        if (!(r < 0 && e.kind == ERR_INVALID))
                fprintf(stderr, "truncated gzip (%zu of %zu bytes): r=%d %s\n", len / 2, len, r, e.msg);
        tb_init(&t, TB_NONE);
        tb_add(&t, "f", AE_IFREG, 0644, big, sizeof(big), NULL, NULL, 0, 0, 1, 0, NULL);
        cleanup_free char *raw = tb_finish(&t, &len);
        fresh_dest();
        CHECK(unpack(raw, 4096, NULL, NULL, &e) < 0 && e.kind == ERR_INVALID);
        if (e.msg)
                CHECK(strstr(e.msg, "\"f\"") != NULL); /* names the entry */
        CHECK(unpack("BZh91AY&SY", 10, NULL, NULL, &e) < 0 && e.kind == ERR_INVALID);
}

/* One hostile layer: it must be refused (ERR_INVALID naming the entry) or
 * land inside; either way nothing outside changes. */
static void hostile(const char *what, bool must_refuse, void (*build)(struct tb *))
{
        fresh_dest();
        struct tb t;
        tb_init(&t, TB_NONE);
        build(&t);
        size_t len;
        cleanup_free char *tar = tb_finish(&t, &len);
        cleanup_err struct err e = ERR_INIT;
        int r = unpack(tar, len, NULL, NULL, &e);
        if (must_refuse) {
                CHECK(r < 0 && e.kind == ERR_INVALID && e.msg && strstr(e.msg, "layer entry \"") != NULL);
                if (r == 0)
                        fprintf(stderr, "  ... %s was not refused\n", what);
        }
        if (r < 0 && e.kind != ERR_INVALID)
                fprintf(stderr, "  ... %s: unexpected error kind: %s\n", what, e.msg);
        CHECK(r == 0 || e.kind == ERR_INVALID);
        check_outside_untouched(what);
}

static char canary_abs_file[400];

static void h_dotdot(struct tb *t)
{
        tb_file(t, "../../canary/secret", "pwned", 0644);
}
static void h_dotdot_mid(struct tb *t)
{
        tb_file(t, "a/../../canary/x", "pwned", 0644);
}
static void h_dotdot_dir(struct tb *t)
{
        tb_dir(t, "..", 0777);
}
static void h_abs(struct tb *t)
{
        cleanup_free char *n = path_join("/etc", host_etc_name);
        tb_file(t, n, "inside", 0644);
        tb_file(t, canary_abs_file, "inside too", 0644);
}
static void h_abs_symlink_dir(struct tb *t)
{
        tb_symlink(t, "evil", "/etc");
        tb_dir(t, "etc", 0755);
        cleanup_free char *n = path_join("evil", host_etc_name);
        tb_file(t, n, "pwned", 0644);
}
static void h_abs_symlink_canary(struct tb *t)
{
        tb_symlink(t, "evil", canary);
        tb_file(t, "evil/secret", "pwned", 0644);
}
static void h_rel_symlink(struct tb *t)
{
        tb_symlink(t, "esc", "../../../../../../canary");
        tb_file(t, "esc/secret", "pwned", 0644);
        tb_file(t, "esc/new", "pwned", 0644);
}
static void h_rel_symlink_chain(struct tb *t)
{
        tb_dir(t, "d", 0755);
        tb_symlink(t, "d/up", "..");
        tb_symlink(t, "d/up2", "up/d/up/../..");
        tb_file(t, "d/up2/canary/secret", "pwned", 0644);
}
static void h_last_component_symlink(struct tb *t)
{
        /* a file over a symlink replaces the link, never writes through it */
        tb_symlink(t, "s", canary_abs_file);
        tb_file(t, "s", "pwned", 0644);
        tb_symlink(t, "d", canary);
        tb_dir(t, "d", 0777); /* must not chmod the canary */
}
static void h_hardlink_dotdot(struct tb *t)
{
        tb_hardlink(t, "hl", "../canary/secret");
}
static void h_hardlink_abs(struct tb *t)
{
        cleanup_free char *tgt = path_join(canary, "secret");
        tb_hardlink(t, "hl", tgt);
}
static void h_hardlink_via_symlink(struct tb *t)
{
        tb_symlink(t, "s", canary);
        tb_hardlink(t, "hl", "s/secret");
}
static void h_hardlink_rel_symlink(struct tb *t)
{
        tb_symlink(t, "s", "../../../../../../");
        tb_hardlink(t, "hl", "s/canary/secret");
}
static void h_whiteout_dotdot(struct tb *t)
{
        tb_file(t, "../.wh.x", "", 0644);
}
static void h_whiteout_dots(struct tb *t)
{
        tb_file(t, "a/.wh..", "", 0644);
}
static void h_whiteout_via_symlink(struct tb *t)
{
        tb_symlink(t, "s", canary);
        tb_file(t, "s/.wh.secret", "", 0644);
        tb_file(t, "s/.wh..wh..opq", "", 0644);
}
static void h_node_via_symlink(struct tb *t)
{
        tb_symlink(t, "s", canary);
        tb_add(t, "s/secret", AE_IFCHR, 0666, NULL, 0, NULL, NULL, 0, 0, 1, makedev(1, 3), NULL);
}
static void h_symlink_replace_parent(struct tb *t)
{
        /* a directory is replaced by a symlink after files were written in it:
         * later entries must follow the new link inside, not a stale fd */
        tb_dir(t, "d", 0755);
        tb_file(t, "d/a", "a", 0644);
        tb_symlink(t, "d", canary);
        tb_file(t, "d/b", "b", 0644);
}
static void h_xattr_via_symlink(struct tb *t)
{
        const char *const xa[] = {"trusted.overlay.opaque", "y", "trusted.x", "y", NULL};
        tb_symlink(t, "s", canary);
        tb_add(t, "s", AE_IFDIR, 0700, NULL, 0, NULL, NULL, 0, 0, 1, 0, xa);
}
static void h_root_file(struct tb *t)
{
        tb_file(t, "./", "x", 0644);
}
static void h_big_uid(struct tb *t)
{
        tb_add(t, "u", AE_IFREG, 0644, "", 0, NULL, NULL, 4294967295u, 0, 1, 0, NULL);
}

static void test_hostile(void)
{
        hostile("../../canary/secret", true, h_dotdot);
        hostile("a/../../canary/x", true, h_dotdot_mid);
        hostile("dir ..", true, h_dotdot_dir);
        hostile("absolute names", false, h_abs);
        {
                cleanup_free char *n = path_join("etc", host_etc_name);
                cleanup_free char *in = rd(n);
                CHECK_STR(in, "inside");
                cleanup_free char *c = rd(canary_abs_file);
                CHECK_STR(c, "inside too");
        }
        hostile("evil -> /etc, evil/name", false, h_abs_symlink_dir);
        {
                cleanup_free char *n = path_join("etc", host_etc_name);
                cleanup_free char *in = rd(n);
                CHECK_STR(in, "pwned"); /* landed in dest/etc */
        }
        hostile("evil -> canary, evil/secret", false, h_abs_symlink_canary);
        hostile("esc -> ../../.., esc/secret", false, h_rel_symlink);
        hostile("symlink chain with ..", false, h_rel_symlink_chain);
        hostile("file and dir over symlinks", false, h_last_component_symlink);
        {
                struct stat s;
                cleanup_free char *p = path_join(dest, "s");
                CHECK(lstat(p, &s) == 0 && S_ISREG(s.st_mode));
                free(p);
                p = path_join(dest, "d");
                CHECK(lstat(p, &s) == 0 && S_ISDIR(s.st_mode) && (s.st_mode & 07777) == 0777);
        }
        hostile("hardlink ../canary/secret", true, h_hardlink_dotdot);
        hostile("hardlink /abs/canary/secret", true, h_hardlink_abs);
        hostile("hardlink through abs symlink", true, h_hardlink_via_symlink);
        hostile("hardlink through rel symlink", true, h_hardlink_rel_symlink);
        hostile("whiteout ../.wh.x", true, h_whiteout_dotdot);
        hostile("whiteout .wh..", true, h_whiteout_dots);
        hostile("whiteout through symlink", false, h_whiteout_via_symlink);
        hostile("device through symlink", false, h_node_via_symlink);
        hostile("dir replaced by symlink", false, h_symlink_replace_parent);
        hostile("xattr on dir over symlink", false, h_xattr_via_symlink);
        hostile("file named ./", true, h_root_file);
        hostile("uid 2^32-1", true, h_big_uid);
}

int main(void)
{
        if (geteuid() != 0)
                SKIP("unpack tests need root (mknod, chown, trusted xattrs)");
        snprintf(tmp, sizeof(tmp), "/var/tmp/corral-unpack-XXXXXX");
        if (mkdtemp(tmp) == NULL)
                SKIP("mkdtemp: %s", strerror(errno));
        snprintf(dest, sizeof(dest), "%s/dest", tmp);
        snprintf(canary, sizeof(canary), "%s/canary", tmp);
        snprintf(canary_abs_file, sizeof(canary_abs_file), "%s/secret", canary);
        snprintf(host_etc_name, sizeof(host_etc_name), "corral-unpack-test-%d", (int)getpid());
        CHECK(mkdir(dest, 0755) == 0);
        CHECK(mkdir(canary, 0700) == 0);
        struct err e = ERR_INIT;
        CHECK(file_write_atomic(canary_abs_file, "s3cret", 6, 0600, &e) == 0);
        if (setxattr(dest, "trusted.corral-probe", "1", 1, 0) < 0)
                SKIP("no trusted xattrs on %s: %s", tmp, strerror(errno));

        for (int pass = 0; pass < 2; pass++) {
                /* pass 1: as on kernels without openat2 */
                img_unpack_force_manual_walk(pass == 1);
                test_entry_types(TB_NONE, NULL);
                test_entry_types(TB_GZIP, "application/vnd.oci.image.layer.v1.tar+gzip");
                test_entry_types(TB_ZSTD, "application/vnd.oci.image.layer.v1.tar+zstd");
                test_capability();
                test_utf8_pax();
                test_whiteouts();
                test_replace();
                test_hostile();
        }
        img_unpack_force_manual_walk(false);
        test_formats();

        CHECK(rm_rf(tmp, &e) == 0);
        return check_report("test_image_unpack");
}
