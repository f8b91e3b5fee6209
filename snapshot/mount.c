/* snapshot: mounting a snap_mount. mount(2) takes its options in one page,
 * so a deep image needs care: absolute short links when they fit, else the
 * new mount API adding one lower layer per fsconfig call ("lowerdir+",
 * Linux 6.8), else the relative "l/<ID>" names from a child process that
 * changed into the driver directory (Docker's mountFrom). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>

#include "snapshot/snapshot-internal.h"

unsigned snap_mount_ways = SNAP_MOUNT_ALL;

static const char *rel(const struct snap_mount *m, const char *path)
{
        size_t n = m->linkroot ? strlen(m->linkroot) : 0;
        if (n && strncmp(path, m->linkroot, n) == 0 && path[n] == '/')
                return path + n + 1;
        return path;
}

/* "index=off,lowerdir=a:b,upperdir=u,workdir=w", paths relative to the
 * driver directory when `relative`. */
static char *overlay_data(const struct snap_mount *m, bool relative)
{
        struct sbuf b = {0};
        for (char **o = m->options; o && *o; o++) {
                if (strcmp(*o, "ro") == 0 || str_has_prefix(*o, "lowerdir=") ||
                    str_has_prefix(*o, "upperdir=") || str_has_prefix(*o, "workdir="))
                        continue; /* flags, or rebuilt below */
                sbuf_puts(&b, *o);
                sbuf_putc(&b, ',');
        }
        sbuf_puts(&b, "lowerdir=");
        for (size_t i = 0; m->lowerdirs && m->lowerdirs[i]; i++) {
                if (i)
                        sbuf_putc(&b, ':');
                sbuf_puts(&b, relative ? rel(m, m->lowerdirs[i]) : m->lowerdirs[i]);
        }
        if (m->upperdir) {
                sbuf_printf(&b, ",upperdir=%s", relative ? rel(m, m->upperdir) : m->upperdir);
                sbuf_printf(&b, ",workdir=%s", relative ? rel(m, m->workdir) : m->workdir);
        }
        return sbuf_steal(&b);
}

/* mount(2) with paths relative to dir, from a child: the caller's working
 * directory (shared by all its threads) is left alone. */
static int mount_from(const char *dir, const char *target, unsigned long flags, const char *data)
{
        pid_t self = getpid();
        pid_t pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                /* only async-signal-safe calls here */
                child_isolate(self, NULL, 0);
                if (chdir(dir) < 0 || mount("overlay", target, "overlay", flags, data) < 0)
                        _exit(errno & 0xff);
                _exit(0);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -1;
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                return 0;
        errno = WIFEXITED(status) ? WEXITSTATUS(status) : EINTR;
        return -1;
}

static int mount_snap_overlay(const struct snap_mount *m, const char *target, struct err *e)
{
        long page = sysconf(_SC_PAGESIZE);
        unsigned long flags = m->readonly ? MS_RDONLY : 0;
        size_t nl = strv_len(m->lowerdirs);
        cleanup_free char *abs = overlay_data(m, false);
        if ((snap_mount_ways & SNAP_MOUNT_ABSOLUTE) && (long)strlen(abs) < page) {
                if (mount("overlay", target, "overlay", flags, abs) < 0)
                        return err_make(e, errno, "mount overlay (%zu layers) on %s", nl, target);
                return 0;
        }
        if (snap_mount_ways & SNAP_MOUNT_NEWAPI) {
                cleanup_free char *why = NULL;
                bool index_off = false;
                for (char **o = m->options; o && *o; o++)
                        index_off |= strcmp(*o, "index=off") == 0;
                if (mount_overlay_layers(m->lowerdirs, m->upperdir, m->workdir, index_off, m->readonly,
                                         target, &why) == 0)
                        return 0;
                /* EINVAL for "lowerdir+" or ENOSYS: an older kernel, go on */
                if (errno != EINVAL && errno != ENOSYS && errno != EPERM)
                        return err_make(e, errno, "mount overlay (%zu layers) on %s%s%s", nl, target,
                                        why && *why ? ": " : "", why ? why : "");
                log_debug("snapshot", "mount new API failed errno=%d why=\"%s\"", errno, why ? why : "");
        }
        cleanup_free char *relative = overlay_data(m, true);
        if ((snap_mount_ways & SNAP_MOUNT_RELATIVE) && m->linkroot && (long)strlen(relative) < page) {
                char full[PATH_MAX];
                if (target[0] != '/' && realpath(target, full) == NULL)
                        return err_make(e, errno, "mount target %s", target);
                if (mount_from(m->linkroot, target[0] == '/' ? target : full, flags, relative) < 0)
                        return err_make(e, errno, "mount overlay (%zu layers, relative short links) on %s",
                                        nl, target);
                return 0;
        }
        return err_set(
                e, ERR_EXHAUSTED,
                "mount overlay on %s: %zu layers need %zu bytes of options even with short links, over "
                "the %ld-byte limit of mount(2), and the kernel lacks lowerdir+ (Linux 6.8)",
                target, nl, strlen(relative), page);
}

int snap_mount(const struct snap_mount *m, const char *target, struct err *e)
{
        if (m == NULL || m->type == NULL)
                return err_set(e, ERR_INVALID, "mount on %s: no mount description", target);
        if (strcmp(m->type, "overlay") == 0)
                return mount_snap_overlay(m, target, e);
        if (strcmp(m->type, "bind") != 0)
                return err_set(e, ERR_INVALID, "mount on %s: unknown type %s", target, m->type);
        if (mount(m->source, target, NULL, MS_BIND | MS_REC, NULL) < 0)
                return err_make(e, errno, "bind mount %s on %s", m->source, target);
        if (m->readonly && mount(NULL, target, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL) < 0) {
                int saved = errno;
                (void)umount2(target, MNT_DETACH);
                return err_make(e, saved, "remount %s read-only", target);
        }
        return 0;
}

int snap_unmount(const char *target, struct err *e)
{
        if (umount2(target, UMOUNT_NOFOLLOW) == 0 || errno == EINVAL || errno == ENOENT)
                return 0; /* EINVAL: not a mount point */
        return err_make(e, errno, "unmount %s", target);
}
