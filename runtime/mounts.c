/* The container's mount namespace (child side, before pivot_root): rootfs,
 * the standard mounts, the spec's mounts, /dev, masked and readonly paths,
 * pivot_root, readonly rootfs. Destinations are resolved inside the rootfs
 * (openat2 RESOLVE_IN_ROOT) and mounted through /proc/self/fd/N so that a
 * symlink in the image cannot redirect a mount onto the host. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>

#include "runtime/runtime-internal.h"

struct mopt {
        const char *name;
        bool clear;
        unsigned long flag;
};

static const struct mopt mount_opts[] = {
        {"ro", false, MS_RDONLY},
        {"rw", true, MS_RDONLY},
        {"nosuid", false, MS_NOSUID},
        {"suid", true, MS_NOSUID},
        {"nodev", false, MS_NODEV},
        {"dev", true, MS_NODEV},
        {"noexec", false, MS_NOEXEC},
        {"exec", true, MS_NOEXEC},
        {"sync", false, MS_SYNCHRONOUS},
        {"async", true, MS_SYNCHRONOUS},
        {"dirsync", false, MS_DIRSYNC},
        {"noatime", false, MS_NOATIME},
        {"atime", true, MS_NOATIME},
        {"nodiratime", false, MS_NODIRATIME},
        {"relatime", false, MS_RELATIME},
        {"norelatime", true, MS_RELATIME},
        {"strictatime", false, MS_STRICTATIME},
        {"bind", false, MS_BIND},
        {"rbind", false, MS_BIND | MS_REC},
};

static const struct mopt prop_opts[] = {
        {"private", false, MS_PRIVATE},       {"rprivate", false, MS_PRIVATE | MS_REC},
        {"slave", false, MS_SLAVE},           {"rslave", false, MS_SLAVE | MS_REC},
        {"shared", false, MS_SHARED},         {"rshared", false, MS_SHARED | MS_REC},
        {"unbindable", false, MS_UNBINDABLE}, {"runbindable", false, MS_UNBINDABLE | MS_REC},
};

struct parsed {
        unsigned long flags;
        unsigned long prop;
        bool rro; /* "rro": read-only down to every submount (mount_setattr) */
        struct sbuf data;
};

static void parse_options(char *const *opts, struct parsed *p)
{
        memset(p, 0, sizeof(*p));
        for (; opts && *opts; opts++) {
                bool done = false;
                for (size_t i = 0; !done && i < ARRAY_SIZE(mount_opts); i++) {
                        if (strcmp(*opts, mount_opts[i].name) == 0) {
                                if (mount_opts[i].clear)
                                        p->flags &= ~mount_opts[i].flag;
                                else
                                        p->flags |= mount_opts[i].flag;
                                done = true;
                        }
                }
                for (size_t i = 0; !done && i < ARRAY_SIZE(prop_opts); i++) {
                        if (strcmp(*opts, prop_opts[i].name) == 0) {
                                p->prop = prop_opts[i].flag;
                                done = true;
                        }
                }
                if (!done && strcmp(*opts, "rro") == 0) {
                        p->rro = true;
                        done = true;
                }
                if (!done) {
                        if (p->data.len)
                                sbuf_putc(&p->data, ',');
                        sbuf_puts(&p->data, *opts);
                }
        }
}

static unsigned long propagation_flag(const char *name, unsigned long dflt)
{
        for (size_t i = 0; name && i < ARRAY_SIZE(prop_opts); i++)
                if (strcmp(name, prop_opts[i].name) == 0)
                        return prop_opts[i].flag;
        return dflt;
}

/* Open (creating as needed: directories, and the last component as a file
 * when `file`) `path` inside the root; returns an O_PATH fd. */
