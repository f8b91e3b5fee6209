/* cgroups: mode detection, the driver vtable, systemd-style path mapping,
 * file helpers shared by cgroup_v1.c and cgroup_v2.c. */
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>

#include "runtime/runtime-internal.h"

#define CGROUP_ROOT "/sys/fs/cgroup"

static pthread_once_t mode_once = PTHREAD_ONCE_INIT;
static enum rt_cgroup_mode mode_cached;

static void detect_mode(void)
{
        struct statfs s;
        if (statfs(CGROUP_ROOT, &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC) {
                mode_cached = RT_CGROUP_V2_UNIFIED;
                return;
        }
        if (statfs(CGROUP_ROOT "/unified", &s) == 0 && s.f_type == CGROUP2_SUPER_MAGIC)
                mode_cached = RT_CGROUP_V1_HYBRID;
        else
                mode_cached = RT_CGROUP_V1_LEGACY;
}

enum rt_cgroup_mode rt_cgroup_mode(void)
{
        pthread_once(&mode_once, detect_mode);
        return mode_cached;
}

const char *rt_cgroup_mode_name(enum rt_cgroup_mode m)
{
        switch (m) {
        case RT_CGROUP_V1_LEGACY:
                return "v1-legacy";
        case RT_CGROUP_V1_HYBRID:
                return "v1-hybrid";
        case RT_CGROUP_V2_UNIFIED:
                return "v2";
        }
        return "unknown";
}

const struct rt_cgroup_ops *cg_ops(const char **root)
{
        if (root)
                *root = CGROUP_ROOT;
        /* Hybrid hosts: the v2 mount holds no controllers, so the v1
         * driver is the one that can limit anything. */
        return rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED ? &rt_cgroup_v2_ops : &rt_cgroup_v1_ops;
}

const struct rt_cgroup_ops *cg_unit_ops;

/* A path whose last component is a unit name is the systemd driver's, when
 * corrald enabled it (rt_cgroup_systemd_enable); the shim and the agent use
 * the files of the same cgroup directly. */
bool cg_systemd_is_unit(const char *path)
{
        const char *n = strrchr(path, '/');
        n = n ? n + 1 : path;
        return str_has_suffix(n, ".scope") || str_has_suffix(n, ".slice");
}

void cg_scope_leaf(char **path)
{
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED || !str_has_suffix(*path, ".scope"))
                return;
        char *leaf = xasprintf("%s/%s", *path, CG_SCOPE_LEAF);
        free(*path);
        *path = leaf;
}

static const struct rt_cgroup_ops *cg_ops_for(const char *path, const char **root)
{
        const struct rt_cgroup_ops *ops = cg_ops(root);
        return cg_unit_ops && cg_systemd_is_unit(path) ? cg_unit_ops : ops;
}

bool rt_cgroup_systemd_enabled(void)
{
        return cg_unit_ops != NULL;
}

const char *rt_cgroup_driver_name(void)
{
        return cg_unit_ops ? cg_unit_ops->name : cg_ops(NULL)->name;
}

int cg_v2_dirfd(const char *path, struct err *e)
{
        if (rt_cgroup_mode() != RT_CGROUP_V2_UNIFIED)
                return -1;
        cleanup_free char *dir = path_join(CGROUP_ROOT, path);
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open cgroup %s", dir);
        return fd;
}

/* ---------- systemd path mapping ---------- */

/* "a-b-c.slice" -> "/a.slice/a-b.slice/a-b-c.slice"; "-.slice" -> "". */
static int expand_slice(const char *slice, struct sbuf *out, struct err *e)
{
        if (strcmp(slice, "-.slice") == 0 || slice[0] == '\0')
                return 0;
        if (!str_has_suffix(slice, ".slice") || strchr(slice, '/'))
                return err_set(e, ERR_INVALID, "cgroup parent %s is not a systemd slice name", slice);
        size_t base = strlen(slice) - strlen(".slice");
        if (base == 0 || slice[0] == '-' || slice[base - 1] == '-' || strstr(slice, "--"))
                return err_set(e, ERR_INVALID, "invalid systemd slice name %s", slice);
        for (size_t i = 0; i <= base; i++) {
                if (i == base || slice[i] == '-') {
                        sbuf_putc(out, '/');
                        sbuf_append(out, slice, i);
                        sbuf_puts(out, ".slice");
                }
        }
        return 0;
}

int rt_cgroup_resolve(const char *path, char **out, struct err *e)
{
        if (path == NULL || path[0] == '\0')
                return err_set(e, ERR_INVALID, "empty cgroup path");
        if (strstr(path, "..") && (strstr(path, "/..") || str_has_prefix(path, "..")))
                return err_set(e, ERR_INVALID, "cgroup path %s contains ..", path);
        const char *c1 = strchr(path, ':');
        if (c1 == NULL && path[0] != '/' && strchr(path, '/') == NULL && str_has_suffix(path, ".slice")) {
                /* A bare slice name: where systemd puts it ("a-b.slice" in a.slice). */
                struct sbuf b = {0};
                if (expand_slice(path, &b, e) < 0) {
                        sbuf_free(&b);
                        return -1;
                }
                *out = sbuf_steal(&b);
                return 0;
        }
        if (c1 == NULL) {
                *out = path[0] == '/' ? xstrdup(path) : xasprintf("/%s", path);
                return 0;
        }
        /* systemd driver: "parent.slice:prefix:name" */
        const char *c2 = strchr(c1 + 1, ':');
        if (c2 == NULL || strchr(c2 + 1, ':'))
                return err_set(e, ERR_INVALID, "cgroup path %s: want slice:prefix:name", path);
        cleanup_free char *slice = xstrndup(path, (size_t)(c1 - path));
        cleanup_free char *prefix = xstrndup(c1 + 1, (size_t)(c2 - c1 - 1));
        const char *name = c2 + 1;
        if (name[0] == '\0' || strchr(name, '/') || strchr(prefix, '/'))
                return err_set(e, ERR_INVALID, "cgroup path %s: bad unit name", path);
        struct sbuf b = {0};
        if (expand_slice(slice[0] ? slice : "system.slice", &b, e) < 0) {
                sbuf_free(&b);
                return -1;
        }
        if (str_has_suffix(name, ".slice")) {
                /* A slice inside the parent: kubelet's pod slices. */
                sbuf_putc(&b, '/');
                sbuf_puts(&b, name);
        } else if (prefix[0]) {
                sbuf_printf(&b, "/%s-%s.scope", prefix, name);
        } else {
                sbuf_printf(&b, "/%s.scope", name);
        }
        *out = sbuf_steal(&b);
        return 0;
}

