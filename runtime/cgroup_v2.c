/* cgroup v2: one directory under the unified mount; controllers enabled
 * top-down through cgroup.subtree_control. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "runtime/runtime-internal.h"

static const char *const wanted[] = {"cpu", "cpuset", "memory", "pids", "io", "hugetlb"};

void cg_v2_enable_controllers(const char *dir)
{
        cleanup_free char *avail = NULL;
        cleanup_free char *p = path_join(dir, "cgroup.controllers");
        size_t n;
        if (file_read_all(p, &avail, &n, 4096, NULL) < 0)
                return;
        for (size_t i = 0; i < ARRAY_SIZE(wanted); i++) {
                char key[32];
                snprintf(key, sizeof(key), " %s ", wanted[i]);
                cleanup_free char *padded = xasprintf(" %.*s ", (int)strcspn(avail, "\n"), avail);
                if (strstr(padded, key) == NULL)
                        continue;
                char w[32];
                snprintf(w, sizeof(w), "+%s", wanted[i]);
                /* EBUSY when the parent has processes of its own (the
                 * "no internal processes" rule): the limit files will then be
                 * missing and the update says which. */
                (void)cg_write(dir, "cgroup.subtree_control", w, NULL);
        }
}

static int missing(const char *dir, const char *file, struct err *e)
{
        cleanup_free char *p = path_join(dir, file);
        if (access(p, F_OK) == 0)
                return 0;
        char ctl[32];
        snprintf(ctl, sizeof(ctl), "%.*s", (int)strcspn(file, "."), file);
        return err_set(e, ERR_UNAVAILABLE, "cgroup v2 controller %s is not enabled for %s (no %s)", ctl, dir,
                       file);
}

static int wr(const char *dir, const char *file, const char *v, struct err *e)
{
        if (missing(dir, file, e) < 0)
                return -1;
        return cg_write(dir, file, v, e);
}

static int wr_num(const char *dir, const char *file, int64_t v, struct err *e)
{
        char buf[32];
        if (v < 0)
                snprintf(buf, sizeof(buf), "max");
        else
                snprintf(buf, sizeof(buf), "%lld", (long long)v);
        return wr(dir, file, buf, e);
}

/* kubelet/runc: shares [2, 262144] -> weight [1, 10000]. */
uint64_t cg_shares_to_weight(uint64_t shares)
{
        if (shares == 0)
                return 0;
        if (shares < 2)
                shares = 2;
        if (shares > 262144)
                shares = 262144;
        return 1 + ((shares - 2) * 9999) / 262142;
}

static int v2_update(const char *root, const char *path, const struct rt_resources *r, struct err *e)
{
        if (r == NULL)
                return 0;
        cleanup_free char *dir = path_join(root, path);
        if (r->cpu_shares && wr_num(dir, "cpu.weight", (int64_t)cg_shares_to_weight(r->cpu_shares), e) < 0)
                return -1;
        if (r->cpu_quota || r->cpu_period) {
                char buf[64];
                uint64_t period = r->cpu_period ? r->cpu_period : 100000;
                if (r->cpu_quota > 0) {
                        snprintf(buf, sizeof(buf), "%lld %llu", (long long)r->cpu_quota,
                                 (unsigned long long)period);
                } else if (r->cpu_quota < 0) {
                        snprintf(buf, sizeof(buf), "max %llu", (unsigned long long)period);
                } else {
                        /* Period only: keep the current quota. */
                        cleanup_free char *cur = NULL;
                        cleanup_free char *p = path_join(dir, "cpu.max");
                        size_t n;
                        if (missing(dir, "cpu.max", e) < 0 || file_read_all(p, &cur, &n, 256, e) < 0)
                                return -1;
                        snprintf(buf, sizeof(buf), "%.*s %llu", (int)strcspn(cur, " \n"), cur,
                                 (unsigned long long)period);
                }
                if (wr(dir, "cpu.max", buf, e) < 0)
                        return -1;
        }
        if (r->cpuset_cpus && r->cpuset_cpus[0] && wr(dir, "cpuset.cpus", r->cpuset_cpus, e) < 0)
                return -1;
        if (r->cpuset_mems && r->cpuset_mems[0] && wr(dir, "cpuset.mems", r->cpuset_mems, e) < 0)
                return -1;
        if (r->memory_limit && wr_num(dir, "memory.max", r->memory_limit, e) < 0)
                return -1;
        if (r->memory_swap) {
                /* OCI memsw semantics -> v2 swap alone. */
                int64_t sw = -1;
                if (r->memory_swap > 0 && r->memory_limit > 0)
                        sw = r->memory_swap - r->memory_limit;
                cleanup_free char *p = path_join(dir, "memory.swap.max");
                if (access(p, F_OK) == 0 && wr_num(dir, "memory.swap.max", sw, e) < 0)
                        return -1;
        } else if (r->memory_limit > 0) {
                /* No swap requested: none, as kubelet expects with memsw on v1. */
                cleanup_free char *p = path_join(dir, "memory.swap.max");
                if (access(p, F_OK) == 0 && cg_write(dir, "memory.swap.max", "0", e) < 0)
                        return -1;
        }
        if (r->pids_limit && wr_num(dir, "pids.max", r->pids_limit, e) < 0)
                return -1;
        for (size_t i = 0; i < r->n_hugepages; i++) {
                cleanup_free char *f = xasprintf("hugetlb.%s.max", r->hugepages[i].page_size);
                if (wr_num(dir, f, (int64_t)r->hugepages[i].limit, e) < 0)
                        return -1;
        }
        for (size_t i = 0; i < r->n_unified; i++) {
                const char *k = r->unified[i].key;
                if (k == NULL || k[0] == '\0' || strchr(k, '/') || k[0] == '.' ||
                    str_has_prefix(k, "cgroup."))
                        return err_set(e, ERR_INVALID, "unified cgroup key %s is not allowed",
                                       k ? k : "(null)");
                if (wr(dir, k, r->unified[i].value ? r->unified[i].value : "", e) < 0)
                        return -1;
        }
        return 0;
}

