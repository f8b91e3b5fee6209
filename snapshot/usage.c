/* snapshot: disk usage of a snapshot's own files, as `du` counts it. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "snapshot/snapshot-internal.h"

/* Inodes with more than one link, to count each once: open addressing on
 * the inode number (one filesystem, so st_dev is the same for all). */
struct inoset {
        ino_t *v; /* 0 = empty slot */
        size_t n, cap;
};

static bool inoset_add(struct inoset *s, ino_t ino)
{
        if (ino == 0)
                ino = (ino_t)-1;
        if (2 * (s->n + 1) > s->cap) {
                size_t cap = s->cap ? s->cap * 2 : 1024;
                ino_t *v = xcalloc(cap, sizeof(*v));
                for (size_t i = 0; i < s->cap; i++) {
                        if (s->v[i] == 0)
                                continue;
                        size_t j = (size_t)s->v[i] * 0x9e3779b97f4a7c15ULL % cap;
                        while (v[j])
                                j = (j + 1) % cap;
                        v[j] = s->v[i];
                }
                free(s->v);
                s->v = v;
                s->cap = cap;
        }
        size_t j = (size_t)ino * 0x9e3779b97f4a7c15ULL % s->cap;
        while (s->v[j]) {
                if (s->v[j] == ino)
                        return false;
                j = (j + 1) % s->cap;
        }
        s->v[j] = ino;
        s->n++;
        return true;
}

struct du {
        dev_t dev;
        uint64_t bytes, inodes;
        struct inoset links;
        struct err *e;
};

static void count(struct du *d, const struct stat *st)
{
        if (!S_ISDIR(st->st_mode) && st->st_nlink > 1 && !inoset_add(&d->links, st->st_ino))
                return;
        d->bytes += (uint64_t)st->st_blocks * 512;
        d->inodes++;
}

static int du_dir(struct du *d, int dfd, const char *path)
{
        cleanup_dir DIR *dir = fdopendir(dfd);
        if (dir == NULL) {
                close(dfd);
                return err_make(d->e, errno, "usage: open %s", path);
        }
        struct dirent *de;
        errno = 0;
        while ((de = readdir(dir)) != NULL) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                struct stat st;
                if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        if (errno == ENOENT) /* removed while we walk */
                                continue;
                        return err_make(d->e, errno, "usage: stat %s/%s", path, de->d_name);
                }
                if (st.st_dev != d->dev)
                        continue; /* a mount point inside: not ours */
                count(d, &st);
                if (!S_ISDIR(st.st_mode))
                        continue;
                int fd = openat(dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0) {
                        if (errno == ENOENT)
                                continue;
                        return err_make(d->e, errno, "usage: open %s/%s", path, de->d_name);
                }
                cleanup_free char *sub = path_join(path, de->d_name);
                if (du_dir(d, fd, sub) < 0)
                        return -1;
        }
        return 0;
}

int snap_du(const char *path, uint64_t *bytes, uint64_t *inodes, struct err *e)
{
        *bytes = *inodes = 0;
        int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "usage: open %s", path);
        struct stat st;
        if (fstat(fd, &st) < 0) {
                close(fd);
                return err_make(e, errno, "usage: stat %s", path);
        }
        struct du d = {.dev = st.st_dev, .e = e};
        count(&d, &st);
        int r = du_dir(&d, fd, path);
        free(d.links.v);
        if (r < 0)
                return -1;
        *bytes = d.bytes;
        *inodes = d.inodes;
        return 0;
}
