/* User namespaces for pods (KEP-127) and the idmapped mounts that go with
 * them. A pod's user namespace is made once (rt_userns_new) and pinned by
 * cri; each container joins it last, after its mounts are built by host
 * root: the rootfs and the bind mounts get the user namespace as their idmap
 * (mount_setattr MOUNT_ATTR_IDMAP), so a file owned by host uid 0 shows as
 * the container's root and what that root writes lands on disk as uid 0.
 * The image is not chowned: the overlay rootfs is built over idmapped lower
 * layers (each gets an idmapped bind of itself in the container's mount
 * namespace before overlayfs is mounted there; Linux 5.19). An overlay
 * mount itself does not take an idmap on every kernel that idmaps
 * ext4/xfs/tmpfs (6.18 here answers EINVAL); its layers do.
 * rt_host_features probes both once. The upper layer is not idmapped (see
 * idmap_layers): what the container writes is stored as its host ids,
 * as with a chowned snapshot. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/runtime-internal.h"

static int write_map(pid_t pid, const char *file, const struct rt_id_map *m, size_t n, struct err *e)
{
        struct sbuf b = {0};
        for (size_t i = 0; i < n; i++)
                sbuf_printf(&b, "%u %u %u\n", m[i].container_id, m[i].host_id, m[i].size);
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, file);
        cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
        int r = fd < 0 ? -1 : (int)write(fd, b.buf ? b.buf : "", b.len);
        int er = errno;
        sbuf_free(&b);
        return r < 0 ? err_make(e, er, "write %s mapping", file) : 0;
}

int rt_userns_new(const struct rt_id_map *uid, size_t n_uid, const struct rt_id_map *gid, size_t n_gid,
                  struct err *e)
{
        if (n_uid == 0 || n_gid == 0)
                return err_set(e, ERR_INVALID, "a user namespace needs uid and gid mappings");
        /* The child only holds the namespace while the maps are written.
         * A plain fork (valgrind runs nothing else) that keeps none of the
         * daemon's fds (child_isolate) and runs no code but pause(). */
        int ready[2];
        if (pipe2(ready, O_CLOEXEC) < 0)
                return err_make(e, errno, "pipe");
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid < 0) {
                int er = errno;
                close(ready[0]);
                close(ready[1]);
                return err_make(e, er, "fork");
        }
        if (pid == 0) {
                child_isolate(self, &ready[1], 1);
                char c = unshare(CLONE_NEWUSER) < 0 ? (char)errno : 0;
                if (write(ready[1], &c, 1) != 1 || c)
                        _exit(1);
                for (;;)
                        pause();
        }
        close(ready[1]);
        char c = 0;
        ssize_t n;
        while ((n = read(ready[0], &c, 1)) < 0 && errno == EINTR)
                ;
        close(ready[0]);
        if (n != 1 || c) {
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
                return err_make(e, n == 1 ? (unsigned char)c : ECHILD, "create a user namespace");
        }
        int fd = -1;
        char p[64];
        snprintf(p, sizeof(p), "/proc/%d/ns/user", (int)pid);
        if (write_map(pid, "uid_map", uid, n_uid, e) == 0 && write_map(pid, "gid_map", gid, n_gid, e) == 0) {
                fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        err_make(e, errno, "open %s", p);
        }
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        return fd;
}

int idmap_open_userns(const struct rt_spec *s, int *fd, struct err *e)
{
        const struct rt_namespace *n = &s->namespaces[RT_NS_USER];
        *fd = -1;
        if (n->mode != RT_NS_JOIN)
                return 0;
        *fd = open(n->path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
                return err_make(e, errno, "open user namespace %s", n->path);
        return 0;
}

uint32_t idmap_to_host(const struct rt_id_map *m, size_t n, uint32_t id)
{
        for (size_t i = 0; i < n; i++)
                if (id >= m[i].container_id && id - m[i].container_id < m[i].size)
                        return m[i].host_id + (id - m[i].container_id);
        return 65534; /* the kernel's overflow id: what an unmapped id shows as */
}

static int setattr_idmap(int tree, int userns_fd, bool recursive)
{
        struct mount_attr a = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (uint64_t)userns_fd};
        return mount_setattr(tree, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof(a));
}

