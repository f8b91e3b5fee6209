/* Layer unpack: a tar stream (plain, gzip or zstd) applied to a directory with
 * libarchive's read side and our own, confined, write side. libarchive's
 * archive_write_disk is not used: every write here goes through a dirfd that
 * was resolved inside dest_dir, and the last component is never followed.
 */
#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#include "image/unpack-internal.h"
#include "util/util.h"

#define READ_BLOCK       (1 << 20) /* compressed bytes per read(2) */
#define MAX_SYMLINK_HOPS 40
#define WH_PREFIX        ".wh."
#define WH_META_PREFIX   ".wh..wh."
#define WH_OPAQUE        ".wh..wh..opq"

static bool force_manual_walk;
static int openat2_missing; /* set once the kernel said ENOSYS */

void img_unpack_force_manual_walk(bool on)
{
        force_manual_walk = on;
}

enum compression { COMP_NONE, COMP_GZIP, COMP_ZSTD };

static const char *comp_name(enum compression c)
{
        return c == COMP_GZIP ? "gzip" : c == COMP_ZSTD ? "zstd" : "none";
}

struct dir_time {
        char *path;
        struct timespec ts[2];
};

struct unpack {
        int rootfd;
        struct archive *a;
        struct img_unpack_stats st;
        /* The last parent directory opened, by its clean path: layers list
         * many files per directory, so most entries cost no lookup. */
        char *cache_path;
        int cache_fd;
        struct dir_time *dirs;
        size_t ndirs, capdirs;
        char *entry; /* printable name of the current entry */
        struct err *e;
};

/* ---------- names ---------- */

/* Escaped, bounded copy of a name from the layer for error messages. */
static char *printable(const char *s)
{
        struct sbuf b = {0};
        size_t n = 0;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++, n++) {
                if (n == 256) {
                        sbuf_puts(&b, "...");
                        break;
                }
                if (*p < 0x20 || *p == 0x7f || *p == '"' || *p == '\\')
                        sbuf_printf(&b, "\\x%02x", *p);
                else
                        sbuf_putc(&b, (char)*p);
        }
        char *body = sbuf_steal(&b);
        char *out = xasprintf("\"%s\"", body);
        free(body);
        return out;
}

/* A clean relative path: no empty, "." or leading "/" components ("" is the
 * root). Returns -1 when a component is "..": such names are refused rather
 * than clamped, so a layer cannot even aim outside. */
static int clean_path(const char *name, char **out)
{
        struct sbuf b = {0};
        const char *p = name;
        while (*p) {
                while (*p == '/')
                        p++;
                if (*p == '\0')
                        break;
                const char *s = p;
                while (*p && *p != '/')
                        p++;
                size_t n = (size_t)(p - s);
                if (n == 1 && s[0] == '.')
                        continue;
                if (n == 2 && s[0] == '.' && s[1] == '.') {
                        sbuf_free(&b);
                        return -1;
                }
                if (b.len)
                        sbuf_putc(&b, '/');
                sbuf_append(&b, s, n);
        }
        *out = sbuf_steal(&b);
        return 0;
}

/* Split a clean path in place: *parent is "" for top-level names. */
static void split_path(char *path, const char **parent, const char **base)
{
        char *slash = strrchr(path, '/');
        if (slash == NULL) {
                *parent = "";
                *base = path;
        } else {
                *slash = '\0';
                *parent = path;
                *base = slash + 1;
        }
}

/* ---------- errors ---------- */

