/* Test helper: build tar layers in memory with libarchive's write API.
 * Names are written verbatim (libarchive's writer does not sanitise), so
 * hostile layers can be built too. */
#ifndef CORRAL_TESTS_TARBUILD_H
#define CORRAL_TESTS_TARBUILD_H

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

enum tb_filter { TB_NONE, TB_GZIP, TB_ZSTD };

struct tb {
        struct archive *a;
        struct sbuf out;
};

static la_ssize_t tb_write_cb(struct archive *a, void *cd, const void *buf, size_t n)
{
        (void)a;
        sbuf_append(cd, buf, n);
        return (la_ssize_t)n;
}

static inline void tb_init(struct tb *t, enum tb_filter f)
{
        memset(t, 0, sizeof(*t));
        t->a = archive_write_new();
        archive_write_set_format_pax_restricted(t->a);
        if (f == TB_GZIP)
                archive_write_add_filter_gzip(t->a);
        else if (f == TB_ZSTD)
                archive_write_add_filter_zstd(t->a);
        archive_write_set_bytes_in_last_block(t->a, 1);
        if (archive_write_open(t->a, &t->out, NULL, tb_write_cb, NULL) != ARCHIVE_OK)
                abort();
}

/* Add one entry; xattrs is a NULL-terminated list of name, value pairs. */
static inline void tb_add(struct tb *t, const char *name, mode_t type, mode_t perm, const char *data,
                          size_t len, const char *link, const char *hardlink, unsigned uid, unsigned gid,
                          long mtime, dev_t rdev, const char *const *xattrs)
{
        struct archive_entry *e = archive_entry_new();
        archive_entry_set_pathname(e, name);
        if (hardlink) {
                archive_entry_set_hardlink(e, hardlink);
                archive_entry_set_filetype(e, AE_IFREG);
                archive_entry_set_size(e, 0);
        } else {
                archive_entry_set_filetype(e, type);
                archive_entry_set_size(e, type == AE_IFREG ? (la_int64_t)len : 0);
        }
        archive_entry_set_perm(e, perm);
        if (link)
                archive_entry_set_symlink(e, link);
        archive_entry_set_uid(e, uid);
        archive_entry_set_gid(e, gid);
        archive_entry_set_mtime(e, mtime, 0);
        if (type == AE_IFCHR || type == AE_IFBLK)
                archive_entry_set_rdev(e, rdev);
        for (size_t i = 0; xattrs && xattrs[i]; i += 2)
                archive_entry_xattr_add_entry(e, xattrs[i], xattrs[i + 1], strlen(xattrs[i + 1]));
        /* ARCHIVE_WARN: a name libarchive stores as raw bytes */
        if (archive_write_header(t->a, e) < ARCHIVE_WARN)
                abort();
        if (!hardlink && type == AE_IFREG && len > 0 &&
            archive_write_data(t->a, data, len) != (la_ssize_t)len)
                abort();
        archive_entry_free(e);
}

static inline void tb_file(struct tb *t, const char *name, const char *data, mode_t perm)
{
        tb_add(t, name, AE_IFREG, perm, data, strlen(data), NULL, NULL, 0, 0, 1000000, 0, NULL);
}
static inline void tb_dir(struct tb *t, const char *name, mode_t perm)
{
        tb_add(t, name, AE_IFDIR, perm, NULL, 0, NULL, NULL, 0, 0, 1000000, 0, NULL);
}
static inline void tb_symlink(struct tb *t, const char *name, const char *target)
{
        tb_add(t, name, AE_IFLNK, 0777, NULL, 0, target, NULL, 0, 0, 1000000, 0, NULL);
}
static inline void tb_hardlink(struct tb *t, const char *name, const char *target)
{
        tb_add(t, name, AE_IFREG, 0644, NULL, 0, NULL, target, 0, 0, 1000000, 0, NULL);
}

/* One ustar header block. */
static inline void tb_raw_header(struct sbuf *b, const char *name, char type, size_t size)
{
        unsigned char h[512] = {0};
        snprintf((char *)h, 100, "%s", name);
        memcpy(h + 100, "0000644", 7);
        memcpy(h + 108, "0000000", 7);
        memcpy(h + 116, "0000000", 7);
        /* 11 octal digits: the ustar size field (callers stay far below 8 GiB). */
        snprintf((char *)h + 124, 12, "%011llo", (unsigned long long)size & 077777777777ULL);
        memcpy(h + 136, "00000000001", 11);
        h[156] = (unsigned char)type;
        memcpy(h + 257,
               "ustar\0"
               "00",
               8);
        memset(h + 148, ' ', 8);
        unsigned sum = 0;
        for (int i = 0; i < 512; i++)
                sum += h[i];
        snprintf((char *)h + 148, 8, "%06o", sum);
        sbuf_append(b, h, 512);
}

static inline void tb_raw_pad(struct sbuf *b, size_t n)
{
        static const char zeros[512];
        if (n % 512)
                sbuf_append(b, zeros, 512 - n % 512);
}

/* A regular file whose name comes in a PAX `path` record as UTF-8, as Go's
 * archive/tar (Docker, BuildKit) writes non-ASCII names. */
static inline void tb_raw_pax_file(struct sbuf *b, const char *path, const char *data)
{
        char rec[1024];
        size_t body = strlen(" path=\n") + strlen(path), n = body + 1;
        while (snprintf(NULL, 0, "%zu", n) + body != n)
                n++;
        snprintf(rec, sizeof(rec), "%zu path=%s\n", n, path);
        tb_raw_header(b, "PaxHeaders.0/x", 'x', strlen(rec));
        sbuf_append(b, rec, strlen(rec));
        tb_raw_pad(b, strlen(rec));
        tb_raw_header(b, "placeholder", '0', strlen(data));
        sbuf_append(b, data, strlen(data));
        tb_raw_pad(b, strlen(data));
}

static inline void tb_raw_end(struct sbuf *b)
{
        static const char zeros[1024];
        sbuf_append(b, zeros, sizeof(zeros));
}

/* Finish; returns the bytes (caller frees) and their length. */
static inline char *tb_finish(struct tb *t, size_t *len)
{
        if (archive_write_close(t->a) != ARCHIVE_OK)
                abort();
        archive_write_free(t->a);
        *len = t->out.len;
        return sbuf_steal(&t->out);
}

#endif
