/* The content store: blobs by sha256 at <root>/blobs/sha256/<hex>.
 *
 * A blob is written to <hex>.partial while it streams, hashed as it goes,
 * and renamed into place only when its size and digest match. A partial file
 * survives an interrupted download and is resumed: its bytes are re-read to
 * rebuild the hash state. An exclusive flock on the partial file keeps two
 * downloads of one blob (two pulls sharing a layer) from interleaving. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

#include "image/image-internal.h"
#include "image/image.h"

struct img_content {
        char *dir; /* <root>/blobs/sha256 */
};

struct img_content_writer {
        struct img_content *c;
        char *digest;
        char *partial;
        char *final;
        int fd;
        EVP_MD_CTX *md;
        uint64_t off;
        int64_t size;
};

int img_content_open(const char *root, struct img_content **out, struct err *e)
{
        cleanup_free char *dir = xasprintf("%s/blobs/sha256", root);
        if (mkdir_p(dir, 0700, e) < 0)
                return err_wrap(e, "content store");
        struct img_content *c = xzalloc(sizeof(*c));
        c->dir = steal_ptr(&dir);
        *out = c;
        return 0;
}

void img_content_free(struct img_content *c)
{
        if (!c)
                return;
        free(c->dir);
        free(c);
}

char *img_content_path(const struct img_content *c, const char *digest)
{
        const char *hex = str_has_prefix(digest, "sha256:") ? digest + 7 : digest;
        return xasprintf("%s/%s", c->dir, hex);
}

bool img_content_has(const struct img_content *c, const char *digest)
{
        if (!img_digest_valid(digest))
                return false;
        cleanup_free char *p = img_content_path(c, digest);
        return access(p, F_OK) == 0;
}

int img_content_adopt(struct img_content *c, const char *digest, const char *path, struct err *e)
{
        if (!img_digest_valid(digest))
                return err_set(e, ERR_INVALID, "bad digest \"%s\"", digest);
        cleanup_free char *p = img_content_path(c, digest);
        /* a hard link: the staging file goes with its directory, the blob stays */
        if (link(path, p) < 0 && errno != EEXIST)
                return err_make(e, errno, "store blob %s", digest);
        return 0;
}

int img_content_delete(struct img_content *c, const char *digest, struct err *e)
{
        if (!img_digest_valid(digest))
                return err_set(e, ERR_INVALID, "bad digest \"%s\"", digest);
        cleanup_free char *p = img_content_path(c, digest);
        if (unlink(p) < 0 && errno != ENOENT)
                return err_make(e, errno, "remove blob %s", digest);
        return 0;
}

static char *hex_digest(EVP_MD_CTX *md)
{
        unsigned char buf[EVP_MAX_MD_SIZE];
        unsigned int n = 0;
        EVP_MD_CTX *copy = EVP_MD_CTX_new();
        if (!copy || !EVP_MD_CTX_copy_ex(copy, md) || !EVP_DigestFinal_ex(copy, buf, &n))
                abort();
        EVP_MD_CTX_free(copy);
        return img_digest_hex(buf, n);
}

static void md_restart(EVP_MD_CTX *md)
{
        if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL))
                abort();
}

void img_content_writer_free(struct img_content_writer *w, bool discard)
{
        if (!w)
                return;
        if (discard && w->partial)
                (void)unlink(w->partial);
        if (w->fd >= 0)
                close(w->fd); /* drops the flock */
        EVP_MD_CTX_free(w->md);
        free(w->digest);
        free(w->partial);
        free(w->final);
        free(w);
}

int img_content_writer_open(struct img_content *c, const char *digest, int64_t size,
                            struct img_content_writer **out, struct err *e)
{
        if (!img_digest_valid(digest))
                return err_set(e, ERR_INVALID, "bad digest \"%s\"", digest);
        struct img_content_writer *w = xzalloc(sizeof(*w));
        w->c = c;
        w->fd = -1;
        w->digest = xstrdup(digest);
        w->size = size;
        w->final = img_content_path(c, digest);
        w->partial = xasprintf("%s.partial", w->final);
        w->md = EVP_MD_CTX_new();
        if (!w->md)
                abort();
        md_restart(w->md);

