/* Files: whole reads, atomic writes, mkdir -p, rm -rf. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

int fd_write_all(int fd, const void *data, size_t len)
{
        const char *p = data;
        while (len > 0) {
                ssize_t n = write(fd, p, len);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -1;
                }
                p += n;
                len -= (size_t)n;
        }
        return 0;
}

int file_read_all(const char *path, char **out, size_t *len, size_t max, struct err *e)
{
        if (max == 0)
                max = 256u << 20;
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open %s", path);
        struct sbuf b = {0};
        char tmp[16384];
        for (;;) {
                ssize_t n = read(fd, tmp, sizeof(tmp));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        sbuf_free(&b);
                        return err_make(e, errno, "read %s", path);
                }
                if (n == 0)
                        break;
                if (b.len + (size_t)n > max) {
                        sbuf_free(&b);
                        return err_set(e, ERR_EXHAUSTED, "%s is larger than %zu bytes", path, max);
                }
                sbuf_append(&b, tmp, (size_t)n);
        }
        if (len)
                *len = b.len;
        *out = sbuf_steal(&b);
        return 0;
}

int file_write_atomic(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
        cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
        cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return err_make(e, errno, "create %s", tmp);
        if (fd_write_all(fd, data, len) < 0 || fsync(fd) < 0) {
                int saved = errno;
                (void)unlink(tmp);
                return err_make(e, saved, "write %s", tmp);
        }
        if (rename(tmp, path) < 0) {
                int saved = errno;
                (void)unlink(tmp);
                return err_make(e, saved, "rename %s", path);
        }
        cleanup_free char *dcopy = xstrdup(path);
        cleanup_close int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0)
                (void)fsync(dfd);
        return 0;
}

int file_replace(const char *path, const void *data, size_t len, mode_t mode, struct err *e)
{
        cleanup_free char *tmp = xasprintf("%s.tmp.%d", path, (int)gettid());
        cleanup_close int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return err_make(e, errno, "create %s", tmp);
        if (fd_write_all(fd, data, len) < 0 || rename(tmp, path) < 0) {
                int saved = errno;
                (void)unlink(tmp);
                return err_make(e, saved, "write %s", path);
        }
        return 0;
}

/* p's parent, then p; either may exist already. */
static int mkdir_with_parent(char *p, mode_t mode, struct err *e)
{
        char *slash = strrchr(p, '/');
        if (slash && slash != p) {
                *slash = '\0';
                int r = 0;
                if (mkdir(p, mode) < 0 && errno != EEXIST)
                        r = errno == ENOENT ? mkdir_with_parent(p, mode, e)
                                            : err_make(e, errno, "mkdir %s", p);
                *slash = '/';
                if (r < 0)
                        return r;
        }
        if (mkdir(p, mode) < 0 && errno != EEXIST)
                return err_make(e, errno, "mkdir %s", p);
        return 0;
}

/* The whole path first, its parents only when it says ENOENT: the usual
 * call (a pod's or container's directory under existing ones, in each of
 * nine cgroup hierarchies) is one mkdir, not one per component. */
int mkdir_p(const char *path, mode_t mode, struct err *e)
{
        cleanup_free char *p = xstrdup(path);
        size_t n = strlen(p);
        while (n > 1 && p[n - 1] == '/')
                p[--n] = '\0';
        int err = mkdir(p, mode) == 0 ? 0 : errno;
        if (err == 0)
                return 0;
        if (err == ENOENT) {
                if (mkdir_with_parent(p, mode, e) < 0)
                        return -1;
        } else if (err != EEXIST) {
                return err_make(e, err, "mkdir %s", p);
        }
        struct stat st;
        if (stat(path, &st) < 0)
                return err_make(e, errno, "stat %s", path);
        if (!S_ISDIR(st.st_mode))
                return err_set(e, ERR_EXISTS, "%s exists and is not a directory", path);
        return 0;
}

static int rm_rf_at(int dfd, const char *name, dev_t dev, struct err *e)
{
        struct stat st;
        if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : err_make(e, errno, "stat %s", name);
        if (S_ISDIR(st.st_mode)) {
                if (st.st_dev != dev)
                        return err_set(e, ERR_PRECONDITION, "refusing to remove %s: a mount point", name);
                int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return err_make(e, errno, "open %s", name);
                cleanup_dir DIR *d = fdopendir(fd);
                if (d == NULL) {
                        close(fd);
                        return err_make(e, errno, "opendir %s", name);
                }
                struct dirent *de;
                while ((de = readdir(d)) != NULL) {
                        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                                continue;
                        if (rm_rf_at(dirfd(d), de->d_name, dev, e) < 0)
                                return err_wrap(e, "%s", name);
                }
                if (unlinkat(dfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
                        return err_make(e, errno, "rmdir %s", name);
                return 0;
        }
        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT)
                return err_make(e, errno, "unlink %s", name);
        return 0;
}

int rm_rf(const char *path, struct err *e)
{
        struct stat st;
        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : err_make(e, errno, "stat %s", path);
        return rm_rf_at(AT_FDCWD, path, st.st_dev, e);
}

char *path_join(const char *a, const char *b)
{
        size_t la = strlen(a);
        while (*b == '/')
                b++;
        if (la > 0 && a[la - 1] == '/')
                return xasprintf("%s%s", a, b);
        return xasprintf("%s/%s", a, b);
}
