/* Overlay mounts of any depth. mount(2) takes its options in one page, so
 * a deep image's lowerdir list may not fit; the new mount API takes one
 * "lowerdir+" per fsconfig call instead (Linux 6.8; older kernels answer
 * EINVAL). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <unistd.h>

#include "util/util.h"

/* Kernel messages from an fs context ("e overlay: ..."), for the error. */
static char *fs_log(int fsfd)
{
        struct sbuf b = {0};
        char buf[512];
        ssize_t n;
        while ((n = read(fsfd, buf, sizeof(buf) - 1)) > 0) {
                buf[n] = '\0';
                if (b.len)
                        sbuf_puts(&b, "; ");
                sbuf_puts(&b, buf);
        }
        return sbuf_steal(&b);
}

int mount_overlay_layers(char *const *lowerdirs, const char *upperdir, const char *workdir, bool index_off,
                         bool readonly, const char *target, char **why)
{
        int saved;
        int fsfd = fsopen("overlay", FSOPEN_CLOEXEC);
        if (fsfd < 0)
                return -1;
        if (fsconfig(fsfd, FSCONFIG_SET_STRING, "source", "overlay", 0) < 0)
                goto fail;
        if (index_off && fsconfig(fsfd, FSCONFIG_SET_STRING, "index", "off", 0) < 0)
                goto fail;
        for (size_t i = 0; lowerdirs && lowerdirs[i]; i++)
                if (fsconfig(fsfd, FSCONFIG_SET_STRING, "lowerdir+", lowerdirs[i], 0) < 0)
                        goto fail;
        if (upperdir && (fsconfig(fsfd, FSCONFIG_SET_STRING, "upperdir", upperdir, 0) < 0 ||
                         fsconfig(fsfd, FSCONFIG_SET_STRING, "workdir", workdir, 0) < 0))
                goto fail;
        if (readonly && fsconfig(fsfd, FSCONFIG_SET_FLAG, "ro", NULL, 0) < 0)
                goto fail;
        if (fsconfig(fsfd, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
                goto fail;
        int mfd = fsmount(fsfd, FSMOUNT_CLOEXEC, readonly ? MOUNT_ATTR_RDONLY : 0);
        if (mfd < 0)
                goto fail;
        int r = move_mount(mfd, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH);
        saved = errno;
        close(mfd);
        close(fsfd);
        errno = saved;
        return r;
fail:
        saved = errno;
        if (why)
                *why = fs_log(fsfd);
        close(fsfd);
        errno = saved;
        return -1;
}

int mount_overlay(char *const *lowerdirs, const char *upperdir, const char *workdir, bool readonly,
                  const char *target, struct err *e)
{
        size_t n = strv_len(lowerdirs);
        struct sbuf o = {0};
        sbuf_puts(&o, "lowerdir=");
        for (size_t i = 0; i < n; i++)
                sbuf_printf(&o, "%s%s", i ? ":" : "", lowerdirs[i]);
        if (upperdir)
                sbuf_printf(&o, ",upperdir=%s,workdir=%s", upperdir, workdir);
        if ((long)o.len < sysconf(_SC_PAGESIZE)) {
                int rc = mount("overlay", target, "overlay", readonly ? MS_RDONLY : 0, o.buf);
                int er = errno;
                sbuf_free(&o);
                return rc < 0 ? err_make(e, er, "mount overlay (%zu layers) on %s", n, target) : 0;
        }
        size_t need = o.len;
        sbuf_free(&o);
        cleanup_free char *why = NULL;
        if (mount_overlay_layers(lowerdirs, upperdir, workdir, false, readonly, target, &why) == 0)
                return 0;
        if (errno == EINVAL && (!why || !*why))
                return err_set(e, ERR_EXHAUSTED,
                               "mount overlay on %s: %zu layers need %zu bytes of options, over mount(2)'s "
                               "page, and this kernel lacks overlayfs lowerdir+ (Linux 6.8)",
                               target, n, need);
        return err_make(e, errno, "mount overlay (%zu layers) on %s%s%s", n, target, why && *why ? ": " : "",
                        why ? why : "");
}