static int open_or_create(int rootfd, const char *path, bool file, struct err *e)
{
        int fd = openat_in_root(rootfd, path, O_PATH | O_CLOEXEC, 0);
        if (fd >= 0 || errno != ENOENT)
                return fd >= 0 ? fd : err_make(e, errno, "open %s in rootfs", path);
        cleanup_free char *copy = xstrdup(path);
        char *slash = strrchr(copy, '/');
        const char *name = slash ? slash + 1 : copy;
        cleanup_close int parent = -1;
        if (slash && slash != copy) {
                *slash = '\0';
                parent = open_or_create(rootfd, copy, false, e);
                if (parent < 0)
                        return -1;
        } else {
                parent = dup(rootfd);
        }
        int r = file ? mknodat(parent, name, S_IFREG | 0644, 0) : mkdirat(parent, name, 0755);
        if (r < 0 && errno != EEXIST)
                return err_make(e, errno, "create %s in rootfs", path);
        fd = openat_in_root(rootfd, path, O_PATH | O_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "open %s in rootfs", path);
        return fd;
}

/* Mount on `dest` inside the root. The destination is resolved afresh on
 * every call: an fd opened before a mount names the covered directory, not
 * the new mount, and a remount or propagation change through it fails. */
static int do_mount(const char *src, int rootfd, const char *dest, const char *type, unsigned long flags,
                    const char *data, struct err *e)
{
        cleanup_close int fd = openat_in_root(rootfd, dest, O_PATH | O_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "open %s in rootfs", dest);
        char target[64];
        snprintf(target, sizeof(target), "/proc/self/fd/%d", fd);
        if (mount(src, target, type, flags, data) < 0)
                return err_make(e, errno, "mount %s on %s (%s)", src ? src : "none", dest,
                                type ? type : "bind");
        return 0;
}

static bool is_bind(const struct rt_mount *m, const struct parsed *p)
{
        return (m->type && strcmp(m->type, "bind") == 0) || (p->flags & MS_BIND);
}

struct ctx {
        const struct rt_spec *spec;
        int rootfd;
        const char *cgroup_path;
        int *trees;    /* per spec mount: a detached clone of a shared bind's source, or -1 */
        int userns_fd; /* the pod's user namespace: binds are idmapped to it; -1 none */
};

/* A bind source that does not exist is created as a directory (as
 * containerd does); *st gets its type. */
static int bind_source_stat(const struct rt_mount *m, struct stat *st, struct err *e)
{
        if (m->source == NULL || m->source[0] != '/')
                return err_set(e, ERR_INVALID, "bind mount %s: source must be absolute", m->destination);
        if (stat(m->source, st) == 0)
                return 0;
        if (errno != ENOENT)
                return err_make(e, errno, "bind source %s", m->source);
        if (mkdir_p(m->source, 0755, e) < 0)
                return -1;
        st->st_mode = S_IFDIR;
        return 0;
}

/* A shared bind (BIDIRECTIONAL) must stay in the host mount's peer group,
 * but "/" of our namespace is made rslave (or rprivate) before anything is
 * mounted, so that nothing the container mounts outside its volumes
 * reaches the host; a bind made from the slave copy afterwards would be a
 * slave too and mounts made in the container would stay there. A detached
 * clone taken first keeps the peer group (open_tree copies it), and is
 * attached at the destination later. */
static int clone_shared_sources(struct ctx *c, struct err *e)
{
        const struct rt_spec *s = c->spec;
        c->trees = xmalloc((s->n_mounts ? s->n_mounts : 1) * sizeof(*c->trees));
        for (size_t i = 0; i < s->n_mounts; i++)
                c->trees[i] = -1;
        for (size_t i = 0; i < s->n_mounts; i++) {
                const struct rt_mount *m = &s->mounts[i];
                struct parsed p;
                parse_options(m->options, &p);
                bool shared = is_bind(m, &p) && (p.prop & MS_SHARED);
                bool rec = p.flags & MS_REC;
                sbuf_free(&p.data);
                if (!shared)
                        continue;
                struct stat st;
                if (bind_source_stat(m, &st, e) < 0)
                        return -1;
                c->trees[i] = (int)open_tree(AT_FDCWD, m->source,
                                             OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (rec ? AT_RECURSIVE : 0));
                if (c->trees[i] < 0)
                        return err_make(e, errno, "clone bind source %s", m->source);
        }
        return 0;
}

