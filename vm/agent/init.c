/* pid 1 duties of corral-agent: root switch, mounts, modules, the port. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>

#include "vm/agent/agent-internal.h"
#include "vm/agent/transport-internal.h"

static int copy_file(const char *src, const char *dst, mode_t mode, struct err *e)
{
        cleanup_close int in = open(src, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return err_make(e, errno, "open %s", src);
        cleanup_close int out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (out < 0)
                return err_make(e, errno, "create %s", dst);
        char buf[65536];
        ssize_t n;
        while ((n = read(in, buf, sizeof(buf))) > 0)
                if (fd_write_all(out, buf, (size_t)n) < 0)
                        return err_make(e, errno, "write %s", dst);
        return n < 0 ? err_make(e, errno, "read %s", src) : 0;
}

/* Copy a tree of regular files, directories and symlinks. */
static int copy_tree(const char *src, const char *dst, struct err *e)
{
        struct stat st;
        if (lstat(src, &st) < 0)
                return err_make(e, errno, "stat %s", src);
        if (S_ISLNK(st.st_mode)) {
                char t[4096];
                ssize_t n = readlink(src, t, sizeof(t) - 1);
                if (n < 0)
                        return err_make(e, errno, "readlink %s", src);
                t[n] = '\0';
                return symlink(t, dst) < 0 ? err_make(e, errno, "symlink %s", dst) : 0;
        }
        if (S_ISREG(st.st_mode))
                return copy_file(src, dst, st.st_mode & 07777, e);
        if (!S_ISDIR(st.st_mode))
                return 0;
        if (mkdir(dst, st.st_mode & 07777) < 0 && errno != EEXIST)
                return err_make(e, errno, "mkdir %s", dst);
        cleanup_dir DIR *d = opendir(src);
        if (!d)
                return err_make(e, errno, "open %s", src);
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
                        continue;
                cleanup_free char *s = path_join(src, de->d_name);
                cleanup_free char *t = path_join(dst, de->d_name);
                if (copy_tree(s, t, e) < 0)
                        return -1;
        }
        return 0;
}

/* pivot_root(2) refuses the initramfs (rootfs), and the containers need it:
 * do what switch_root does, onto a tmpfs. The initramfs files are deleted
 * once copied so their memory is freed. */
static int leave_rootfs(struct err *e)
{
        struct statfs sf;
        if (statfs("/", &sf) < 0)
                return err_make(e, errno, "statfs /");
        if (access("/.corral-root", F_OK) == 0 || (sf.f_type != RAMFS_MAGIC && sf.f_type != TMPFS_MAGIC))
                return 0;
        if (mkdir("/.r", 0755) < 0 && errno != EEXIST)
                return err_make(e, errno, "mkdir /.r");
        if (mount("tmpfs", "/.r", "tmpfs", MS_NOSUID, "mode=0755") < 0)
                return err_make(e, errno, "mount tmpfs on /.r");
        cleanup_dir DIR *d = opendir("/");
        if (!d)
                return err_make(e, errno, "open /");
        struct dirent *de;
        while ((de = readdir(d))) {
                if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || !strcmp(de->d_name, ".r") ||
                    !strcmp(de->d_name, "dev") || !strcmp(de->d_name, "root"))
                        continue;
                cleanup_free char *s = path_join("/", de->d_name);
                cleanup_free char *t = path_join("/.r", de->d_name);
                if (copy_tree(s, t, e) < 0)
                        return -1;
                (void)rm_rf(s, NULL);
        }
        int fd = open("/.r/.corral-root", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        if (chdir("/.r") < 0 || mount(".", "/", NULL, MS_MOVE, NULL) < 0 || chroot(".") < 0 || chdir("/") < 0)
                return err_make(e, errno, "switch root to tmpfs");
        return 0;
}

static int mnt(const char *src, const char *dst, const char *type, unsigned long flags, const char *data,
               struct err *e)
{
        (void)mkdir_p(dst, 0755, NULL);
        if (mount(src, dst, type, flags, data) < 0 && errno != EBUSY)
                return err_make(e, errno, "mount %s on %s", type, dst);
        return 0;
}

int agent_init_system(struct err *e)
{
        if (leave_rootfs(e) < 0)
                return -1;
        if (mnt("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, e) < 0 ||
            mnt("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, e) < 0 ||
            mnt("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", e) < 0 ||
            mnt("cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, e) < 0 ||
            mnt("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", e) < 0 ||
            mnt("tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755", e) < 0 ||
            mnt("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620",
                e) < 0 ||
            mnt("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", e) < 0)
                return -1;
        (void)mkdir_p(AGENT_SHARES_DIR, 0755, NULL);
        if (access("/lib/modules/order", F_OK) == 0 && agent_load_modules("/lib/modules/order", e) < 0)
                return -1;
        /* The console (hvc0) exists once virtio_console is loaded. */
        int con = open("/dev/hvc0", O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (con >= 0) {
                dup2(con, STDOUT_FILENO);
                dup2(con, STDERR_FILENO);
                close(con);
        }
        return 0;
}

int agent_load_modules(const char *order_file, struct err *e)
{
        cleanup_free char *list = NULL;
        if (file_read_all(order_file, &list, NULL, 0, e) < 0)
                return -1;
        cleanup_free char *dir = xstrdup(order_file);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = '\0';
        char *save = NULL;
        for (char *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (!*line || *line == '#')
                        continue;
                cleanup_free char *p = path_join(dir, line);
                cleanup_close int fd = open(p, O_RDONLY | O_CLOEXEC);
                if (fd < 0)
                        return err_make(e, errno, "open module %s", p);
                if (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)
                        return err_make(e, errno, "load module %s", line);
        }
        return 0;
}

int agent_find_port(const char *name)
{
        cleanup_dir DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *de;
        while (d && (de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char p[512];
                snprintf(p, sizeof(p), "/sys/class/virtio-ports/%s/name", de->d_name);
                cleanup_free char *n = NULL;
                size_t len = 0;
                if (file_read_all(p, &n, &len, 256, NULL) < 0)
                        continue;
                while (len && (n[len - 1] == '\n' || n[len - 1] == '\0'))
                        n[--len] = '\0';
                if (strcmp(n, name) != 0)
                        continue;
                /* devtmpfs creates /dev/vportNpM. */
                snprintf(p, sizeof(p), "/dev/%s", de->d_name);
                int fd = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
                if (fd >= 0)
                        return fd;
        }
        return -1;
}

int agent_open_port(const char *name, int timeout_ms, struct err *e)
{
        int64_t deadline = time_mono_ns() / 1000000 + timeout_ms;
        for (;;) {
                int fd = agent_find_port(name);
                if (fd >= 0)
                        return fd;
                if (time_mono_ns() / 1000000 >= deadline)
                        return err_set(e, ERR_NOT_FOUND, "no virtio-serial port named %s", name);
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
        }
}
