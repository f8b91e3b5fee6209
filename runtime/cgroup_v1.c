/* cgroup v1 (legacy and hybrid hosts): one directory per mounted hierarchy. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>

#include "runtime/runtime-internal.h"

struct hier {
        char *mount;       /* /sys/fs/cgroup/cpu */
        char *controllers; /* ",cpu,cpuacct," (with sentinels), or ",name=systemd," */
};

static pthread_once_t hier_once = PTHREAD_ONCE_INIT;
static struct hier hiers[32];
static size_t n_hiers;

static char *preset;

/* rt_cgroup_v1_layout's text back into the table. */
static void scan_preset(void)
{
        cleanup_free char *text = steal_ptr(&preset);
        for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n_hiers < ARRAY_SIZE(hiers);
             l = strtok_r(NULL, "\n", &save)) {
                char *sp = strchr(l, ' ');
                if (sp == NULL)
                        continue;
                *sp = '\0';
                hiers[n_hiers].mount = xstrdup(l);
                hiers[n_hiers].controllers = xstrdup(sp + 1);
                n_hiers++;
        }
}

static void scan(void)
{
        if (preset) {
                scan_preset();
                return;
        }
        FILE *f = fopen("/proc/self/mountinfo", "re");
        char *line = NULL;
        size_t cap = 0;
        while (f && getline(&line, &cap, f) > 0 && n_hiers < ARRAY_SIZE(hiers)) {
                char *sep = strstr(line, " - cgroup ");
                if (sep == NULL)
                        continue;
                /* fields: id parent maj:min root mountpoint ... */
                char *save = NULL, *tok = strtok_r(line, " ", &save);
                for (int i = 0; tok && i < 4; i++)
                        tok = strtok_r(NULL, " ", &save);
                if (tok == NULL)
                        continue;
                char *mnt = xstrdup(tok);
                char *opts = strrchr(sep, ' ');
                opts = opts ? opts + 1 : "";
                opts[strcspn(opts, "\n")] = '\0';
                struct sbuf b = {0};
                sbuf_putc(&b, ',');
                for (char *s2 = NULL, *o = strtok_r(opts, ",", &s2); o; o = strtok_r(NULL, ",", &s2)) {
                        if (strcmp(o, "rw") == 0 || strcmp(o, "ro") == 0 ||
                            (strchr(o, '=') && !str_has_prefix(o, "name=")))
                                continue;
                        sbuf_printf(&b, "%s,", o);
                }
                hiers[n_hiers].mount = mnt;
                hiers[n_hiers].controllers = sbuf_steal(&b);
                n_hiers++;
        }
        free(line);
        if (f)
                fclose(f);
}

static size_t hierarchies(void)
{
        pthread_once(&hier_once, scan);
        return n_hiers;
}

void rt_cgroup_v1_preset(const char *layout)
{
        free(preset);
        preset = layout ? xstrdup(layout) : NULL;
}

char *rt_cgroup_v1_layout(void)
{
        struct sbuf b = {0};
        sbuf_printf(&b, "%s", "");
        if (rt_cgroup_mode() == RT_CGROUP_V2_UNIFIED)
                return sbuf_steal(&b);
        for (size_t i = 0; i < hierarchies(); i++)
                sbuf_printf(&b, "%s %s\n", hiers[i].mount, hiers[i].controllers);
        return sbuf_steal(&b);
}

/* The directory for `path` in the hierarchy holding controller `c`, or NULL. */
static char *dir_for(const char *c, const char *path)
{
        char key[64];
        snprintf(key, sizeof(key), ",%s,", c);
        for (size_t i = 0; i < hierarchies(); i++)
                if (strstr(hiers[i].controllers, key))
                        return path_join(hiers[i].mount, path);
        return NULL;
}

char *cg_v1_dir(const char *controller, const char *path)
{
        return dir_for(controller, path);
}

/* Copy cpuset.cpus/mems from the parent when empty: v1 refuses tasks in a
 * cpuset with no cpus. Walks down from the first level. Each write of
 * cpuset.cpus rebuilds the scheduler domains (under the global cpuset
 * lock, in time that grows with the number of cpusets), so where we had
 * to copy, cgroup.clone_children is set on the child and (below the root)
 * its parent: the kernel then fills the next pod's and container's cpuset
 * at mkdir, and the walk only reads. */
