/* User lookup in a container's /etc/passwd and /etc/group, and opening
 * files inside a root without leaving it (openat2 RESOLVE_IN_ROOT). */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/syscall.h>

#include "runtime/runtime-internal.h"

int openat_in_root(int rootfd, const char *path, int flags, mode_t mode)
{
        static int have_openat2 = -1;
        while (*path == '/')
                path++;
        if (*path == '\0')
                path = ".";
        if (have_openat2 != 0) {
                struct open_how how = {
                        .flags = (uint64_t)flags,
                        .mode = (flags & O_CREAT) ? mode : 0,
                        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
                };
                int fd = (int)syscall(SYS_openat2, rootfd, path, &how, sizeof(how));
                if (fd >= 0 || errno != ENOSYS) {
                        have_openat2 = 1;
                        return fd;
                }
                have_openat2 = 0;
        }
        /* Old kernels: no symlink may be followed in the last component;
         * intermediate symlinks are the caller's risk (documented). */
        return openat(rootfd, path, flags | O_NOFOLLOW, mode);
}

static bool parse_u32(const char *s, uint32_t *out)
{
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v > UINT32_MAX)
                return false;
        *out = (uint32_t)v;
        return true;
}

/* Split a colon-separated line in place into at most n fields. */
static size_t split(char *line, char **f, size_t n)
{
        size_t i = 0;
        line[strcspn(line, "\n")] = '\0';
        while (i < n) {
                f[i++] = line;
                char *c = strchr(line, ':');
                if (c == NULL)
                        break;
                *c = '\0';
                line = c + 1;
        }
        return i;
}

static FILE *open_etc(int rootfd, const char *path)
{
        int fd = openat_in_root(rootfd, path, O_RDONLY | O_CLOEXEC, 0);
        if (fd < 0)
                return NULL;
        FILE *f = fdopen(fd, "re");
        if (f == NULL)
                close(fd);
        return f;
}

int rt_resolve_user(const char *rootfs, const char *name, uint32_t *uid, uint32_t *gid, uint32_t **groups,
                    size_t *n_groups, struct err *e)
{
        cleanup_close int rootfd = open(rootfs, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (rootfd < 0)
                return err_make(e, errno, "open rootfs %s", rootfs);
        if (groups) {
                *groups = NULL;
                *n_groups = 0;
        }

        uint32_t num = 0;
        bool numeric = parse_u32(name, &num);
        bool found = false;
        cleanup_free char *uname = NULL;
        cleanup_free char *line = NULL;
        size_t cap = 0;

        cleanup_fclose FILE *pw = open_etc(rootfd, "/etc/passwd");
        if (pw == NULL && !numeric)
                return err_set(e, ERR_NOT_FOUND, "user %s: no /etc/passwd in the image", name);
        while (pw && getline(&line, &cap, pw) > 0) {
                char *f[7];
                if (line[0] == '#' || split(line, f, 7) < 4)
                        continue;
                uint32_t u, g;
                if (!parse_u32(f[2], &u) || !parse_u32(f[3], &g))
                        continue;
                if (numeric ? u == num : strcmp(f[0], name) == 0) {
                        *uid = u;
                        *gid = g;
                        uname = xstrdup(f[0]);
                        found = true;
                        break;
                }
        }
        if (!found) {
                if (!numeric)
                        return err_set(e, ERR_NOT_FOUND, "user %s not found in the image's /etc/passwd",
                                       name);
                /* A uid without an entry runs with gid 0, as runc does. */
                *uid = num;
                *gid = 0;
                return 0;
        }
        if (groups == NULL)
                return 0;
        cleanup_fclose FILE *gr = open_etc(rootfd, "/etc/group");
        while (gr && getline(&line, &cap, gr) > 0) {
                char *f[4];
                if (line[0] == '#' || split(line, f, 4) < 4)
                        continue;
                uint32_t g;
                if (!parse_u32(f[2], &g) || g == *gid)
                        continue;
                for (char *save = NULL, *m = strtok_r(f[3], ",", &save); m; m = strtok_r(NULL, ",", &save)) {
                        if (strcmp(m, uname) == 0) {
                                *groups = xrealloc(*groups, (*n_groups + 1) * sizeof(uint32_t));
                                (*groups)[(*n_groups)++] = g;
                                break;
                        }
                }
        }
        return 0;
}

void rt_user_clear(struct rt_user *u)
{
        if (u == NULL)
                return;
        free(u->groups);
        memset(u, 0, sizeof(*u));
}

/* A host id as the user namespace of `pid` sees it, from its uid_map or
 * gid_map read from the host ("inside outside length" lines); unmapped, or
 * without a user namespace of its own, as it is. */
static uint32_t id_inside(pid_t pid, const char *map, uint32_t id)
{
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, map);
        cleanup_fclose FILE *f = fopen(path, "re");
        unsigned long long in, out, len;
        while (f && fscanf(f, "%llu %llu %llu", &in, &out, &len) == 3)
                if (id >= out && id - out < len)
                        return (uint32_t)(in + (id - out));
        return id;
}

int rt_proc_user(pid_t pid, struct rt_user *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        cleanup_fclose FILE *f = fopen(path, "re");
        if (f == NULL)
                return err_make(e, errno, "open %s", path);
        cleanup_free char *line = NULL;
        size_t cap = 0;
        int seen = 0;
        while (getline(&line, &cap, f) > 0) {
                unsigned long v;
                if (sscanf(line, "Uid: %lu", &v) == 1) {
                        out->uid = (uint32_t)v;
                        seen |= 1;
                } else if (sscanf(line, "Gid: %lu", &v) == 1) {
                        out->gid = (uint32_t)v;
                        seen |= 2;
                } else if (strncmp(line, "Groups:", 7) == 0) {
                        char *p = line + 7, *end;
                        for (;;) {
                                errno = 0;
                                v = strtoul(p, &end, 10);
                                if (end == p || errno)
                                        break;
                                out->groups = xrealloc(out->groups, (out->n_groups + 1) * sizeof(uint32_t));
                                out->groups[out->n_groups++] = (uint32_t)v;
                                p = end;
                        }
                        seen |= 4;
                }
        }
        if (seen != 7) {
                rt_user_clear(out);
                return err_set(e, ERR_INTERNAL, "%s: no Uid, Gid or Groups line", path);
        }
        /* A pod with its own user namespace reports the container's ids. */
        out->uid = id_inside(pid, "uid_map", out->uid);
        out->gid = id_inside(pid, "gid_map", out->gid);
        for (size_t i = 0; i < out->n_groups; i++)
                out->groups[i] = id_inside(pid, "gid_map", out->groups[i]);
        return 0;
}