static int v2_remove(const char *root, const char *path, int timeout_ms, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        if (str_has_suffix(path, ".scope")) {
                /* The container's leaf inside a scope (CG_SCOPE_LEAF) goes first. */
                cleanup_free char *leaf = path_join(dir, CG_SCOPE_LEAF);
                if (cg_rmdir_retry(leaf, timeout_ms, e) < 0)
                        return -1;
        }
        return cg_rmdir_retry(dir, timeout_ms, e);
}

static int v2_create(const char *root, const char *path, const struct rt_resources *r, struct err *e)
{
        cleanup_free char *rel = xstrdup(path);
        cleanup_free char *cur = xstrdup(root);
        for (char *save = NULL, *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                cg_v2_enable_controllers(cur);
                char *next = path_join(cur, c);
                free(cur);
                cur = next;
                if (mkdir(cur, 0755) < 0 && errno != EEXIST)
                        return err_make(e, errno, "create cgroup %s", cur);
        }
        if (v2_update(root, path, r, e) < 0) {
                (void)v2_remove(root, path, 0, NULL);
                return err_wrap(e, "create cgroup %s", path);
        }
        return 0;
}

static int v2_enter(const char *root, const char *path, pid_t pid, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        char buf[16];
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        if (cg_write(dir, "cgroup.procs", buf, e) < 0)
                return err_wrap(e, "enter cgroup");
        return 0;
}

static int v2_stats(const char *root, const char *path, struct rt_cgroup_stats *out, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        if (access(dir, F_OK) < 0)
                return err_make(e, errno, "cgroup %s", dir);
        uint64_t usec = 0;
        if (cg_read_key(dir, "cpu.stat", "usage_usec", &usec, NULL) == 0)
                out->cpu_usage_ns = usec * 1000;
        (void)cg_read_u64(dir, "memory.current", &out->memory_usage, NULL);
        uint64_t inactive = 0;
        (void)cg_read_key(dir, "memory.stat", "inactive_file", &inactive, NULL);
        out->memory_working_set = out->memory_usage > inactive ? out->memory_usage - inactive : 0;
        (void)cg_read_key(dir, "memory.stat", "anon", &out->memory_rss, NULL);
        (void)cg_read_u64(dir, "pids.current", &out->pids_current, NULL);
        (void)cg_read_key(dir, "memory.events", "oom_kill", &out->oom_kills, NULL);
        return 0;
}

static int v2_oom_kills(const char *root, const char *path, uint64_t *out, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        if (missing(dir, "memory.events", e) < 0)
                return -1;
        *out = 0;
        return cg_read_key(dir, "memory.events", "oom_kill", out, e);
}

static int v2_oom_fd(const char *root, const char *path, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        if (missing(dir, "memory.events", e) < 0)
                return -1;
        cleanup_free char *p = path_join(dir, "memory.events");
        cleanup_close int fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
        if (fd < 0)
                return err_make(e, errno, "inotify_init1");
        if (inotify_add_watch(fd, p, IN_MODIFY) < 0)
                return err_make(e, errno, "watch %s", p);
        return steal_fd(&fd);
}

static int v2_pids(const char *root, const char *path, pid_t **pids, size_t *n, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        return cg_read_pids(dir, pids, n, e);
}

static int v2_kill_all(const char *root, const char *path, int sig, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        if (access(dir, F_OK) < 0)
                return errno == ENOENT ? 0 : err_make(e, errno, "cgroup %s", dir);
        cleanup_free char *killf = path_join(dir, "cgroup.kill");
        if (sig == SIGKILL && access(killf, F_OK) == 0)
                return cg_write(dir, "cgroup.kill", "1", e);
        cleanup_free char *frz = path_join(dir, "cgroup.freeze");
        bool can_freeze = access(frz, F_OK) == 0;
        for (int round = 0; round < 100; round++) {
                pid_t *pids = NULL;
                size_t n = 0;
                if (can_freeze)
                        (void)cg_write(dir, "cgroup.freeze", "1", NULL);
                int r = cg_read_pids(dir, &pids, &n, e);
                for (size_t i = 0; r == 0 && i < n; i++)
                        (void)kill(pids[i], sig);
                if (can_freeze)
                        (void)cg_write(dir, "cgroup.freeze", "0", NULL);
                free(pids);
                if (r < 0)
                        return -1;
                if (n == 0 || sig != SIGKILL)
                        return 0;
                usleep(round < 10 ? 1000 : 10000);
        }
        return err_set(e, ERR_DEADLINE, "cgroup %s: processes survive SIGKILL", dir);
}

static int v2_devices(const char *root, const char *path, const struct dev_rule *r, size_t n, struct err *e)
{
        cleanup_free char *dir = path_join(root, path);
        cleanup_close int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return err_make(e, errno, "open cgroup %s", dir);
        if (dev_bpf_attach(fd, r, n, e) < 0)
                return err_wrap(e, "devices of cgroup %s", dir);
        return 0;
}

const struct rt_cgroup_ops rt_cgroup_v2_ops = {
        .name = "cgroupfs-v2",
        .create = v2_create,
        .enter = v2_enter,
        .update = v2_update,
        .stats = v2_stats,
        .oom_kills = v2_oom_kills,
        .oom_fd = v2_oom_fd,
        .pids = v2_pids,
        .kill_all = v2_kill_all,
        .remove = v2_remove,
        .devices = v2_devices,
};