static int cpuset_init(const char *mount, const char *path, struct err *e)
{
        cleanup_free char *rel = xstrdup(path);
        cleanup_free char *parent = xstrdup(mount);
        for (char *save = NULL, *c = strtok_r(rel, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
                cleanup_free char *dir = path_join(parent, c);
                static const char *const files[] = {"cpuset.cpus", "cpuset.mems"};
                bool copied = false;
                for (size_t i = 0; i < 2; i++) {
                        cleanup_free char *cur = NULL, *pv = NULL, *pp = path_join(dir, files[i]),
                                          *ppar = path_join(parent, files[i]);
                        size_t n;
                        if (file_read_all(pp, &cur, &n, 4096, e) < 0)
                                return -1;
                        if (cur[strspn(cur, " \n")] != '\0')
                                continue;
                        if (file_read_all(ppar, &pv, &n, 4096, e) < 0)
                                return -1;
                        if (cg_write(dir, files[i], pv, e) < 0)
                                return -1;
                        copied = true;
                }
                if (copied) {
                        /* Not on the hierarchy's root: the host's other cpusets are not ours. */
                        if (strcmp(parent, mount) != 0)
                                (void)cg_write(parent, "cgroup.clone_children", "1", NULL);
                        (void)cg_write(dir, "cgroup.clone_children", "1", NULL);
                }
                free(parent);
                parent = steal_ptr(&dir);
        }
        return 0;
}

static int write_num(const char *c, const char *path, const char *file, int64_t v, struct err *e)
{
        cleanup_free char *dir = dir_for(c, path);
        char buf[32];
        if (dir == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 controller %s is not mounted", c);
        snprintf(buf, sizeof(buf), "%lld", (long long)v);
        return cg_write(dir, file, buf, e);
}

static int write_str(const char *c, const char *path, const char *file, const char *v, struct err *e)
{
        cleanup_free char *dir = dir_for(c, path);
        if (dir == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 controller %s is not mounted", c);
        return cg_write(dir, file, v, e);
}

static int memory_set(const char *path, const struct rt_resources *r, struct err *e)
{
        cleanup_free char *dir = dir_for("memory", path);
        if (dir == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 memory controller is not mounted");
        if (r->memory_limit == 0 && r->memory_swap == 0)
                return 0;
        int64_t mem = r->memory_limit < 0 ? -1 : r->memory_limit;
        int64_t sw = r->memory_swap;
        /* OCI: swap unset with a memory limit -> memsw = limit (no swap);
         * kubelet's way on v1 too. */
        if (sw == 0 && mem > 0)
                sw = mem;
        cleanup_free char *memsw = path_join(dir, "memory.memsw.limit_in_bytes");
        bool have_memsw = access(memsw, F_OK) == 0;
        char mb[32], sb[32];
        snprintf(mb, sizeof(mb), "%lld", (long long)mem);
        snprintf(sb, sizeof(sb), "%lld", (long long)(sw < 0 ? -1 : sw));
        /* memsw >= memory always: the order of the two writes depends on
         * whether the limits go up or down, so try one order then the other. */
        struct err e1 = ERR_INIT;
        if ((mem == 0 || cg_write(dir, "memory.limit_in_bytes", mb, &e1) == 0) &&
            (!have_memsw || sw == 0 || cg_write(dir, "memory.memsw.limit_in_bytes", sb, &e1) == 0))
                return 0;
        err_clear(&e1);
        if (have_memsw && sw != 0 && cg_write(dir, "memory.memsw.limit_in_bytes", sb, e) < 0)
                return -1;
        if (mem != 0 && cg_write(dir, "memory.limit_in_bytes", mb, e) < 0)
                return -1;
        return 0;
}

static int v1_update(const char *root UNUSED, const char *path, const struct rt_resources *r, struct err *e)
{
        if (r == NULL)
                return 0;
        if (r->n_unified)
                return err_set(e, ERR_INVALID, "unified cgroup resources (%s) need cgroup v2",
                               r->unified[0].key);
        if (r->cpu_shares && write_num("cpu", path, "cpu.shares", (int64_t)r->cpu_shares, e) < 0)
                return -1;
        if (r->cpu_period && write_num("cpu", path, "cpu.cfs_period_us", (int64_t)r->cpu_period, e) < 0)
                return -1;
        if (r->cpu_quota &&
            write_num("cpu", path, "cpu.cfs_quota_us", r->cpu_quota < 0 ? -1 : r->cpu_quota, e) < 0)
                return -1;
        if (r->cpuset_cpus && r->cpuset_cpus[0] &&
            write_str("cpuset", path, "cpuset.cpus", r->cpuset_cpus, e) < 0)
                return -1;
        if (r->cpuset_mems && r->cpuset_mems[0] &&
            write_str("cpuset", path, "cpuset.mems", r->cpuset_mems, e) < 0)
                return -1;
        if (memory_set(path, r, e) < 0)
                return -1;
        for (size_t i = 0; i < r->n_hugepages; i++) {
                cleanup_free char *file = xasprintf("hugetlb.%s.limit_in_bytes", r->hugepages[i].page_size);
                if (write_num("hugetlb", path, file, (int64_t)r->hugepages[i].limit, e) < 0)
                        return -1;
        }
        if (r->pids_limit) {
                if (r->pids_limit < 0) {
                        if (write_str("pids", path, "pids.max", "max", e) < 0)
                                return -1;
                } else if (write_num("pids", path, "pids.max", r->pids_limit, e) < 0) {
                        return -1;
                }
        }
        return 0;
}

static int v1_remove(const char *root, const char *path, int timeout_ms, struct err *e);

static int v1_create(const char *root, const char *path, const struct rt_resources *r, struct err *e)
{
        if (hierarchies() == 0)
                return err_set(e, ERR_UNAVAILABLE, "no cgroup v1 hierarchy is mounted");
        for (size_t i = 0; i < n_hiers; i++) {
                cleanup_free char *dir = path_join(hiers[i].mount, path);
                if (mkdir_p(dir, 0755, e) < 0)
                        goto undo;
                if (strstr(hiers[i].controllers, ",cpuset,") && cpuset_init(hiers[i].mount, path, e) < 0)
                        goto undo;
        }
        if (v1_update(root, path, r, e) < 0)
                goto undo;
        return 0;
undo:
        /* Only the leaf: parents may be shared (kubepods/...). */
        (void)v1_remove(root, path, 0, NULL);
        return err_wrap(e, "create cgroup %s", path);
}

static int v1_enter(const char *root UNUSED, const char *path, pid_t pid, struct err *e)
{
        char buf[16];
        snprintf(buf, sizeof(buf), "%d", (int)pid);
        for (size_t i = 0; i < hierarchies(); i++) {
                cleanup_free char *dir = path_join(hiers[i].mount, path);
                if (cg_write(dir, "cgroup.procs", buf, e) < 0)
                        return err_wrap(e, "enter cgroup");
        }
        return 0;
}

static int v1_stats(const char *root UNUSED, const char *path, struct rt_cgroup_stats *out, struct err *e)
{
        cleanup_free char *cpu = dir_for("cpuacct", path);
        cleanup_free char *mem = dir_for("memory", path);
        cleanup_free char *pids = dir_for("pids", path);
        if (mem == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 memory controller is not mounted");
        if (access(mem, F_OK) < 0)
                return err_make(e, errno, "cgroup %s", mem);
        (void)(cpu && cg_read_u64(cpu, "cpuacct.usage", &out->cpu_usage_ns, NULL));
        (void)cg_read_u64(mem, "memory.usage_in_bytes", &out->memory_usage, NULL);
        uint64_t inactive = 0;
        if (cg_read_key(mem, "memory.stat", "total_inactive_file", &inactive, NULL) < 0)
                (void)cg_read_key(mem, "memory.stat", "inactive_file", &inactive, NULL);
        out->memory_working_set = out->memory_usage > inactive ? out->memory_usage - inactive : 0;
        if (cg_read_key(mem, "memory.stat", "total_rss", &out->memory_rss, NULL) < 0)
                (void)cg_read_key(mem, "memory.stat", "rss", &out->memory_rss, NULL);
        (void)(pids && cg_read_u64(pids, "pids.current", &out->pids_current, NULL));
        uint64_t oom = 0;
        if (cg_read_key(mem, "memory.oom_control", "oom_kill", &oom, NULL) == 0)
                out->oom_kills = oom;
        return 0;
}

static int v1_oom_kills(const char *root UNUSED, const char *path, uint64_t *out, struct err *e)
{
        cleanup_free char *mem = dir_for("memory", path);
        if (mem == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 memory controller is not mounted");
        if (cg_read_key(mem, "memory.oom_control", "oom_kill", out, NULL) == 0)
                return 0;
        /* Kernels before 4.13 have no counter: under_oom is the best hint. */
        uint64_t under = 0;
        if (cg_read_key(mem, "memory.oom_control", "under_oom", &under, e) < 0)
                return -1;
        *out = under ? 1 : 0;
        return 0;
}

static int v1_oom_fd(const char *root UNUSED, const char *path, struct err *e)
{
        cleanup_free char *mem = dir_for("memory", path);
        if (mem == NULL)
                return err_set(e, ERR_UNIMPLEMENTED, "cgroup v1 memory controller is not mounted");
        cleanup_free char *ctl = path_join(mem, "memory.oom_control");
        cleanup_close int cfd = open(ctl, O_RDONLY | O_CLOEXEC);
        if (cfd < 0)
                return err_make(e, errno, "open %s", ctl);
        cleanup_close int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (efd < 0)
                return err_make(e, errno, "eventfd");
        char buf[32];
        snprintf(buf, sizeof(buf), "%d %d", efd, cfd);
        if (cg_write(mem, "cgroup.event_control", buf, e) < 0)
                return -1;
        return steal_fd(&efd);
}

static int v1_pids(const char *root UNUSED, const char *path, pid_t **pids, size_t *n, struct err *e)
{
        cleanup_free char *dir = dir_for("pids", path);
        if (dir == NULL)
                dir = dir_for("memory", path);
        if (dir == NULL && hierarchies())
                dir = path_join(hiers[0].mount, path);
        if (dir == NULL)
                return err_set(e, ERR_UNAVAILABLE, "no cgroup v1 hierarchy is mounted");
        return cg_read_pids(dir, pids, n, e);
}

static int freeze(const char *dir, bool on)
{
        if (dir == NULL)
                return -1;
        if (cg_write(dir, "freezer.state", on ? "FROZEN" : "THAWED", NULL) < 0)
                return -1;
        for (int i = 0; on && i < 1000; i++) {
                cleanup_free char *st = NULL;
                cleanup_free char *p = path_join(dir, "freezer.state");
                size_t n;
                if (file_read_all(p, &st, &n, 64, NULL) < 0 || str_has_prefix(st, "FROZEN"))
                        break;
                usleep(1000);
        }
        return 0;
}

static int v1_kill_all(const char *root, const char *path, int sig, struct err *e)
{
        cleanup_free char *fz = dir_for("freezer", path);
        if (fz && access(fz, F_OK) < 0)
                return 0; /* already removed */
        for (int round = 0; round < 100; round++) {
                pid_t *pids = NULL;
                size_t n = 0;
                /* Frozen tasks cannot fork between our read and our kill.
                 * SIGKILL's first round goes without: each freeze and thaw of
                 * an otherwise unfrozen host flips a kernel static key (text
                 * patching on every CPU), and a container whose init is gone
                 * (or that does not fork) needs no more; a child forked in
                 * between is seen by the next round, which freezes. */
                bool frozen = (sig != SIGKILL || round > 0) && freeze(fz, true) == 0;
                int r = v1_pids(root, path, &pids, &n, e);
                for (size_t i = 0; r == 0 && i < n; i++)
                        (void)kill(pids[i], sig);
                if (frozen)
                        (void)freeze(fz, false);
                free(pids);
                if (r < 0)
                        return -1;
                if (n == 0 || sig != SIGKILL)
                        return 0;
                usleep(round < 10 ? 1000 : 10000);
        }
        return err_set(e, ERR_DEADLINE, "cgroup %s: processes survive SIGKILL", path);
}

static int v1_remove(const char *root UNUSED, const char *path, int timeout_ms, struct err *e)
{
        int ret = 0;
        for (size_t i = 0; i < hierarchies(); i++) {
                cleanup_free char *dir = path_join(hiers[i].mount, path);
                if (cg_rmdir_retry(dir, timeout_ms, ret < 0 ? NULL : e) < 0)
                        ret = -1;
        }
        return ret;
}

static int v1_devices(const char *root UNUSED, const char *path, const struct dev_rule *r, size_t n,
                      struct err *e)
{
        cleanup_free char *dir = dir_for("devices", path);
        if (dir == NULL) {
                /* Privileged needs nothing; anything else fails closed, as
                 * without the controller nothing stops mknod. */
                if (n == 1 && r[0].allow && r[0].type == 'a')
                        return 0;
                return err_set(e, ERR_UNAVAILABLE, "cgroup v1 devices controller is not mounted");
        }
        return dev_v1_write(dir, r, n, e);
}

const struct rt_cgroup_ops rt_cgroup_v1_ops = {
        .name = "cgroupfs-v1",
        .create = v1_create,
        .enter = v1_enter,
        .update = v1_update,
        .stats = v1_stats,
        .oom_kills = v1_oom_kills,
        .oom_fd = v1_oom_fd,
        .pids = v1_pids,
        .kill_all = v1_kill_all,
        .remove = v1_remove,
        .devices = v1_devices,
};

/* For rt_host_features: the controllers of the mounted hierarchies. */
char *cg_v1_controllers(void)
{
        struct sbuf b = {0};
        for (size_t i = 0; i < hierarchies(); i++) {
                cleanup_free char *c = xstrdup(hiers[i].controllers);
                for (char *s = NULL, *t = strtok_r(c, ",", &s); t; t = strtok_r(NULL, ",", &s))
                        if (!str_has_prefix(t, "name="))
                                sbuf_printf(&b, "%s%s", b.len ? " " : "", t);
        }
        return sbuf_steal(&b);
}
