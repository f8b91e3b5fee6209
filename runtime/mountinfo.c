/* Host side: the propagation of the mount that holds a path, read from
 * /proc/self/mountinfo. A volume with BIDIRECTIONAL or HOST_TO_CONTAINER
 * propagation only works when its host mount is shared (or a slave): the
 * container's bind joins that mount's peer group or its master's. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "runtime/runtime-internal.h"

/* statx of `path`, or of its nearest existing ancestor. */
static int mount_id_of(const char *path, uint64_t *id, struct err *e)
{
        cleanup_free char *p = xstrdup(path);
        for (;;) {
                struct statx sx;
                if (statx(AT_FDCWD, p, 0, STATX_MNT_ID, &sx) == 0) {
                        if (!(sx.stx_mask & STATX_MNT_ID))
                                return err_set(e, ERR_UNIMPLEMENTED, "statx of %s: no mount id", p);
                        *id = sx.stx_mnt_id;
                        return 0;
                }
                char *slash = strrchr(p, '/');
                if (errno != ENOENT || slash == NULL || slash == p)
                        return err_make(e, errno, "statx %s", p);
                *slash = '\0';
        }
}

int rt_mount_propagation(const char *path, unsigned *out, char **mountpoint, struct err *e)
{
        uint64_t id = 0;
        if (mount_id_of(path, &id, e) < 0)
                return -1;
        cleanup_free char *buf = NULL;
        size_t len;
        if (file_read_all("/proc/self/mountinfo", &buf, &len, 0, e) < 0)
                return -1;
        /* "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 shared:2 - ext3 /dev/root rw" */
        char *save = NULL;
        for (char *line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *fsave = NULL;
                char *f = strtok_r(line, " ", &fsave);
                if (f == NULL || strtoull(f, NULL, 10) != id)
                        continue;
                unsigned prop = 0;
                for (int i = 1; (f = strtok_r(NULL, " ", &fsave)) != NULL && strcmp(f, "-") != 0; i++) {
                        if (i == 4 && mountpoint)
                                *mountpoint = xstrdup(f); /* octal escapes kept: for messages */
                        else if (strncmp(f, "shared:", 7) == 0)
                                prop |= RT_PROP_SHARED;
                        else if (strncmp(f, "master:", 7) == 0)
                                prop |= RT_PROP_SLAVE;
                }
                *out = prop;
                return 0;
        }
        return err_set(e, ERR_NOT_FOUND, "mount %llu of %s not in /proc/self/mountinfo",
                       (unsigned long long)id, path);
}
