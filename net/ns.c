/* Pinned pod namespaces: no pause process. Without a user namespace a
 * vfork-like child (it shares our memory, we wait) unshares the namespaces
 * and bind-mounts its /proc/self/ns/<type> onto files under the pod's ns
 * dir itself: no copy of the daemon's page tables. With one, a forked child
 * joins it, unshares and waits while the parent (which has the rights
 * there) mounts /proc/<child>/ns/<type>. The child exits and the mounts
 * keep the namespaces. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>

#include "net/net-internal.h"

#ifndef NSFS_MAGIC
#define NSFS_MAGIC 0x6e736673
#endif

static const struct {
        int flag;
        const char *name;
} ns_types[] = {
        {CLONE_NEWNET, "net"},
        {CLONE_NEWIPC, "ipc"},
        {CLONE_NEWUTS, "uts"},
        {CLONE_NEWUSER, "user"}, /* pinned only with a userns_fd */
};

bool net_ns_is_pinned(const char *path)
{
        struct statfs sfs;
        return path && statfs(path, &sfs) == 0 && sfs.f_type == NSFS_MAGIC;
}

/* Make the ns root a mount point of its own with private propagation, as
 * `ip netns` does for /run/netns: pins made under it then do not propagate
 * into (or get held by) peers of the parent mount. Done once per root; the
 * mutex keeps two first pods from stacking two bind mounts. */
static pthread_mutex_t root_lock = PTHREAD_MUTEX_INITIALIZER;

static int prepare_root(const char *root, struct err *e)
{
        int ret = 0;

        pthread_mutex_lock(&root_lock);
        if (mkdir_p(root, 0711, e) < 0) {
                ret = -1;
                goto out;
        }
        if (mount(NULL, root, NULL, MS_PRIVATE, NULL) == 0)
                goto out; /* already a mount point */
        if (errno != EINVAL) {
                ret = err_make(e, errno, "make %s private", root);
                goto out;
        }
        if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) < 0) {
                ret = err_make(e, errno, "bind mount %s on itself", root);
                goto out;
        }
        if (mount(NULL, root, NULL, MS_PRIVATE, NULL) < 0)
                ret = err_make(e, errno, "make %s private", root);
out:
        pthread_mutex_unlock(&root_lock);
        return ret;
}

static void unpin_one(const char *path)
{
        /* MNT_DETACH: a racing setns holder must not make unpin fail. A pin
         * mounted twice (a crash between mount and bookkeeping) goes fully. */
        while (umount2(path, MNT_DETACH) == 0)
                ;
        (void)unlink(path);
}

int net_ns_unpin(const char *dir, struct err *e)
{
        for (size_t i = 0; i < ARRAY_SIZE(ns_types); i++) {
                cleanup_free char *p = path_join(dir, ns_types[i].name);
                unpin_one(p);
                if (access(p, F_OK) == 0)
                        return err_make(e, EBUSY, "unpin %s", p);
        }
        if (rmdir(dir) < 0 && errno != ENOENT)
                return err_make(e, errno, "remove %s", dir);
        return 0;
}

void net_ns_paths_free(struct net_ns_paths *p)
{
        if (!p)
                return;
        free(p->net);
        free(p->ipc);
        free(p->uts);
        free(p->user);
        p->net = p->ipc = p->uts = p->user = NULL;
}

/* The child: only async-signal-safe calls (the daemon is multi-threaded). */
static __attribute__((noreturn)) void child_main(pid_t parent, int flags, const char *hostname, int userns_fd,
                                                 int wfd, int rfd)
{
        char c = 0;

        /* Only its own ends: with the parent's (or another pod's child's)
         * write end open, the read below would never see EOF. */
        const int keep[] = {wfd, rfd, userns_fd};
        child_isolate(parent, keep, ARRAY_SIZE(keep));

        if ((userns_fd >= 0 && setns(userns_fd, CLONE_NEWUSER) < 0) || unshare(flags) < 0 ||
            (hostname && (flags & CLONE_NEWUTS) && sethostname(hostname, strlen(hostname)) < 0))
                c = (char)errno;
        if (write(wfd, &c, 1) != 1)
                _exit(1);
        /* Stay alive until the parent has its mounts (it closes its end). */
        while (read(rfd, &c, 1) < 0 && errno == EINTR)
                ;
        _exit(0);
}