        w->fd = open(w->partial, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (w->fd < 0) {
                err_make(e, errno, "open %s", w->partial);
                goto fail;
        }
        while (flock(w->fd, LOCK_EX) < 0) {
                if (errno != EINTR) {
                        err_make(e, errno, "lock %s", w->partial);
                        goto fail;
                }
        }
        /* Another writer may have finished (and renamed) while we waited:
         * our fd then points at an unlinked file. Start from the path again. */
        struct stat st_fd, st_path;
        if (fstat(w->fd, &st_fd) < 0) {
                err_make(e, errno, "stat %s", w->partial);
                goto fail;
        }
        if (stat(w->partial, &st_path) < 0 || st_path.st_ino != st_fd.st_ino) {
                close(w->fd);
                w->fd = -1;
                if (access(w->final, F_OK) == 0) {
                        /* complete: a writer with nothing to do */
                        w->off = size >= 0 ? (uint64_t)size : 0;
                        free(w->partial);
                        w->partial = NULL;
                        *out = w;
                        return 1;
                }
                img_content_writer_free(w, false);
                return img_content_writer_open(c, digest, size, out, e);
        }
        if (size >= 0 && st_fd.st_size > size) {
                if (ftruncate(w->fd, 0) < 0) {
                        err_make(e, errno, "truncate %s", w->partial);
                        goto fail;
                }
                st_fd.st_size = 0;
        }
        /* Resume: rebuild the hash state from what is already there. */
        char buf[1 << 16];
        uint64_t done = 0;
        while (done < (uint64_t)st_fd.st_size) {
                ssize_t n = pread(w->fd, buf, sizeof(buf), (off_t)done);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        err_make(e, errno, "read %s", w->partial);
                        goto fail;
                }
                if (n == 0)
                        break;
                EVP_DigestUpdate(w->md, buf, (size_t)n);
                done += (uint64_t)n;
        }
        w->off = done;
        if (lseek(w->fd, (off_t)done, SEEK_SET) < 0) {
                err_make(e, errno, "seek %s", w->partial);
                goto fail;
        }
        *out = w;
        return 0;
fail:
        img_content_writer_free(w, false);
        return -1;
}

uint64_t img_content_writer_offset(const struct img_content_writer *w)
{
        return w->off;
}

int img_content_writer_write(struct img_content_writer *w, const void *buf, size_t n, struct err *e)
{
        if (w->fd < 0)
                return 0; /* already complete */
        if (w->size >= 0 && w->off + n > (uint64_t)w->size)
                return err_set(e, ERR_DATA_LOSS, "blob %s: more data than its size %" PRId64 " bytes",
                               w->digest, w->size);
        if (fd_write_all(w->fd, buf, n) < 0)
                return err_make(e, errno, "write %s", w->partial);
        EVP_DigestUpdate(w->md, buf, n);
        w->off += n;
        return 0;
}

int img_content_writer_reset(struct img_content_writer *w, struct err *e)
{
        if (w->fd < 0)
                return 0;
        if (ftruncate(w->fd, 0) < 0 || lseek(w->fd, 0, SEEK_SET) < 0)
                return err_make(e, errno, "truncate %s", w->partial);
        md_restart(w->md);
        w->off = 0;
        return 0;
}

int img_content_writer_commit(struct img_content_writer *w, struct err *e)
{
        if (w->fd < 0)
                return 0; /* someone else completed it */
        uint64_t got_bytes = w->off;
        if (w->size >= 0 && got_bytes != (uint64_t)w->size) {
                (void)unlink(w->partial);
                (void)img_content_writer_reset(w, NULL);
                return err_set(e, ERR_DATA_LOSS,
                               "blob %s is truncated: got %" PRIu64 " bytes, expected %" PRId64, w->digest,
                               got_bytes, w->size);
        }
        cleanup_free char *got = hex_digest(w->md);
        if (strcmp(got, w->digest) != 0) {
                (void)unlink(w->partial);
                (void)img_content_writer_reset(w, NULL);
                return err_set(e, ERR_DATA_LOSS,
                               "blob %s does not match its digest: got %s (%" PRIu64 " bytes)", w->digest,
                               got, got_bytes);
        }
        if (fsync(w->fd) < 0)
                return err_make(e, errno, "fsync %s", w->partial);
        if (rename(w->partial, w->final) < 0)
                return err_make(e, errno, "rename %s", w->partial);
        free(w->partial);
        w->partial = NULL;
        close(w->fd);
        w->fd = -1;
        return 0;
}

int img_content_put(struct img_content *c, const char *digest, const void *buf, size_t len, struct err *e)
{
        if (img_content_has(c, digest))
                return 0;
        struct img_content_writer *w = NULL;
        int r = img_content_writer_open(c, digest, (int64_t)len, &w, e);
        if (r < 0)
                return -1;
        if (r == 0 && (img_content_writer_reset(w, e) < 0 || img_content_writer_write(w, buf, len, e) < 0 ||
                       img_content_writer_commit(w, e) < 0)) {
                img_content_writer_free(w, true);
                return -1;
        }
        img_content_writer_free(w, false);
        return 0;
}