int idmap_stack(const char *path, int userns_fd, struct err *e)
{
        cleanup_close int tree = open_tree(
                AT_FDCWD, path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_NO_AUTOMOUNT);
        if (tree < 0)
                return err_make(e, errno, "clone the mount at %s", path);
        if (setattr_idmap(tree, userns_fd, true) < 0)
                return err_make(e, errno, "idmap the mount at %s to the pod's user namespace", path);
        if (move_mount(tree, "", AT_FDCWD, path, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return err_make(e, errno, "mount the idmapped %s", path);
        return 0;
}

int idmap_layers(const struct rt_spec *s, int userns_fd, struct err *e)
{
        const struct rt_rootfs *r = &s->root;
        for (char **l = r->lowerdirs; l && *l; l++) {
                /* The snapshotter's lowerdirs are short symlinks: stack on the directory. */
                cleanup_free char *real = realpath(*l, NULL);
                if (real == NULL)
                        return err_make(e, errno, "layer %s", *l);
                if (idmap_stack(real, userns_fd, e) < 0)
                        return -1;
        }
        if (r->upperdir == NULL)
                return 0;
        /* The upper layer stays as it is: overlayfs makes its workdir and
         * copies up with the mounter's (host root's) ids, which an idmapped
         * upper cannot store (EOVERFLOW). What the container writes lands
         * there as its host ids; the merged root is the upper's directory,
         * so that one is the container root's. */
        uid_t uid = idmap_to_host(s->uid_mappings, s->n_uid_mappings, 0);
        gid_t gid = idmap_to_host(s->gid_mappings, s->n_gid_mappings, 0);
        if (chown(r->upperdir, uid, gid) < 0)
                return err_make(e, errno, "chown upper layer %s to the pod's root %u:%u", r->upperdir, uid,
                                gid);
        return 0;
}

int idmap_bind(const char *src, bool recursive, int userns_fd, int rootfd, const char *dest, struct err *e)
{
        cleanup_close int dest_fd = openat_in_root(rootfd, dest, O_PATH | O_CLOEXEC, 0);
        if (dest_fd < 0)
                return err_make(e, errno, "open %s in rootfs", dest);
        cleanup_close int tree = open_tree(
                AT_FDCWD, src, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | (recursive ? AT_RECURSIVE : 0));
        if (tree < 0)
                return err_make(e, errno, "bind %s on %s: clone", src, dest);
        /* A filesystem without idmap support (devtmpfs for a device node,
         * procfs, ...) keeps the plain bind, as host ids. */
        if (setattr_idmap(tree, userns_fd, recursive) < 0 && errno != EINVAL && errno != EOPNOTSUPP)
                return err_make(e, errno, "bind %s on %s: idmap to the pod's user namespace", src, dest);
        if (move_mount(tree, "", dest_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH) < 0)
                return err_make(e, errno, "bind %s on %s", src, dest);
        return 0;
}

char *idmap_fs_data(const struct rt_spec *s, const char *type, const char *data)
{
        if (s->namespaces[RT_NS_USER].mode != RT_NS_JOIN || s->n_uid_mappings == 0 || type == NULL)
                return NULL;
        struct sbuf b = {0};
        sbuf_puts(&b, data ? data : "");
        if (strcmp(type, "tmpfs") == 0) {
                /* Owned by the container's root, not by an unmapped host root. */
                sbuf_printf(&b, "%suid=%u,gid=%u", b.len ? "," : "",
                            idmap_to_host(s->uid_mappings, s->n_uid_mappings, 0),
                            idmap_to_host(s->gid_mappings, s->n_gid_mappings, 0));
        } else if (strcmp(type, "devpts") == 0 && data) {
                /* gid=5 (tty) is read in the mounter's (the host's) ids. */
                sbuf_free(&b);
                cleanup_free char *copy = xstrdup(data);
                char *save = NULL;
                for (char *w = strtok_r(copy, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
                        if (b.len)
                                sbuf_putc(&b, ',');
                        if (strncmp(w, "gid=", 4) == 0)
                                sbuf_printf(&b, "gid=%u",
                                            idmap_to_host(s->gid_mappings, s->n_gid_mappings,
                                                          (uint32_t)strtoul(w + 4, NULL, 10)));
                        else
                                sbuf_puts(&b, w);
                }
        } else {
                sbuf_free(&b);
                return NULL;
        }
        return sbuf_steal(&b);
}

/* The probe's child, in a mount namespace of its own: overlay over an
 * idmapped lower must show the lower's root-owned file as the mapped id.
 * Raw syscalls only (it is forked from a threaded daemon). */
static int probe_layers_child(const char *l1, const char *l2, const char *m, const char *opts, int userns_fd,
                              uid_t want)
{
        struct stat st;
        if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                return 2;
        int t = open_tree(AT_FDCWD, l1, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (t < 0 || setattr_idmap(t, userns_fd, false) < 0)
                return 3;
        if (move_mount(t, "", AT_FDCWD, l1, MOVE_MOUNT_F_EMPTY_PATH) < 0)
                return 4;
        if (mount("overlay", m, "overlay", MS_RDONLY, opts) < 0)
                return 5;
        (void)l2;
        return stat(m, &st) == 0 && st.st_uid == want ? 0 : 6;
}

void idmap_probe(int userns_fd, uid_t mapped_root, bool *overlay, bool *layers, char **why)
{
        static const char *const step[] = {"",
                                           "",
                                           "mount namespace",
                                           "idmap a layer (Linux 5.12)",
                                           "attach the idmapped layer",
                                           "overlay over an idmapped layer (Linux 5.19)",
                                           "the layer's root not shown as the mapped id"};
        char base[] = "/tmp/corral-idmap-probe.XXXXXX";
        *overlay = *layers = false;
        *why = NULL;
        if (mkdtemp(base) == NULL) {
                *why = xasprintf("mkdtemp: %s", strerror(errno));
                return;
        }
        cleanup_free char *l1 = path_join(base, "l1");
        cleanup_free char *l2 = path_join(base, "l2");
        cleanup_free char *m = path_join(base, "m");
        cleanup_free char *opts = xasprintf("lowerdir=%s:%s", l1, l2);
        int fsfd = -1, mfd = -1;
        if (mkdir(l1, 0755) < 0 || mkdir(l2, 0755) < 0 || mkdir(m, 0755) < 0) {
                *why = xasprintf("mkdir: %s", strerror(errno));
                goto out;
        }
        /* An overlay mount that takes an idmap itself (informational). */
        fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fsfd >= 0 &&
            fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir", opts + strlen("lowerdir="), 0) == 0 &&
            fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) == 0 &&
            (mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, MOUNT_ATTR_RDONLY)) >= 0)
                *overlay = setattr_idmap(mfd, userns_fd, false) == 0;
        /* What containers use: overlay over idmapped layers, in a child
         * (its own mount namespace) that keeps only the namespace's fd. */
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid == 0) {
                child_isolate(self, &userns_fd, 1);
                _exit(probe_layers_child(l1, l2, m, opts, userns_fd, mapped_root));
        }
        int st = 0;
        if (pid < 0) {
                *why = xasprintf("probe: fork: %s", strerror(errno));
                goto out;
        }
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : 1;
        *layers = code == 0;
        if (!*layers)
                *why = xasprintf("%s failed", code >= 2 && code <= 6 ? step[code] : "the idmap probe");
out:
        if (mfd >= 0)
                close(mfd);
        if (fsfd >= 0)
                close(fsfd);
        (void)rmdir(l1);
        (void)rmdir(l2);
        (void)rmdir(m);
        (void)rmdir(base);
}