/* ---------- file helpers ---------- */

int cg_write(const char *dir, const char *file, const char *value, struct err *e)
{
        cleanup_free char *p = path_join(dir, file);
        cleanup_close int fd = open(p, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open %s", p);
        ssize_t n = write(fd, value, strlen(value));
        if (n < 0)
                return err_make(e, errno, "write %s to %s", value, p);
        return 0;
}

static int read_small(const char *dir, const char *file, char **out, struct err *e)
{
        cleanup_free char *p = path_join(dir, file);
        size_t len;
        return file_read_all(p, out, &len, 1 << 20, e);
}

int cg_read_u64(const char *dir, const char *file, uint64_t *out, struct err *e)
{
        cleanup_free char *s = NULL;
        if (read_small(dir, file, &s, e) < 0)
                return -1;
        if (strncmp(s, "max", 3) == 0) {
                *out = UINT64_MAX;
                return 0;
        }
        char *end;
        errno = 0;
        *out = strtoull(s, &end, 10);
        if (errno || end == s)
                return err_set(e, ERR_INTERNAL, "%s/%s: not a number", dir, file);
        return 0;
}

int cg_read_key(const char *dir, const char *file, const char *key, uint64_t *out, struct err *e)
{
        cleanup_free char *s = NULL;
        if (read_small(dir, file, &s, e) < 0)
                return -1;
        size_t kl = strlen(key);
        for (char *line = s; line && *line;) {
                if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
                        *out = strtoull(line + kl + 1, NULL, 10);
                        return 0;
                }
                line = strchr(line, '\n');
                if (line)
                        line++;
        }
        return err_set(e, ERR_NOT_FOUND, "%s/%s: no key %s", dir, file, key);
}

int cg_read_pids(const char *dir, pid_t **pids, size_t *n, struct err *e)
{
        cleanup_free char *s = NULL;
        *pids = NULL;
        *n = 0;
        if (read_small(dir, "cgroup.procs", &s, e) < 0)
                return -1;
        for (char *p = s; *p;) {
                char *end;
                long v = strtol(p, &end, 10);
                if (end == p)
                        break;
                *pids = xrealloc(*pids, (*n + 1) * sizeof(pid_t));
                (*pids)[(*n)++] = (pid_t)v;
                p = end;
                while (*p == '\n')
                        p++;
        }
        return 0;
}

int cg_rmdir_retry(const char *dir, int timeout_ms, struct err *e)
{
        int64_t deadline = time_mono_ns() + (int64_t)timeout_ms * 1000000;
        int delay_us = 1000;
        for (;;) {
                if (rmdir(dir) == 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY || time_mono_ns() >= deadline)
                        return err_make(e, errno, "remove cgroup %s", dir);
                usleep(delay_us);
                if (delay_us < 50000)
                        delay_us *= 2;
        }
}

/* ---------- public entry points: resolve the path, dispatch ---------- */

#define DISPATCH(call)                                                                                       \
        const char *root;                                                                                    \
        cleanup_free char *p = NULL;                                                                         \
        if (rt_cgroup_resolve(path, &p, e) < 0)                                                              \
                return -1;                                                                                   \
        const struct rt_cgroup_ops *ops = cg_ops_for(p, &root);                                              \
        return ops->call

int rt_cgroup_create(const char *path, const struct rt_resources *r, struct err *e)
{
        DISPATCH(create(root, p, r, e));
}

int rt_cgroup_enter(const char *path, pid_t pid, struct err *e)
{
        DISPATCH(enter(root, p, pid, e));
}

int rt_cgroup_update(const char *path, const struct rt_resources *r, struct err *e)
{
        DISPATCH(update(root, p, r, e));
}

int rt_cgroup_stats(const char *path, struct rt_cgroup_stats *out, struct err *e)
{
        memset(out, 0, sizeof(*out));
        DISPATCH(stats(root, p, out, e));
}

int rt_cgroup_oom_kills(const char *path, uint64_t *out, struct err *e)
{
        DISPATCH(oom_kills(root, p, out, e));
}

int rt_cgroup_oom_fd(const char *path, struct err *e)
{
        DISPATCH(oom_fd(root, p, e));
}

int rt_cgroup_pids(const char *path, pid_t **pids, size_t *n, struct err *e)
{
        DISPATCH(pids(root, p, pids, n, e));
}

int rt_cgroup_kill_all(const char *path, int sig, struct err *e)
{
        DISPATCH(kill_all(root, p, sig, e));
}

int rt_cgroup_remove(const char *path, int timeout_ms, struct err *e)
{
        DISPATCH(remove(root, p, timeout_ms, e));
}