/* What the vfork-like child does and reports back through shared memory. */
struct pin_job {
        int flags;
        const char *hostname;
        const char *src[3];
        const char *dst[3];
        size_t n;
        int err;
        const char *failed;
};

/* Only system calls: it runs on our memory while we are stopped. */
static int pin_child(void *arg)
{
        struct pin_job *j = arg;
        if (unshare(j->flags) < 0) {
                j->err = errno;
                j->failed = "unshare";
                _exit(1);
        }
        if (j->hostname && (j->flags & CLONE_NEWUTS) && sethostname(j->hostname, strlen(j->hostname)) < 0) {
                j->err = errno;
                j->failed = "sethostname";
                _exit(1);
        }
        for (size_t i = 0; i < j->n; i++)
                if (mount(j->src[i], j->dst[i], NULL, MS_BIND, NULL) < 0) {
                        j->err = errno;
                        j->failed = j->dst[i];
                        _exit(1);
                }
        _exit(0);
}

/* What both pinning paths check and prepare first: the namespaces asked
 * for (masked to the pinnable ones, in *flags), the hostname, and dir with
 * its root mounted as the pins need. */
static int pin_prepare(const char *dir, int *flags, const char *hostname, struct net_ns_paths *out,
                       struct err *e)
{
        memset(out, 0, sizeof(*out));
        *flags &= CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
        if (!*flags)
                return err_set(e, ERR_INVALID, "pin namespaces in %s: no namespace asked for", dir);
        if (hostname && strlen(hostname) > 64)
                return err_set(e, ERR_INVALID, "hostname %s is longer than 64 bytes", hostname);
        cleanup_free char *root = xstrdup(dir);
        char *slash = strrchr(root, '/');
        if (!slash || slash == root)
                return err_set(e, ERR_INVALID, "ns dir %s must be an absolute path below a root", dir);
        *slash = '\0';
        if (prepare_root(root, e) < 0)
                return err_wrap(e, "pin namespaces in %s", dir);
        if (mkdir(dir, 0711) < 0 && errno != EEXIST)
                return err_make(e, errno, "create %s", dir);
        return 0;
}