static int refuse(struct unpack *u, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(struct unpack *u, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        cleanup_free char *why = xvasprintf(fmt, ap);
        va_end(ap);
        return err_set(u->e, ERR_INVALID, "layer entry %s refused: %s", u->entry ? u->entry : "?", why);
}

/* A failed call while applying an entry. Most failures come from what the
 * layer asks for (a missing link target, a file where a directory should
 * be): those are ERR_INVALID. Host trouble keeps its own kind. */
static int fail_errno(struct unpack *u, int errnum, const char *what)
{
        err_make(u->e, errnum, "layer entry %s: %s", u->entry ? u->entry : "?", what);
        switch (errnum) {
        case ENOSPC:
        case EDQUOT:
                u->e->kind = ERR_EXHAUSTED;
                break;
        case EIO:
        case EROFS:
        case EMFILE:
        case ENFILE:
        case ENOMEM:
        case EBADF:
                break;
        default:
                u->e->kind = ERR_INVALID;
        }
        return -1;
}

/* ---------- confined directory resolution ---------- */

static int openat2_dir(int rootfd, const char *path)
{
        struct open_how how = {
                .flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
                .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
        };
        for (int i = 0; i < 16; i++) {
                /* EAGAIN: a concurrent rename somewhere on the system */
                int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
                if (fd >= 0 || errno != EAGAIN)
                        return fd;
        }
        return -1;
}

/* The same semantics as openat2(RESOLVE_IN_ROOT) by hand, for kernels before
 * 5.6: one component at a time with O_NOFOLLOW; a symlink's target is spliced
 * into the rest of the path, an absolute target restarts at the root, and ".."
 * never climbs above the root. */
static int walk_dir(int rootfd, const char *path)
{
        cleanup_free char *rest = xstrdup(path);
        int *stack = NULL; /* fds of the directories above cur */
        size_t depth = 0, cap = 0;
        int hops = 0, saved;
        int cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -1;
        size_t pos = 0;
        for (;;) {
                while (rest[pos] == '/')
                        pos++;
                if (rest[pos] == '\0')
                        break;
                size_t start = pos;
                while (rest[pos] && rest[pos] != '/')
                        pos++;
                char saved_c = rest[pos];
                rest[pos] = '\0';
                const char *c = rest + start;
                if (strcmp(c, ".") == 0) {
                        rest[pos] = saved_c;
                        continue;
                }
                if (strcmp(c, "..") == 0) {
                        rest[pos] = saved_c;
                        if (depth > 0) {
                                close(cur);
                                cur = stack[--depth];
                        }
                        continue;
                }
                struct stat st;
                if (fstatat(cur, c, &st, AT_SYMLINK_NOFOLLOW) < 0)
                        goto fail;
                if (S_ISLNK(st.st_mode)) {
                        char target[PATH_MAX];
                        if (++hops > MAX_SYMLINK_HOPS) {
                                errno = ELOOP;
                                goto fail;
                        }
                        ssize_t n = readlinkat(cur, c, target, sizeof(target) - 1);
                        if (n < 0)
                                goto fail;
                        target[n] = '\0';
                        rest[pos] = saved_c;
                        char *next = xasprintf("%s/%s", target, rest + pos);
                        free(rest);
                        rest = next;
                        pos = 0;
                        if (target[0] == '/') {
                                while (depth > 0)
                                        close(stack[--depth]);
                                close(cur);
                                cur = fcntl(rootfd, F_DUPFD_CLOEXEC, 3);
                                if (cur < 0)
                                        goto fail_nocur;
                        }
                        continue;
                }
                if (!S_ISDIR(st.st_mode)) {
                        errno = ENOTDIR;
                        goto fail;
                }
                int fd = openat(cur, c, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        goto fail;
                rest[pos] = saved_c;
                if (depth == cap) {
                        cap = cap ? cap * 2 : 16;
                        stack = xrealloc(stack, cap * sizeof(*stack));
                }
                stack[depth++] = cur;
                cur = fd;
        }
        while (depth > 0)
                close(stack[--depth]);
        free(stack);
        return cur;
fail:
        saved = errno;
        close(cur);
        errno = saved;
fail_nocur:
        saved = errno;
        while (depth > 0)
                close(stack[--depth]);
        free(stack);
        errno = saved;
        return -1;
}

/* An fd (owned) of the directory `path` resolved inside the root. */
static int resolve_dir(struct unpack *u, const char *path)
{
        if (*path == '\0')
                return fcntl(u->rootfd, F_DUPFD_CLOEXEC, 3);
        if (!force_manual_walk && !openat2_missing) {
                int fd = openat2_dir(u->rootfd, path);
                if (fd >= 0 || errno != ENOSYS)
                        return fd;
                openat2_missing = 1;
                log_debug("image", "unpack openat2 missing, walking paths by hand");
        }
        return walk_dir(u->rootfd, path);
}

/* Create the missing directories of `path` (0755, root-owned, as Docker
 * does for parents a layer does not list) and return an fd of the last. */
static int create_dirs(struct unpack *u, const char *path)
{
        cleanup_free char *p = xstrdup(path);
        int cur = fcntl(u->rootfd, F_DUPFD_CLOEXEC, 3);
        if (cur < 0)
                return -1;
        char *s = p;
        for (;;) {
                char *slash = strchr(s, '/');
                if (slash)
                        *slash = '\0';
                int fd = resolve_dir(u, p);
                if (fd < 0 && errno == ENOENT) {
                        /* cur is the resolved parent, s a plain name in it */
                        if (mkdirat(cur, s, 0755) == 0)
                                u->st.files++;
                        else if (errno != EEXIST)
                                goto fail;
                        fd = resolve_dir(u, p);
                }
                if (fd < 0)
                        goto fail;
                close(cur);
                cur = fd;
                if (!slash)
                        return cur;
                *slash = '/';
                s = slash + 1;
        }
fail:;
        int saved = errno;
        close(cur);
        errno = saved;
        return -1;
}

/* The parent directory of an entry; the fd is borrowed from the cache and
 * stays valid until the next call. */
static int open_parent(struct unpack *u, const char *parent, bool create)
{
        if (u->cache_path && strcmp(u->cache_path, parent) == 0)
                return u->cache_fd;
        int fd = resolve_dir(u, parent);
        if (fd < 0 && errno == ENOENT && create)
                fd = create_dirs(u, parent);
        if (fd < 0)
                return fail_errno(u, errno, "open parent directory");
        if (u->cache_fd >= 0)
                close(u->cache_fd);
        free(u->cache_path);
        u->cache_fd = fd;
        u->cache_path = xstrdup(parent);
        return fd;
}

/* Something was removed: cached resolutions may now be wrong. The fd itself
 * stays open (a caller may hold it) until the next open_parent. */
static void cache_forget(struct unpack *u)
{
        free(u->cache_path);
        u->cache_path = NULL;
}

/* rm -rf of pfd/name, never following symlinks. */
static int remove_tree_at(int pfd, const char *name)
{
        if (unlinkat(pfd, name, 0) == 0)
                return 0;
        if (errno != EISDIR && errno != EPERM)
                return -1;
        int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return -1;
        cleanup_dir DIR *d = fdopendir(fd);
        if (d == NULL) {
                close(fd);
                return -1;
        }
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (remove_tree_at(dirfd(d), de->d_name) < 0)
                        return -1;
        }
        return unlinkat(pfd, name, AT_REMOVEDIR);
}

/* Make room for a new entry at pfd/name. Returns 1 when an existing
 * directory is kept (want_dir), 0 when the name is free, -1 on error. */
static int make_room(struct unpack *u, int pfd, const char *name, bool want_dir)
{
        struct stat st;
        if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return errno == ENOENT ? 0 : fail_errno(u, errno, "stat existing entry");
        if (S_ISDIR(st.st_mode) && want_dir)
                return 1;
        cache_forget(u);
        if (remove_tree_at(pfd, name) < 0)
                return fail_errno(u, errno, "replace existing entry");
        return 0;
}

/* ---------- metadata ---------- */

struct meta {
        uid_t uid;
        gid_t gid;
        mode_t perm;
        struct timespec ts[2];
};

static int entry_meta(struct unpack *u, struct archive_entry *ent, struct meta *m)
{
        int64_t uid = archive_entry_uid(ent), gid = archive_entry_gid(ent);
        if (uid < 0 || uid >= (int64_t)UINT32_MAX || gid < 0 || gid >= (int64_t)UINT32_MAX)
                return refuse(u, "owner %lld:%lld out of range", (long long)uid, (long long)gid);
        m->uid = (uid_t)uid;
        m->gid = (gid_t)gid;
        m->perm = archive_entry_perm(ent) & 07777;
        m->ts[1].tv_sec = archive_entry_mtime(ent);
        m->ts[1].tv_nsec = archive_entry_mtime_nsec(ent);
        if (archive_entry_atime_is_set(ent)) {
                m->ts[0].tv_sec = archive_entry_atime(ent);
                m->ts[0].tv_nsec = archive_entry_atime_nsec(ent);
        } else {
                m->ts[0] = m->ts[1];
        }
        for (int i = 0; i < 2; i++)
                if (m->ts[i].tv_nsec < 0 || m->ts[i].tv_nsec > 999999999)
                        m->ts[i].tv_nsec = 0;
        return 0;
}

/* Extended attributes from PAX headers (SCHILY.xattr / LIBARCHIVE.xattr).
 * Overlay's own attributes are dropped: a layer must not plant redirects or
 * metacopy markers; whiteouts and opaque dirs come only from .wh. names.
 * trusted.* and security.capability must apply; others are best effort. */
static int apply_xattrs(struct unpack *u, struct archive_entry *ent, int fd, int pfd, const char *base)
{
        if (archive_entry_xattr_reset(ent) == 0)
                return 0;
        const char *name;
        const void *val;
        size_t size;
        char procpath[64 + NAME_MAX];
        if (fd < 0)
                snprintf(procpath, sizeof(procpath), "/proc/self/fd/%d/%s", pfd, base);
        while (archive_entry_xattr_next(ent, &name, &val, &size) == ARCHIVE_OK) {
                if (name == NULL || *name == '\0')
                        continue;
                if (str_has_prefix(name, "trusted.overlay.") || str_has_prefix(name, "user.overlay.")) {
                        log_debug("image", "unpack dropped xattr entry=%s name=%s", u->entry, name);
                        continue;
                }
                /* The proc path names pfd's directory by a magic link;
                 * lsetxattr does not follow `base` itself. */
                int r = fd >= 0 ? fsetxattr(fd, name, val, size, 0) : lsetxattr(procpath, name, val, size, 0);
                if (r == 0)
                        continue;
                if (str_has_prefix(name, "trusted.") || strcmp(name, "security.capability") == 0) {
                        cleanup_free char *what = xasprintf("set xattr %s", name);
                        return fail_errno(u, errno, what);
                }
                log_debug("image", "unpack skipped xattr entry=%s name=%s errno=%d", u->entry, name, errno);
        }
        return 0;
}

/* Owner, then mode (chown clears setuid bits), then xattrs (chown clears
 * security.capability). For fd < 0 the entry is pfd/base and not a symlink
 * unless is_link. Times are applied by the caller. */
static int apply_meta(struct unpack *u, struct archive_entry *ent, const struct meta *m, int fd, int pfd,
                      const char *base, bool is_link)
{
        int r = fd >= 0 ? fchown(fd, m->uid, m->gid)
                        : fchownat(pfd, base, m->uid, m->gid, AT_SYMLINK_NOFOLLOW);
        if (r < 0)
                return fail_errno(u, errno, "chown");
        if (!is_link) {
                /* fd < 0: a node we just created, so base is no symlink */
                r = fd >= 0 ? fchmod(fd, m->perm) : fchmodat(pfd, base, m->perm, 0);
                if (r < 0)
                        return fail_errno(u, errno, "chmod");
        }
        return apply_xattrs(u, ent, fd, pfd, base);
}

/* ---------- entries ---------- */

static int write_data(struct unpack *u, struct archive_entry *ent, int fd)
{
        const void *buf;
        size_t size;
        la_int64_t off;
        int64_t end = 0;
        for (;;) {
                int r = archive_read_data_block(u->a, &buf, &size, &off);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN)
                        return err_set(u->e, ERR_INVALID, "layer entry %s: corrupt or truncated data: %s",
                                       u->entry, archive_error_string(u->a));
                const char *p = buf;
                size_t left = size;
                while (left > 0) {
                        ssize_t n = pwrite(fd, p, left, off);
                        if (n < 0) {
                                if (errno == EINTR)
                                        continue;
                                return fail_errno(u, errno, "write");
                        }
                        p += n;
                        off += n;
                        left -= (size_t)n;
                }
                u->st.bytes += size;
                if (off > end)
                        end = off;
        }
        /* a sparse file may end in a hole */
        if (archive_entry_size_is_set(ent) && archive_entry_size(ent) > end &&
            ftruncate(fd, archive_entry_size(ent)) < 0)
                return fail_errno(u, errno, "truncate");
        return 0;
}