static void close_trees(struct ctx *c)
{
        for (size_t i = 0; c->trees && i < c->spec->n_mounts; i++)
                if (c->trees[i] >= 0)
                        close(c->trees[i]);
        free(c->trees);
        c->trees = NULL;
}

static int attach_tree(int tree, int rootfd, const char *dest, struct err *e)
{
        cleanup_close int fd = openat_in_root(rootfd, dest, O_PATH | O_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "open %s in rootfs", dest);
        if (move_mount(tree, "", fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return err_make(e, errno, "attach bind mount on %s", dest);
        return 0;
}

/* KEP-3857: MS_RDONLY on a bind covers its top mount only; the new mount
 * API sets it on every submount in one call. */
static int set_recursive_ro(int rootfd, const char *dest, struct err *e)
{
        cleanup_close int fd = openat_in_root(rootfd, dest, O_PATH | O_CLOEXEC, 0);
        if (fd < 0)
                return err_make(e, errno, "open %s in rootfs", dest);
        struct mount_attr attr = {.attr_set = MOUNT_ATTR_RDONLY};
        if (mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
                return err_make(e, errno, "make %s recursively read-only", dest);
        return 0;
}

static int mount_cgroupfs(struct ctx *c, const char *dest, unsigned long flags, struct err *e)
{
        unsigned long ro = c->spec->privileged ? 0 : MS_RDONLY;
        flags |= MS_NOSUID | MS_NOEXEC | MS_NODEV;
        if (rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED) {
                /* With a cgroup namespace the container sees its own subtree. */
                if (do_mount("cgroup2", c->rootfd, dest, "cgroup2", flags | ro, NULL, e) == 0)
                        return 0;
                err_clear(e);
                cleanup_free char *src = path_join("/sys/fs/cgroup", c->cgroup_path ? c->cgroup_path : "/");
                if (do_mount(src, c->rootfd, dest, NULL, MS_BIND | MS_REC, NULL, e) < 0)
                        return -1;
                return do_mount(NULL, c->rootfd, dest, NULL, MS_BIND | MS_REMOUNT | flags | ro, NULL, e);
        }
        /* v1: a tmpfs with the container's directory of each hierarchy. */
        if (do_mount("cgroup", c->rootfd, dest, "tmpfs", flags, "mode=755", e) < 0)
                return -1;
        cleanup_dir DIR *d = opendir("/sys/fs/cgroup");
        struct dirent *de;
        while (d && (de = readdir(d)) != NULL) {
                if (de->d_name[0] == '.' || de->d_type != DT_DIR)
                        continue;
                cleanup_free char *host =
                        xasprintf("/sys/fs/cgroup/%s%s", de->d_name, c->cgroup_path ? c->cgroup_path : "");
                struct stat st;
                if (stat(host, &st) < 0 || !S_ISDIR(st.st_mode))
                        continue;
                cleanup_free char *in = xasprintf("%s/%s", dest, de->d_name);
                cleanup_close int fd = open_or_create(c->rootfd, in, false, e);
                if (fd < 0)
                        return -1;
                if (do_mount(host, c->rootfd, in, NULL, MS_BIND | MS_REC, NULL, e) < 0 ||
                    do_mount(NULL, c->rootfd, in, NULL, MS_BIND | MS_REMOUNT | flags | ro, NULL, e) < 0)
                        return -1;
        }
        if (ro)
                return do_mount(NULL, c->rootfd, dest, NULL, MS_REMOUNT | flags | MS_RDONLY, "mode=755", e);
        return 0;
}

/* `tree`: a clone of the bind source to attach instead of binding it, or -1. */
static int mount_one(struct ctx *c, const struct rt_mount *m, int tree, struct err *e)
{
        struct parsed p;
        int ret = -1;
        parse_options(m->options, &p);
        bool bind = is_bind(m, &p);
        const char *type = m->type;
        struct stat st = {.st_mode = S_IFDIR};
        cleanup_close int fd = -1;

        if (p.rro && !(p.flags & MS_RDONLY)) {
                err_set(e, ERR_INVALID, "mount %s: rro needs ro", m->destination);
                goto out;
        }
        if (bind && bind_source_stat(m, &st, e) < 0)
                goto out;
        fd = open_or_create(c->rootfd, m->destination, !S_ISDIR(st.st_mode), e);
        if (fd < 0)
                goto out;
        if (bind) {
                unsigned long bflags = MS_BIND | (p.flags & MS_REC);
                int r;
                if (tree >= 0) /* a shared bind keeps the host's peer group: not idmapped */
                        r = attach_tree(tree, c->rootfd, m->destination, e);
                else if (c->userns_fd >= 0)
                        r = idmap_bind(m->source, bflags & MS_REC, c->userns_fd, c->rootfd, m->destination,
                                       e);
                else
                        r = do_mount(m->source, c->rootfd, m->destination, NULL, bflags, NULL, e);
                if (r < 0)
                        goto out;
                unsigned long rest = p.flags & ~(MS_BIND | MS_REC);
                if (rest &&
                    do_mount(NULL, c->rootfd, m->destination, NULL, MS_BIND | MS_REMOUNT | rest, NULL, e) < 0)
                        goto out;
        } else if (type && strcmp(type, "cgroup") == 0) {
                if (mount_cgroupfs(c, m->destination, p.flags, e) < 0)
                        goto out;
        } else {
                cleanup_free char *data = idmap_fs_data(c->spec, type, p.data.buf);
                if (do_mount(m->source ? m->source : type, c->rootfd, m->destination, type, p.flags,
                             data ? data : p.data.buf, e) < 0) {
                        /* sysfs in a net namespace we do not own: bind the host's. */
                        if (!(type && strcmp(type, "sysfs") == 0 && errno == EPERM))
                                goto out;
                        err_clear(e);
                        if (do_mount("/sys", c->rootfd, m->destination, NULL, MS_BIND | MS_REC, NULL, e) <
                                    0 ||
                            do_mount(NULL, c->rootfd, m->destination, NULL, MS_BIND | MS_REMOUNT | p.flags,
                                     NULL, e) < 0)
                                goto out;
                }
        }
        if (p.prop && do_mount(NULL, c->rootfd, m->destination, NULL, p.prop, NULL, e) < 0)
                goto out;
        if (p.rro && set_recursive_ro(c->rootfd, m->destination, e) < 0)
                goto out;
        ret = 0;
out:
        sbuf_free(&p.data);
        return ret;
}

/* ---------- /dev ---------- */

static const struct {
        const char *path;
        unsigned maj, min;
} std_devices[] = {
        {"/dev/null", 1, 3},   {"/dev/zero", 1, 5},    {"/dev/full", 1, 7},
        {"/dev/random", 1, 8}, {"/dev/urandom", 1, 9}, {"/dev/tty", 5, 0},
};

static int make_device(struct ctx *c, const char *path, char type, dev_t dev, mode_t perm, uid_t uid,
                       gid_t gid, struct err *e)
{
        cleanup_free char *copy = xstrdup(path);
        char *slash = strrchr(copy, '/');
        *slash = '\0';
        cleanup_close int dir = open_or_create(c->rootfd, copy[0] ? copy : "/", false, e);
        if (dir < 0)
                return -1;
        /* mknodat needs a real directory fd, not O_PATH on older kernels. */
        char dpath[64];
        snprintf(dpath, sizeof(dpath), "/proc/self/fd/%d", dir);
        cleanup_close int dfd = open(dpath, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return err_make(e, errno, "open %s", copy);
        mode_t fmt = type == 'b' ? S_IFBLK : type == 'p' ? S_IFIFO : S_IFCHR;
        if (c->userns_fd >= 0 && c->spec->n_uid_mappings && c->spec->n_gid_mappings) {
                /* Owned by the container's ids, not by unmapped host ones. */
                uid = idmap_to_host(c->spec->uid_mappings, c->spec->n_uid_mappings, uid);
                gid = idmap_to_host(c->spec->gid_mappings, c->spec->n_gid_mappings, gid);
        }
        (void)unlinkat(dfd, slash + 1, 0);
        if (mknodat(dfd, slash + 1, fmt | (perm & 07777), dev) < 0) {
                if (errno != EPERM)
                        return err_make(e, errno, "mknod %s", path);
                /* In a user namespace: bind the host node over a file. */
                err_clear(e);
                cleanup_close int f = open_or_create(c->rootfd, path, true, e);
                if (f < 0 || do_mount(path, c->rootfd, path, NULL, MS_BIND, NULL, e) < 0)
                        return -1;
                return 0;
        }
        if (fchmodat(dfd, slash + 1, perm & 07777, 0) < 0)
                return err_make(e, errno, "chmod %s", path);
        if ((uid || gid) && fchownat(dfd, slash + 1, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
                return err_make(e, errno, "chown %s", path);
        return 0;
}

static int setup_dev(struct ctx *c, bool own_dev, struct err *e)
{
        const struct rt_spec *s = c->spec;
        if (own_dev) {
                for (size_t i = 0; i < ARRAY_SIZE(std_devices); i++)
                        if (make_device(c, std_devices[i].path, 'c',
                                        makedev(std_devices[i].maj, std_devices[i].min), 0666, 0, 0, e) < 0)
                                return -1;
                static const char *const links[][2] = {
                        {"/proc/self/fd", "/dev/fd"},       {"/proc/self/fd/0", "/dev/stdin"},
                        {"/proc/self/fd/1", "/dev/stdout"}, {"/proc/self/fd/2", "/dev/stderr"},
                        {"pts/ptmx", "/dev/ptmx"},          {"/proc/kcore", "/dev/core"},
                };
                cleanup_close int dev =
                        openat_in_root(c->rootfd, "/dev", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
                if (dev < 0)
                        return err_make(e, errno, "open /dev in rootfs");
                for (size_t i = 0; i < ARRAY_SIZE(links); i++)
                        if (symlinkat(links[i][0], dev, links[i][1] + 5) < 0 && errno != EEXIST)
                                return err_make(e, errno, "symlink %s", links[i][1]);
        } else if (s->privileged) {
                /* Host /dev: make /dev/ptmx the container's devpts one without
                 * touching the host's files. */
                cleanup_close int ptmx = openat_in_root(c->rootfd, "/dev/ptmx", O_PATH | O_CLOEXEC, 0);
                cleanup_close int pts = openat_in_root(c->rootfd, "/dev/pts/ptmx", O_PATH | O_CLOEXEC, 0);
                if (ptmx >= 0 && pts >= 0) {
                        char src[64];
                        snprintf(src, sizeof(src), "/proc/self/fd/%d", pts);
                        (void)do_mount(src, c->rootfd, "/dev/ptmx", NULL, MS_BIND, NULL, NULL);
                }
        }
        for (size_t i = 0; i < s->n_devices; i++) {
                const struct rt_device *d = &s->devices[i];
                if (make_device(c, d->path, d->type, makedev(d->major, d->minor), d->mode ? d->mode : 0666,
                                d->uid, d->gid, e) < 0)
                        return -1;
        }
        return 0;
}

/* ---------- masked / readonly ---------- */

static int mask_paths(struct ctx *c, struct err *e)
{
        for (char **p = c->spec->masked_paths; p && *p; p++) {
                cleanup_close int fd = openat_in_root(c->rootfd, *p, O_PATH | O_CLOEXEC, 0);
                if (fd < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;
                        return err_make(e, errno, "masked path %s", *p);
                }
                struct stat st;
                if (fstat(fd, &st) < 0)
                        return err_make(e, errno, "stat %s", *p);
                if (S_ISDIR(st.st_mode)) {
                        if (do_mount("tmpfs", c->rootfd, *p, "tmpfs",
                                     MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=0,mode=755", e) < 0)
                                return -1;
                } else if (do_mount("/dev/null", c->rootfd, *p, NULL, MS_BIND, NULL, e) < 0) {
                        return -1;
                }
        }
        return 0;
}

static int readonly_paths(struct ctx *c, struct err *e)
{
        for (char **p = c->spec->readonly_paths; p && *p; p++) {
                cleanup_close int fd = openat_in_root(c->rootfd, *p, O_PATH | O_CLOEXEC, 0);
                if (fd < 0) {
                        if (errno == ENOENT || errno == ENOTDIR)
                                continue;
                        return err_make(e, errno, "readonly path %s", *p);
                }
                char src[64];
                snprintf(src, sizeof(src), "/proc/self/fd/%d", fd);
                if (do_mount(src, c->rootfd, *p, NULL, MS_BIND | MS_REC, NULL, e) < 0)
                        return -1;
                if (do_mount(NULL, c->rootfd, *p, NULL,
                             MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL, e) < 0)
                        return -1;
        }
        return 0;
}

/* ---------- rootfs ---------- */

static int mount_rootfs(const struct rt_spec *s, int userns_fd, struct err *e)
{
        const struct rt_rootfs *r = &s->root;
        if (mkdir_p(r->path, 0755, e) < 0)
                return -1;
        if (r->lowerdirs) {
                if (userns_fd >= 0 && idmap_layers(s, userns_fd, e) < 0)
                        return err_wrap(e, "rootfs");
                if (mount_overlay(r->lowerdirs, r->upperdir, r->workdir, r->upperdir == NULL, r->path, e) < 0)
                        return err_wrap(e, "rootfs");
        } else if (mount(r->path, r->path, NULL, MS_BIND | MS_REC, NULL) < 0) {
                return err_make(e, errno, "bind rootfs %s", r->path);
        }
        if (!r->lowerdirs && userns_fd >= 0 && idmap_stack(r->path, userns_fd, e) < 0)
                return err_wrap(e, "rootfs");
        /* pivot_root refuses a shared new root or parent. */
        if (mount(NULL, r->path, NULL, MS_PRIVATE, NULL) < 0)
                return err_make(e, errno, "make rootfs private");
        return 0;
}

static int pivot(const char *root, struct err *e)
{
        cleanup_close int fd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open rootfs %s", root);
        if (fchdir(fd) < 0)
                return err_make(e, errno, "chdir rootfs");
        /* crun's trick: stack the old root over the new one, then detach it.
         * No rslave of "." first: it names the new root, whose shared
         * volumes must stay the host's peers; the old root's mounts are
         * slaves or private since mounts_setup began, so the detach does not
         * reach the host. */
        if (syscall(SYS_pivot_root, ".", ".") < 0)
                return err_make(e, errno, "pivot_root %s", root);
        if (umount2(".", MNT_DETACH) < 0)
                return err_make(e, errno, "detach old root");
        if (chdir("/") < 0)
                return err_make(e, errno, "chdir /");
        return 0;
}

static bool has_dest(const struct rt_spec *s, const char *d)
{
        for (size_t i = 0; i < s->n_mounts; i++)
                if (strcmp(s->mounts[i].destination, d) == 0)
                        return true;
        return false;
}

static int build_root(struct ctx *c0, unsigned long prop, struct err *e)
{
        const struct rt_spec *s = c0->spec;
        cleanup_close int userns = -1;
        if (idmap_open_userns(s, &userns, e) < 0 || mount_rootfs(s, userns, e) < 0)
                return -1;

        cleanup_close int rootfd = open(s->root.path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return err_make(e, errno, "open rootfs %s", s->root.path);
        cleanup_free char *cg = NULL;
        if (s->cgroup_path)
                (void)rt_cgroup_resolve(s->cgroup_path, &cg, NULL);
        struct ctx c = {
                .spec = s, .rootfd = rootfd, .cgroup_path = cg, .trees = c0->trees, .userns_fd = userns};

        char *sys_opts[] = {"nosuid", "noexec", "nodev", s->privileged ? "rw" : "ro", NULL};
        char *proc_opts[] = {"nosuid", "noexec", "nodev", NULL};
        char *dev_opts[] = {"nosuid", "strictatime", "mode=755", "size=65536k", NULL};
        char *devhost_opts[] = {"rbind", "rw", NULL};
        char *pts_opts[] = {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5", NULL};
        char *shm_opts[] = {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k", NULL};
        char *mq_opts[] = {"nosuid", "noexec", "nodev", NULL};
        char *cg_opts[] = {"nosuid", "noexec", "nodev", "relatime", NULL};
        const struct rt_mount std[] = {
                {"/proc", "proc", "proc", proc_opts},
                s->privileged ? (struct rt_mount){"/dev", "bind", "/dev", devhost_opts}
                              : (struct rt_mount){"/dev", "tmpfs", "tmpfs", dev_opts},
                {"/dev/pts", "devpts", "devpts", pts_opts},
                {"/dev/shm", "tmpfs", "shm", shm_opts},
                {"/dev/mqueue", "mqueue", "mqueue", mq_opts},
                {"/sys", "sysfs", "sysfs", sys_opts},
                {"/sys/fs/cgroup", "cgroup", "cgroup", cg_opts},
        };
        bool own_dev = !s->privileged && !has_dest(s, "/dev");
        for (size_t i = 0; i < ARRAY_SIZE(std); i++) {
                const struct rt_mount *m = &std[i];
                int tree = -1;
                for (size_t k = 0; k < s->n_mounts; k++)
                        if (strcmp(s->mounts[k].destination, std[i].destination) == 0) {
                                m = &s->mounts[k]; /* the spec's replaces ours, in our place */
                                tree = c.trees[k];
                        }
                if (mount_one(&c, m, tree, e) < 0)
                        return -1;
        }
        for (size_t k = 0; k < s->n_mounts; k++) {
                bool is_std = false;
                for (size_t i = 0; i < ARRAY_SIZE(std); i++)
                        is_std |= strcmp(s->mounts[k].destination, std[i].destination) == 0;
                if (!is_std && mount_one(&c, &s->mounts[k], c.trees[k], e) < 0)
                        return -1;
        }
        if (setup_dev(&c, own_dev, e) < 0)
                return -1;
        if (!s->privileged && (mask_paths(&c, e) < 0 || readonly_paths(&c, e) < 0))
                return -1;
        if (pivot(s->root.path, e) < 0)
                return -1;
        if (prop != (MS_PRIVATE | MS_REC) && mount(NULL, "/", NULL, prop, NULL) < 0)
                return err_make(e, errno, "set rootfs propagation %s", s->rootfs_propagation);
        if (s->readonly_rootfs && mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
                return err_make(e, errno, "remount rootfs read-only");
        return 0;
}

int mounts_setup(const struct rt_spec *s, struct err *e)
{
        unsigned long prop = propagation_flag(s->rootfs_propagation, MS_PRIVATE | MS_REC);
        /* Nothing we mount may leak to the host: slave unless asked private.
         * Shared volumes are cloned before, to stay the host's peers. */
        unsigned long host_prop = (prop & MS_PRIVATE) ? MS_PRIVATE | MS_REC : MS_SLAVE | MS_REC;
        struct ctx c = {.spec = s, .rootfd = -1, .userns_fd = -1};
        int ret = clone_shared_sources(&c, e);
        if (ret == 0 && mount(NULL, "/", NULL, host_prop, NULL) < 0)
                ret = err_make(e, errno, "make / %s", (prop & MS_PRIVATE) ? "rprivate" : "rslave");
        if (ret == 0)
                ret = build_root(&c, prop, e);
        close_trees(&c);
        return ret;
}