int net_ns_pin(const char *dir, int flags, const char *hostname, struct net_ns_paths *out, struct err *e)
{
        struct net_ns_paths paths = {0};
        struct pin_job j = {.hostname = hostname};
        enum { STACK = 64 << 10 };

        if (pin_prepare(dir, &flags, hostname, out, e) < 0)
                return -1;
        j.flags = flags;
        for (size_t i = 0; i < ARRAY_SIZE(ns_types); i++) {
                if (!(flags & ns_types[i].flag))
                        continue;
                char *dst = path_join(dir, ns_types[i].name);
                if (ns_types[i].flag == CLONE_NEWNET)
                        paths.net = dst;
                else if (ns_types[i].flag == CLONE_NEWIPC)
                        paths.ipc = dst;
                else
                        paths.uts = dst;
                /* A stale pin from an earlier attempt is replaced. */
                unpin_one(dst);
                int fd = open(dst, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
                if (fd < 0) {
                        err_make(e, errno, "create %s", dst);
                        goto fail;
                }
                close(fd);
                j.src[j.n] = ns_types[i].flag == CLONE_NEWNET   ? "/proc/self/ns/net"
                             : ns_types[i].flag == CLONE_NEWIPC ? "/proc/self/ns/ipc"
                                                                : "/proc/self/ns/uts";
                j.dst[j.n++] = dst;
        }
        {
                cleanup_free char *stack = xmalloc(STACK);
                /* CLONE_VFORK: we are stopped until it exits, so it may use
                 * this thread's memory; SIGCHLD so that waitpid reaps it. */
                pid_t pid = clone(pin_child, stack + STACK, CLONE_VM | CLONE_VFORK | SIGCHLD, &j);
                if (pid < 0) {
                        err_make(e, errno, "clone");
                        goto fail;
                }
                int st = 0;
                while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                        ;
                if (j.err || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                        err_make(e, j.err ? j.err : EIO, "pin namespaces in %s: %s", dir,
                                 j.failed ? j.failed : "the child died");
                        goto fail;
                }
        }
        if (paths.net && net_link_set_up(paths.net, "lo", true, e) < 0) {
                err_wrap(e, "bring up lo in %s", paths.net);
                goto fail;
        }
        *out = paths;
        return 0;
fail:
        net_ns_paths_free(&paths);
        (void)net_ns_unpin(dir, NULL);
        return -1;
}

int net_ns_pin_userns(const char *dir, int flags, const char *hostname, int userns_fd,
                      struct net_ns_paths *out, struct err *e)
{
        int p2c[2] = {-1, -1}, c2p[2] = {-1, -1};
        struct net_ns_paths paths = {0};
        pid_t pid = -1;
        char c;
        int ret = -1;

        if (pin_prepare(dir, &flags, hostname, out, e) < 0)
                return -1;

        if (pipe2(p2c, O_CLOEXEC) < 0 || pipe2(c2p, O_CLOEXEC) < 0) {
                err_make(e, errno, "pipe");
                goto fail;
        }
        pid_t self = getpid();
        pid = fork();
        if (pid < 0) {
                err_make(e, errno, "fork");
                goto fail;
        }
        if (pid == 0)
                child_main(self, flags, hostname, userns_fd, c2p[1], p2c[0]);
        close(c2p[1]);
        c2p[1] = -1;
        close(p2c[0]);
        p2c[0] = -1;

        ssize_t n;
        do
                n = read(c2p[0], &c, 1);
        while (n < 0 && errno == EINTR);
        if (n != 1) {
                err_set(e, ERR_INTERNAL, "namespace child died before unsharing");
                goto fail;
        }
        if (c != 0) {
                err_make(e, (unsigned char)c, "unshare namespaces for %s", dir);
                goto fail;
        }

        for (size_t i = 0; i < ARRAY_SIZE(ns_types); i++) {
                if (!(flags & ns_types[i].flag) && !(ns_types[i].flag == CLONE_NEWUSER && userns_fd >= 0))
                        continue;
                char src[64];
                char *dst = path_join(dir, ns_types[i].name);
                if (ns_types[i].flag == CLONE_NEWNET)
                        paths.net = dst;
                else if (ns_types[i].flag == CLONE_NEWIPC)
                        paths.ipc = dst;
                else if (ns_types[i].flag == CLONE_NEWUTS)
                        paths.uts = dst;
                else
                        paths.user = dst;
                snprintf(src, sizeof(src), "/proc/%d/ns/%s", (int)pid, ns_types[i].name);
                /* A stale pin from an earlier attempt is replaced. */
                unpin_one(dst);
                int fd = open(dst, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0444);
                if (fd < 0) {
                        err_make(e, errno, "create %s", dst);
                        goto fail;
                }
                close(fd);
                if (mount(src, dst, NULL, MS_BIND, NULL) < 0) {
                        err_make(e, errno, "bind mount %s on %s", src, dst);
                        goto fail;
                }
        }
        close(p2c[1]);
        p2c[1] = -1;
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                ;
        pid = -1;

        if (paths.net && net_link_set_up(paths.net, "lo", true, e) < 0) {
                err_wrap(e, "bring up lo in %s", paths.net);
                goto fail;
        }
        *out = paths;
        ret = 0;
        close(c2p[0]);
        return ret;

fail:
        if (pid > 0) {
                kill(pid, SIGKILL);
                while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        for (int i = 0; i < 2; i++) {
                if (p2c[i] >= 0)
                        close(p2c[i]);
                if (c2p[i] >= 0)
                        close(c2p[i]);
        }
        net_ns_paths_free(&paths);
        (void)net_ns_unpin(dir, NULL);
        return ret;
}

int net_ns_enter(const char *path, int *saved, struct err *e)
{
        cleanup_close int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
        if (self < 0)
                return err_make(e, errno, "open own netns");
        cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open netns %s", path);
        if (setns(fd, CLONE_NEWNET) < 0)
                return err_make(e, errno, "enter netns %s", path);
        *saved = steal_fd(&self);
        return 0;
}

void net_ns_leave(int *saved)
{
        if (*saved < 0)
                return;
        if (setns(*saved, CLONE_NEWNET) < 0)
                abort();
        close(*saved);
        *saved = -1;
}