static int do_regular(struct unpack *u, struct archive_entry *ent, const struct meta *m, int pfd,
                      const char *base)
{
        int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
        cleanup_close int fd = openat(pfd, base, flags, 0600);
        if (fd < 0 && errno == EEXIST) {
                if (make_room(u, pfd, base, false) < 0)
                        return -1;
                fd = openat(pfd, base, flags, 0600);
        }
        if (fd < 0)
                return fail_errno(u, errno, "create file");
        if (write_data(u, ent, fd) < 0 || apply_meta(u, ent, m, fd, pfd, base, false) < 0)
                return -1;
        if (futimens(fd, m->ts) < 0)
                return fail_errno(u, errno, "set times");
        u->st.files++;
        return 0;
}

static int do_dir(struct unpack *u, struct archive_entry *ent, const struct meta *m, int pfd,
                  const char *base, const char *path)
{
        if (mkdirat(pfd, base, 0700) == 0) {
                u->st.files++;
        } else if (errno == EEXIST) {
                int r = make_room(u, pfd, base, true);
                if (r < 0)
                        return -1;
                if (r == 0) {
                        if (mkdirat(pfd, base, 0700) < 0)
                                return fail_errno(u, errno, "create directory");
                        u->st.files++;
                }
        } else {
                return fail_errno(u, errno, "create directory");
        }
        cleanup_close int fd = openat(pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
                return fail_errno(u, errno, "open directory");
        if (apply_meta(u, ent, m, fd, pfd, base, false) < 0)
                return -1;
        /* Times later: creating the contents would bump the mtime. */
        if (u->ndirs == u->capdirs) {
                u->capdirs = u->capdirs ? u->capdirs * 2 : 256;
                u->dirs = xrealloc(u->dirs, u->capdirs * sizeof(*u->dirs));
        }
        u->dirs[u->ndirs].path = xstrdup(path);
        u->dirs[u->ndirs].ts[0] = m->ts[0];
        u->dirs[u->ndirs].ts[1] = m->ts[1];
        u->ndirs++;
        return 0;
}

static int do_symlink(struct unpack *u, struct archive_entry *ent, const struct meta *m, int pfd,
                      const char *base)
{
        const char *target = archive_entry_symlink(ent);
        if (target == NULL)
                target = archive_entry_symlink_utf8(ent);
        if (target == NULL || *target == '\0')
                return refuse(u, "symlink without a target");
        /* The target is stored as text and never resolved here. */
        if (symlinkat(target, pfd, base) < 0) {
                if (errno != EEXIST)
                        return fail_errno(u, errno, "create symlink");
                if (make_room(u, pfd, base, false) < 0)
                        return -1;
                if (symlinkat(target, pfd, base) < 0)
                        return fail_errno(u, errno, "create symlink");
        }
        if (apply_meta(u, ent, m, -1, pfd, base, true) < 0)
                return -1;
        if (utimensat(pfd, base, m->ts, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_errno(u, errno, "set times");
        u->st.files++;
        return 0;
}

static int do_hardlink(struct unpack *u, const char *link, const char *path, const char *parent,
                       const char *base)
{
        cleanup_free char *tpath = NULL;
        if (clean_path(link, &tpath) < 0)
                return refuse(u, "hardlink target has a .. component");
        if (*tpath == '\0')
                return refuse(u, "hardlink to the layer root");
        if (strcmp(tpath, path) == 0)
                return refuse(u, "hardlink to itself");
        const char *tparent, *tbase;
        split_path(tpath, &tparent, &tbase);
        /* The target's directory resolves inside the root like any other;
         * linkat without AT_SYMLINK_FOLLOW links a symlink itself. */
        cleanup_close int tfd = resolve_dir(u, tparent);
        if (tfd < 0)
                return fail_errno(u, errno, "open hardlink target directory");
        int pfd = open_parent(u, parent, true);
        if (pfd < 0)
                return -1;
        if (linkat(tfd, tbase, pfd, base, 0) < 0) {
                if (errno != EEXIST)
                        return fail_errno(u, errno, "create hardlink");
                if (make_room(u, pfd, base, false) < 0)
                        return -1;
                if (linkat(tfd, tbase, pfd, base, 0) < 0)
                        return fail_errno(u, errno, "create hardlink");
        }
        u->st.files++;
        return 0;
}

static int do_node(struct unpack *u, struct archive_entry *ent, const struct meta *m, int pfd,
                   const char *base, mode_t type)
{
        dev_t dev = type == S_IFIFO ? 0 : makedev(archive_entry_rdevmajor(ent), archive_entry_rdevminor(ent));
        if (mknodat(pfd, base, type | 0600, dev) < 0) {
                if (errno == EEXIST) {
                        if (make_room(u, pfd, base, false) < 0)
                                return -1;
                        if (mknodat(pfd, base, type | 0600, dev) == 0)
                                goto made;
                }
                if (errno == EPERM && type != S_IFIFO) {
                        /* no CAP_MKNOD (user namespace): as rootless Docker */
                        log_debug("image", "unpack skipped device entry=%s", u->entry);
                        u->st.skipped++;
                        return 0;
                }
                return fail_errno(u, errno, "create node");
        }
made:
        if (apply_meta(u, ent, m, -1, pfd, base, false) < 0)
                return -1;
        if (utimensat(pfd, base, m->ts, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_errno(u, errno, "set times");
        u->st.files++;
        return 0;
}

/* `.wh.<name>` hides <name> of lower layers: an overlay whiteout is a 0/0
 * character device. `.wh..wh..opq` makes its directory opaque. */
static int do_whiteout(struct unpack *u, const struct meta *m, const char *parent, const char *base)
{
        int pfd = open_parent(u, parent, true);
        if (pfd < 0)
                return -1;
        if (strcmp(base, WH_OPAQUE) == 0) {
                if (fsetxattr(pfd, "trusted.overlay.opaque", "y", 1, 0) < 0)
                        return fail_errno(u, errno, "set trusted.overlay.opaque");
                u->st.whiteouts++;
                u->st.files++;
                return 0;
        }
        const char *name = base + strlen(WH_PREFIX);
        if (mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) < 0) {
                if (errno != EEXIST)
                        return fail_errno(u, errno, "create whiteout");
                if (make_room(u, pfd, name, false) < 0)
                        return -1;
                if (mknodat(pfd, name, S_IFCHR | 0, makedev(0, 0)) < 0)
                        return fail_errno(u, errno, "create whiteout");
        }
        if (fchownat(pfd, name, m->uid, m->gid, AT_SYMLINK_NOFOLLOW) < 0)
                return fail_errno(u, errno, "chown whiteout");
        u->st.whiteouts++;
        u->st.files++;
        return 0;
}

static int apply_entry(struct unpack *u, struct archive_entry *ent)
{
        const char *raw = archive_entry_pathname(ent);
        if (raw == NULL)
                raw = archive_entry_pathname_utf8(ent);
        free(u->entry);
        u->entry = printable(raw ? raw : "");
        if (raw == NULL || *raw == '\0')
                return refuse(u, "entry without a name");

        cleanup_free char *path = NULL;
        if (clean_path(raw, &path) < 0)
                return refuse(u, "path has a .. component");
        struct meta m = {0};
        if (entry_meta(u, ent, &m) < 0)
                return -1;
        const char *hardlink = archive_entry_hardlink(ent);
        if (hardlink == NULL)
                hardlink = archive_entry_hardlink_utf8(ent);
        mode_t type = archive_entry_filetype(ent);

        if (*path == '\0') {
                if (type == AE_IFDIR && hardlink == NULL)
                        return 0; /* the layer root: the snapshotter owns it */
                return refuse(u, "entry names the layer root");
        }
        /* aufs metadata (.wh..wh.plnk, ...): never content */
        if (str_has_prefix(path, WH_META_PREFIX) && strcmp(path, WH_OPAQUE) != 0) {
                u->st.skipped++;
                return 0;
        }

        cleanup_free char *full = xstrdup(path);
        const char *parent, *base;
        split_path(path, &parent, &base);

        if (str_has_prefix(base, WH_PREFIX)) {
                if (str_has_prefix(base, WH_META_PREFIX) && strcmp(base, WH_OPAQUE) != 0) {
                        u->st.skipped++;
                        return 0;
                }
                const char *name = base + strlen(WH_PREFIX);
                if (strcmp(base, WH_OPAQUE) != 0 &&
                    (*name == '\0' || strcmp(name, ".") == 0 || strcmp(name, "..") == 0))
                        return refuse(u, "whiteout without a valid name");
                return do_whiteout(u, &m, parent, base);
        }

        if (hardlink != NULL)
                return do_hardlink(u, hardlink, full, parent, base);

        int pfd = open_parent(u, parent, true);
        if (pfd < 0)
                return -1;
        switch (type) {
        case AE_IFREG:
                return do_regular(u, ent, &m, pfd, base);
        case AE_IFDIR:
                return do_dir(u, ent, &m, pfd, base, full);
        case AE_IFLNK:
                return do_symlink(u, ent, &m, pfd, base);
        case AE_IFCHR:
        case AE_IFBLK:
        case AE_IFIFO:
                return do_node(u, ent, &m, pfd, base, type);
        case AE_IFSOCK:
                u->st.skipped++;
                return 0;
        default:
                return refuse(u, "unsupported entry type 0%o", (unsigned)type);
        }
}

/* Directory times, now that nothing more is created inside. */
static void apply_dir_times(struct unpack *u)
{
        for (size_t i = 0; i < u->ndirs; i++) {
                char *p = u->dirs[i].path;
                const char *parent, *base;
                split_path(p, &parent, &base);
                int pfd = open_parent(u, parent, false);
                if (pfd < 0) {
                        err_clear(u->e); /* removed by a later entry */
                        continue;
                }
                (void)utimensat(pfd, base, u->dirs[i].ts, AT_SYMLINK_NOFOLLOW);
        }
}

/* ---------- formats ---------- */

static const char *const layer_types[] = {
        "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar",
        "application/vnd.docker.image.rootfs.foreign.diff.tar",
};

/* Check the media type; *expect gets the compression it names. */
static int check_media_type(const char *mt, enum compression *expect, struct err *e)
{
        *expect = COMP_NONE;
        if (mt == NULL || *mt == '\0')
                return 0;
        if (strstr(mt, "+encrypted") != NULL)
                return err_set(e, ERR_UNIMPLEMENTED,
                               "layer media type %s: encrypted layers are not supported", mt);
        for (size_t i = 0; i < ARRAY_SIZE(layer_types); i++) {
                if (!str_has_prefix(mt, layer_types[i]))
                        continue;
                const char *rest = mt + strlen(layer_types[i]);
                if (*rest == '\0')
                        return 0;
                if (strcmp(rest, "+gzip") == 0 || strcmp(rest, ".gzip") == 0) {
                        *expect = COMP_GZIP;
                        return 0;
                }
                if (strcmp(rest, "+zstd") == 0 || strcmp(rest, ".zstd") == 0) {
                        *expect = COMP_ZSTD;
                        return 0;
                }
        }
        return err_set(e, ERR_INVALID, "media type %s is not a layer type this runtime unpacks", mt);
}

static int sniff(const unsigned char *b, size_t n, enum compression *out, struct err *e)
{
        *out = COMP_NONE;
        if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b)
                *out = COMP_GZIP;
        else if (n >= 4 && ((b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) ||
                            /* a zstd skippable frame */
                            ((b[0] & 0xf0) == 0x50 && b[1] == 0x2a && b[2] == 0x4d && b[3] == 0x18)))
                *out = COMP_ZSTD;
        else if ((n >= 3 && memcmp(b, "BZh", 3) == 0) || (n >= 6 && memcmp(b,
                                                                           "\xfd"
                                                                           "7zXZ\0",
                                                                           6) == 0))
                return err_set(e, ERR_INVALID,
                               "layer compressed with bzip2 or xz: only gzip and zstd are supported");
        return 0;
}

static struct archive *new_reader(enum compression c, struct err *e)
{
        struct archive *a = archive_read_new();
        /* tar only; no "empty" format: a truncated compressed stream can
         * decompress to nothing, and that must not pass as an empty layer */
        archive_read_support_format_tar(a);
        int r = ARCHIVE_OK;
        if (c == COMP_GZIP)
                r = archive_read_append_filter(a, ARCHIVE_FILTER_GZIP);
        else if (c == COMP_ZSTD)
                r = archive_read_append_filter(a, ARCHIVE_FILTER_ZSTD);
        if (r < ARCHIVE_WARN) {
                err_set(e, ERR_UNIMPLEMENTED, "libarchive cannot read %s: %s", comp_name(c),
                        archive_error_string(a));
                archive_read_free(a);
                return NULL;
        }
        return a;
}

static void unpack_free(struct unpack *u)
{
        if (u->cache_fd >= 0)
                close(u->cache_fd);
        free(u->cache_path);
        for (size_t i = 0; i < u->ndirs; i++)
                free(u->dirs[i].path);
        free(u->dirs);
        free(u->entry);
        if (u->rootfd >= 0)
                close(u->rootfd);
}

/* The entry loop over an opened archive. */
static int unpack_archive(struct archive *a, const char *dest_dir, struct img_unpack_stats *stats,
                          struct err *e)
{
        cleanup_err struct err local = ERR_INIT;
        if (e == NULL)
                e = &local; /* the entry helpers fill in the kind */
        struct unpack u = {.rootfd = -1, .cache_fd = -1, .a = a, .e = e};
        int ret = -1;
        u.rootfd = open(dest_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (u.rootfd < 0) {
                err_make(e, errno, "open layer directory %s", dest_dir);
                goto out;
        }
        for (;;) {
                struct archive_entry *ent;
                int r = archive_read_next_header(a, &ent);
                if (r == ARCHIVE_EOF)
                        break;
                if (r < ARCHIVE_WARN) {
                        err_set(e, ERR_INVALID, "layer is not a valid tar stream%s%s: %s",
                                u.entry ? " after entry " : "", u.entry ? u.entry : "",
                                archive_error_string(a));
                        goto out;
                }
                if (apply_entry(&u, ent) < 0)
                        goto out;
        }
        apply_dir_times(&u);
        /* One flush for the whole layer instead of an fsync per file. */
        if (syncfs(u.rootfd) < 0) {
                err_make(e, errno, "syncfs %s", dest_dir);
                goto out;
        }
        ret = 0;
out:
        if (stats)
                *stats = u.st;
        unpack_free(&u);
        return ret;
}

/* A zero-byte blob: no entries (some builders push these for empty layers). */
static int unpack_empty(const char *dest_dir, struct img_unpack_stats *stats, struct err *e)
{
        (void)stats;
        struct stat st;
        if (stat(dest_dir, &st) < 0)
                return err_make(e, errno, "layer directory %s", dest_dir);
        if (!S_ISDIR(st.st_mode))
                return err_set(e, ERR_INVALID, "layer directory %s is not a directory", dest_dir);
        return 0;
}

int img_unpack_layer(const char *blob_path, const char *media_type, const char *dest_dir,
                     struct img_unpack_stats *stats, struct err *e)
{
        enum compression expect, c;
        if (stats)
                memset(stats, 0, sizeof(*stats));
        if (check_media_type(media_type, &expect, e) < 0)
                return -1;
        cleanup_close int fd = open(blob_path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open layer blob %s", blob_path);
        unsigned char magic[8];
        ssize_t n = pread(fd, magic, sizeof(magic), 0);
        if (n < 0)
                return err_make(e, errno, "read layer blob %s", blob_path);
        if (n == 0)
                return unpack_empty(dest_dir, stats, e);
        if (sniff(magic, (size_t)n, &c, e) < 0)
                return err_wrap(e, "layer %s", blob_path);
        if (c != expect && media_type && *media_type)
                log_debug("image", "unpack media type says %s, bytes say %s blob=%s", comp_name(expect),
                          comp_name(c), blob_path);
        (void)posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        struct archive *a = new_reader(c, e);
        if (a == NULL)
                return -1;
        int ret;
        if (archive_read_open_fd(a, fd, READ_BLOCK) != ARCHIVE_OK)
                ret = err_set(e, ERR_INVALID, "layer %s: %s", blob_path, archive_error_string(a));
        else
                ret = unpack_archive(a, dest_dir, stats, e);
        archive_read_free(a);
        return ret;
}

int img_unpack_layer_mem(const void *data, size_t len, const char *media_type, const char *dest_dir,
                         struct img_unpack_stats *stats, struct err *e)
{
        enum compression expect, c;
        if (stats)
                memset(stats, 0, sizeof(*stats));
        if (check_media_type(media_type, &expect, e) < 0)
                return -1;
        if (len == 0)
                return unpack_empty(dest_dir, stats, e);
        if (sniff(data, len, &c, e) < 0)
                return -1;
        struct archive *a = new_reader(c, e);
        if (a == NULL)
                return -1;
        int ret;
        if (archive_read_open_memory(a, data, len) != ARCHIVE_OK)
                ret = err_set(e, ERR_INVALID, "layer: %s", archive_error_string(a));
        else
                ret = unpack_archive(a, dest_dir, stats, e);
        archive_read_free(a);
        return ret;
}
